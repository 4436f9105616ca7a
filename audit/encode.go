package audit

import (
	"encoding/json"
	"strconv"
)

// appendEvent appends e as one JSON object, byte for byte what
// json.Marshal(e) writes, without reflection: the log writes one per pull,
// and Marshal was most of the writer's CPU. ok is false where Marshal
// fails (a time it cannot write).
func appendEvent(b []byte, e *Event) (_ []byte, ok bool) {
	b = append(b, `{"time":"`...)
	b, err := e.Time.AppendText(b)
	if err != nil {
		return b, false
	}
	b = append(b, '"')
	b = appendField(b, "principal", e.Principal, false)
	b = appendField(b, "attemptedUser", e.User, true)
	b = appendField(b, "sourceIP", e.SourceIP, false)
	b = appendField(b, "action", e.Action, false)
	b = appendField(b, "repository", e.Repository, true)
	b = appendField(b, "target", e.Target, true)
	b = appendField(b, "reference", e.Reference, true)
	b = appendField(b, "digest", e.Digest, true)
	b = appendField(b, "result", e.Result, false)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, e.Bytes, 10)
	return append(b, '}'), true
}

// appendField appends ,"name":"v", or nothing for an empty v that is
// omitted when empty.
func appendField(b []byte, name, v string, omitEmpty bool) []byte {
	if omitEmpty && v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, v)
}

// appendString quotes s as encoding/json does: printable ASCII that needs
// no escape is copied, anything else goes through json.Marshal, so the
// escaping (HTML characters, control bytes, invalid UTF-8) is its own.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
