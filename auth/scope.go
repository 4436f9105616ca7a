package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrInvalidScope is wrapped by ParseScope for a malformed scope.
var ErrInvalidScope = errors.New("invalid scope")

// Resource types of Docker token scopes.
const (
	TypeRepository = "repository"
	TypeRegistry   = "registry"
)

// Access is one entry of a token's "access" claim, and one requested scope:
// {"type":"repository","name":"private/app","actions":["pull","push"]}.
type Access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// String is the scope form: "repository:private/app:pull,push".
func (a Access) String() string {
	return a.Type + ":" + a.Name + ":" + strings.Join(a.Actions, ",")
}

// ParseScope parses a Docker token scope: "type:name:action[,action...]",
// several of them separated by spaces. Give repeated scope query parameters
// joined by a space. A name may hold colons (a registry host with a port);
// the resource type may carry a class, as in "repository(plugin)". Entries
// for the same resource are merged and actions deduplicated, in order of
// first appearance.
func ParseScope(scope string) ([]Access, error) {
	var out []Access
	for _, s := range strings.Fields(scope) {
		typ, rest, ok := strings.Cut(s, ":")
		i := strings.LastIndexByte(rest, ':')
		if !ok || i < 0 {
			return nil, fmt.Errorf("%w %q: want type:name:actions", ErrInvalidScope, s)
		}
		name, actions := rest[:i], rest[i+1:]
		if !validScopeType(typ) {
			return nil, fmt.Errorf("%w %q: bad resource type %q", ErrInvalidScope, s, typ)
		}
		if name == "" {
			return nil, fmt.Errorf("%w %q: empty resource name", ErrInvalidScope, s)
		}
		if actions == "" {
			return nil, fmt.Errorf("%w %q: no actions", ErrInvalidScope, s)
		}
		var acts []string
		for _, a := range strings.Split(actions, ",") {
			if !validScopeAction(a) {
				return nil, fmt.Errorf("%w %q: bad action %q", ErrInvalidScope, s, a)
			}
			acts = appendUnique(acts, a)
		}
		j := slices.IndexFunc(out, func(x Access) bool { return x.Type == typ && x.Name == name })
		if j < 0 {
			out = append(out, Access{Type: typ, Name: name, Actions: acts})
			continue
		}
		for _, a := range acts {
			out[j].Actions = appendUnique(out[j].Actions, a)
		}
	}
	return out, nil
}

// validScopeType accepts lower-case alphanumerics with an optional
// "(class)" suffix.
func validScopeType(t string) bool {
	base, class, hasClass := strings.Cut(t, "(")
	if hasClass {
		var ok bool
		class, ok = strings.CutSuffix(class, ")")
		if !ok || class == "" || !isAlnum(class) {
			return false
		}
	}
	return base != "" && isAlnum(base)
}

func validScopeAction(a string) bool {
	if a == "*" {
		return true
	}
	if a == "" {
		return false
	}
	for _, r := range a {
		if (r < 'a' || r > 'z') && r != '-' && r != '_' {
			return false
		}
	}
	return true
}

func isAlnum(s string) bool {
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

func appendUnique(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

// Challenge builds the WWW-Authenticate value a registry sends with a 401:
// Bearer realm="https://berth.example/token",service="berth",scope="repository:private/app:pull,push".
// Several scopes are joined by a space, as Docker's token specification
// does; an empty service or scope is left out.
func Challenge(realm, service string, scope []Access) string {
	var b strings.Builder
	b.WriteString(`Bearer realm=`)
	b.WriteString(quote(realm))
	if service != "" {
		b.WriteString(`,service=`)
		b.WriteString(quote(service))
	}
	if len(scope) > 0 {
		parts := make([]string, len(scope))
		for i, a := range scope {
			parts[i] = a.String()
		}
		b.WriteString(`,scope=`)
		b.WriteString(quote(strings.Join(parts, " ")))
	}
	return b.String()
}

// quote makes an RFC 7230 quoted-string.
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}
