package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Berth's actions; see the package documentation for what each covers and
// the ECR actions that map to it.
const (
	ActionPull   = "pull"
	ActionPush   = "push"
	ActionDelete = "delete"
	ActionList   = "list"
)

// AllActions returns Berth's four actions.
func AllActions() []string {
	return []string{ActionPull, ActionPush, ActionDelete, ActionList}
}

// canonicalActions maps an action as a policy may spell it to Berth's
// actions. ECR names are case-insensitive, as IAM's are.
func canonicalActions(name string) ([]string, bool) {
	switch strings.ToLower(name) {
	case "pull", "ecr:batchgetimage", "ecr:getdownloadurlforlayer", "ecr:batchchecklayeravailability":
		return []string{ActionPull}, true
	case "push", "ecr:putimage", "ecr:initiatelayerupload", "ecr:uploadlayerpart", "ecr:completelayerupload":
		return []string{ActionPush}, true
	case "delete", "ecr:batchdeleteimage":
		return []string{ActionDelete}, true
	case "list", "ecr:listimages", "ecr:describeimages", "ecr:describerepositories":
		return []string{ActionList}, true
	case "*", "ecr:*":
		return AllActions(), true
	}
	return nil, false
}

// isAction reports whether a is one of Berth's four actions.
func isAction(a string) bool { return slices.Contains(AllActions(), a) }

// ErrInvalidPolicy is wrapped by every ParsePolicy error (a *PolicyError).
var ErrInvalidPolicy = errors.New("invalid policy")

// PolicyError says which field of a policy is wrong.
type PolicyError struct {
	Field string // e.g. "Statement[1].Condition.IpAddress.aws:SourceIp[0]"
	Msg   string
}

func (e *PolicyError) Error() string {
	if e.Field == "" {
		return "invalid policy: " + e.Msg
	}
	return "invalid policy: " + e.Field + ": " + e.Msg
}

func (e *PolicyError) Unwrap() error { return ErrInvalidPolicy }

func policyErr(field, format string, args ...any) error {
	return &PolicyError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Effect is Allow or Deny.
type Effect string

// Effects.
const (
	Allow Effect = "Allow"
	Deny  Effect = "Deny"
)

// Policy is a parsed repository policy.
type Policy struct {
	Version    string
	ID         string
	Statements []Statement
}

// Statement is one parsed policy statement.
type Statement struct {
	Sid        string
	Effect     Effect
	Principals Principals
	// Actions are Berth's actions (ECR names already mapped).
	Actions []string
	// SourceIP is Condition.IpAddress."aws:SourceIp": the statement applies
	// only to clients within one of these. Empty: no such condition.
	SourceIP []netip.Prefix
	// NotSourceIP is Condition.NotIpAddress."aws:SourceIp": the statement
	// applies only to clients outside all of these.
	NotSourceIP []netip.Prefix
}

// Principals is whom a statement applies to.
type Principals struct {
	Everyone bool     // "*": anyone, anonymous clients included
	AnyUser  bool     // "user:*": any authenticated user
	Users    []string // "user:alice"
	Groups   []string // "group:dev"
}

// ParsePolicy parses a repository policy in ECR's JSON shape:
//
//	{"Version": "2012-10-17",
//	 "Statement": [{
//	   "Sid": "AllowDevPush",
//	   "Effect": "Allow",
//	   "Principal": {"AWS": ["user:alice", "group:dev"]},
//	   "Action": ["ecr:PutImage", "pull"],
//	   "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8"]}}}]}
//
// Principal is "*" (anyone, anonymous included), {"AWS": ...} with "*",
// "user:NAME", "user:*" (any authenticated user) or "group:NAME", or the
// simpler {"Users": [...], "Groups": [...]} ("*" in Users is any
// authenticated user). Action and the list fields take a string or a list.
// Condition supports IpAddress and NotIpAddress on aws:SourceIp, with CIDRs
// or single addresses. Unknown keys, effects, actions and operators, bad
// CIDRs and an empty Statement are refused with a *PolicyError naming the
// field.
func ParsePolicy(data []byte) (*Policy, error) {
	top, err := object(data, "")
	if err != nil {
		return nil, err
	}
	if err := onlyKeys(top, "", "Version", "Id", "Statement"); err != nil {
		return nil, err
	}
	p := &Policy{}
	if raw, ok := top["Version"]; ok {
		if err := json.Unmarshal(raw, &p.Version); err != nil {
			return nil, policyErr("Version", "want a string")
		}
		if p.Version != "2012-10-17" && p.Version != "2008-10-17" {
			return nil, policyErr("Version", "unknown version %q; want 2012-10-17", p.Version)
		}
	}
	if raw, ok := top["Id"]; ok {
		if err := json.Unmarshal(raw, &p.ID); err != nil {
			return nil, policyErr("Id", "want a string")
		}
	}
	raw, ok := top["Statement"]
	if !ok {
		return nil, policyErr("Statement", "missing")
	}
	var list []json.RawMessage
	if trimmed := bytes.TrimSpace(raw); len(trimmed) > 0 && trimmed[0] == '{' {
		list = []json.RawMessage{raw}
	} else if err := json.Unmarshal(raw, &list); err != nil {
		return nil, policyErr("Statement", "want a list of statements")
	}
	if len(list) == 0 {
		return nil, policyErr("Statement", "empty: a policy needs at least one statement")
	}
	for i, rs := range list {
		st, err := parseStatement(rs, fmt.Sprintf("Statement[%d]", i))
		if err != nil {
			return nil, err
		}
		p.Statements = append(p.Statements, st)
	}
	return p, nil
}

func parseStatement(data []byte, field string) (Statement, error) {
	var st Statement
	m, err := object(data, field)
	if err != nil {
		return st, err
	}
	if err := onlyKeys(m, field, "Sid", "Effect", "Principal", "Action", "Condition"); err != nil {
		return st, err
	}
	if raw, ok := m["Sid"]; ok {
		if err := json.Unmarshal(raw, &st.Sid); err != nil {
			return st, policyErr(field+".Sid", "want a string")
		}
	}
	raw, ok := m["Effect"]
	if !ok {
		return st, policyErr(field+".Effect", "missing")
	}
	var effect string
	if err := json.Unmarshal(raw, &effect); err != nil {
		return st, policyErr(field+".Effect", "want a string")
	}
	if st.Effect = Effect(effect); st.Effect != Allow && st.Effect != Deny {
		return st, policyErr(field+".Effect", "unknown effect %q; want Allow or Deny", effect)
	}
	raw, ok = m["Principal"]
	if !ok {
		return st, policyErr(field+".Principal", "missing")
	}
	if st.Principals, err = parsePrincipal(raw, field+".Principal"); err != nil {
		return st, err
	}
	raw, ok = m["Action"]
	if !ok {
		return st, policyErr(field+".Action", "missing")
	}
	names, err := stringList(raw, field+".Action")
	if err != nil {
		return st, err
	}
	for i, n := range names {
		acts, ok := canonicalActions(n)
		if !ok {
			return st, policyErr(fmt.Sprintf("%s.Action[%d]", field, i),
				"unknown action %q; want pull, push, delete, list, * or an ECR action that maps to them", n)
		}
		for _, a := range acts {
			st.Actions = appendUnique(st.Actions, a)
		}
	}
	if raw, ok := m["Condition"]; ok {
		if err := parseCondition(raw, field+".Condition", &st); err != nil {
			return st, err
		}
	}
	return st, nil
}

func parsePrincipal(raw json.RawMessage, field string) (Principals, error) {
	var p Principals
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s != "*" {
			return p, policyErr(field, "%q: want \"*\" or an object", s)
		}
		p.Everyone = true
		return p, nil
	}
	m, err := object(raw, field)
	if err != nil {
		return p, err
	}
	if err := onlyKeys(m, field, "AWS", "Users", "Groups"); err != nil {
		return p, err
	}
	if len(m) == 0 {
		return p, policyErr(field, "empty: name at least one principal")
	}
	if raw, ok := m["AWS"]; ok {
		names, err := stringList(raw, field+".AWS")
		if err != nil {
			return p, err
		}
		for i, n := range names {
			f := fmt.Sprintf("%s.AWS[%d]", field, i)
			kind, name, _ := strings.Cut(n, ":")
			switch {
			case n == "*":
				p.Everyone = true
			case kind == "user" && name == "*":
				p.AnyUser = true
			case kind == "user" && name != "":
				p.Users = appendUnique(p.Users, name)
			case kind == "group" && name != "" && name != "*":
				p.Groups = appendUnique(p.Groups, name)
			default:
				return p, policyErr(f, "%q: want \"*\", \"user:NAME\", \"user:*\" or \"group:NAME\"", n)
			}
		}
	}
	if raw, ok := m["Users"]; ok {
		names, err := stringList(raw, field+".Users")
		if err != nil {
			return p, err
		}
		for _, n := range names {
			if n == "*" {
				p.AnyUser = true
			} else {
				p.Users = appendUnique(p.Users, n)
			}
		}
	}
	if raw, ok := m["Groups"]; ok {
		names, err := stringList(raw, field+".Groups")
		if err != nil {
			return p, err
		}
		for i, n := range names {
			if n == "*" {
				return p, policyErr(fmt.Sprintf("%s.Groups[%d]", field, i), `"*" is not a group; use Users: ["*"] for any user`)
			}
			p.Groups = appendUnique(p.Groups, n)
		}
	}
	return p, nil
}

func parseCondition(raw json.RawMessage, field string, st *Statement) error {
	ops, err := object(raw, field)
	if err != nil {
		return err
	}
	if len(ops) == 0 {
		return policyErr(field, "empty")
	}
	for _, op := range sortedKeys(ops) {
		f := field + "." + op
		var dst *[]netip.Prefix
		switch op {
		case "IpAddress":
			dst = &st.SourceIP
		case "NotIpAddress":
			dst = &st.NotSourceIP
		default:
			return policyErr(f, "unsupported condition operator %q; want IpAddress or NotIpAddress", op)
		}
		keys, err := object(ops[op], f)
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			return policyErr(f, "empty")
		}
		for _, key := range sortedKeys(keys) {
			fk := f + "." + key
			if !strings.EqualFold(key, "aws:SourceIp") {
				return policyErr(fk, "unsupported condition key %q; want aws:SourceIp", key)
			}
			cidrs, err := stringList(keys[key], fk)
			if err != nil {
				return err
			}
			for i, c := range cidrs {
				pfx, err := parsePrefix(c)
				if err != nil {
					return policyErr(fmt.Sprintf("%s[%d]", fk, i), "bad CIDR %q", c)
				}
				*dst = append(*dst, pfx)
			}
		}
	}
	return nil
}

// parsePrefix accepts a CIDR or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// object decodes a JSON object; field names it in the error.
func object(data []byte, field string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil || m == nil {
		what := "want a JSON object"
		var se *json.SyntaxError
		if errors.As(err, &se) {
			what = fmt.Sprintf("malformed JSON at offset %d: %v", se.Offset, se)
		}
		return nil, policyErr(field, "%s", what)
	}
	return m, nil
}

// onlyKeys refuses keys other than the allowed ones (case-sensitive, as
// IAM's policy grammar is).
func onlyKeys(m map[string]json.RawMessage, field string, allowed ...string) error {
	for _, k := range sortedKeys(m) {
		if !slices.Contains(allowed, k) {
			f := k
			if field != "" {
				f = field + "." + k
			}
			return policyErr(f, "unknown key; want one of %s", strings.Join(allowed, ", "))
		}
	}
	return nil
}

// stringList decodes a string or a non-empty list of non-empty strings.
func stringList(raw json.RawMessage, field string) ([]string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "" {
			return nil, policyErr(field, "empty string")
		}
		return []string{s}, nil
	}
	var l []string
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, policyErr(field, "want a string or a list of strings")
	}
	if len(l) == 0 {
		return nil, policyErr(field, "empty list")
	}
	for i, s := range l {
		if s == "" {
			return nil, policyErr(fmt.Sprintf("%s[%d]", field, i), "empty string")
		}
	}
	return l, nil
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
