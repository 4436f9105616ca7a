package registry

import (
	"strconv"
	"strings"
)

// MaxClip is the most of a client's text (a path, a user name, a token
// request's scopes) that Clip keeps.
const MaxClip = 1024

// Clip is s, or a copy of its first MaxClip bytes, holding nothing of the
// request, with its length: what a log line or an audit event keeps of a
// text the client chose, which may run to the header limit (1 MB).
func Clip(s string) string {
	if len(s) <= MaxClip {
		return s
	}
	return strings.Clone(s[:MaxClip]) + "… (" + strconv.Itoa(len(s)) + " bytes)"
}
