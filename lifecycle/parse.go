package lifecycle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// Parse decodes an ECR lifecycle policy document strictly and validates it.
//
// Unknown fields, duplicate fields, fields of the wrong JSON type and
// trailing data are refused; field names are case-sensitive. A JSON null is
// treated as an absent field. Every problem is reported at once: the error
// wraps ErrInvalidPolicy and joins one *FieldError per offending field path
// (see FieldErrors). On error the returned *Policy is nil.
func Parse(data []byte) (*Policy, error) {
	var pr problems
	if err := checkSyntax(data); err != nil {
		pr.errs = append(pr.errs, &FieldError{Msg: err.Error()})
		return nil, pr.err()
	}
	p := new(Policy)
	d := &decoder{pr: &pr}
	present := d.object("", data, map[string]func(string, json.RawMessage){
		"rules": func(path string, raw json.RawMessage) { p.Rules = d.rules(path, raw) },
	})
	if !present["rules"] {
		pr.add("rules", "required")
	}
	p.validate(&pr)
	if err := pr.err(); err != nil {
		return nil, err
	}
	return p, nil
}

// checkSyntax rejects malformed JSON and anything after the top-level value,
// so the decoder below only has to deal with well-formed values.
func checkSyntax(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	var v json.RawMessage
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("malformed JSON: %w", err)
	}
	if _, err := dec.Token(); err == nil {
		return fmt.Errorf("malformed JSON: unexpected data after the policy at offset %d", dec.InputOffset())
	}
	return nil
}

// decoder walks well-formed JSON field by field so that every problem can be
// reported with its path, instead of stopping at the first one as
// encoding/json does.
type decoder struct{ pr *problems }

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

func kind(raw json.RawMessage) byte {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

// object decodes a JSON object, calling the handler of each known, non-null
// field and reporting unknown and duplicate fields. It returns the set of
// known fields present with a non-null value.
func (d *decoder) object(path string, raw json.RawMessage, fields map[string]func(string, json.RawMessage)) map[string]bool {
	present := map[string]bool{}
	if kind(raw) != '{' {
		if path == "" {
			d.pr.add(path, "the policy must be a JSON object")
		} else {
			d.pr.add(path, "must be an object")
		}
		return present
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	_, _ = dec.Token() // '{'; syntax was checked by checkSyntax
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			d.pr.add(path, "malformed object: %v", err)
			return present
		}
		key, _ := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			d.pr.add(join(path, key), "malformed value: %v", err)
			return present
		}
		fp := join(path, key)
		handle, known := fields[key]
		switch {
		case !known:
			d.pr.add(fp, "unknown field")
		case seen[key]:
			d.pr.add(fp, "duplicate field")
		case isNull(val):
		default:
			present[key] = true
			handle(fp, val)
		}
		seen[key] = true
	}
	return present
}

func (d *decoder) array(path string, raw json.RawMessage) []json.RawMessage {
	if kind(raw) != '[' {
		d.pr.add(path, "must be an array")
		return nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		d.pr.add(path, "malformed array: %v", err)
		return nil
	}
	return items
}

func (d *decoder) str(path string, raw json.RawMessage) string {
	var s string
	if kind(raw) != '"' || json.Unmarshal(raw, &s) != nil {
		d.pr.add(path, "must be a string")
		return ""
	}
	return s
}

func (d *decoder) integer(path string, raw json.RawMessage) int {
	text := string(bytes.TrimSpace(raw))
	if k := kind(raw); k != '-' && (k < '0' || k > '9') {
		d.pr.add(path, "must be an integer")
		return 0
	}
	n, err := strconv.ParseInt(text, 10, 64)
	switch {
	case err != nil && !isRangeErr(err):
		d.pr.add(path, "must be an integer, got %s", text)
	case text[0] == '-' && (err != nil || n < 1):
		d.pr.add(path, "must be a positive integer, got %s", text)
	case err != nil || n > maxInt:
		d.pr.add(path, "must be at most %d, got %s", maxInt, text)
	default:
		return int(n)
	}
	return 0
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

func (d *decoder) strings(path string, raw json.RawMessage) []string {
	items := d.array(path, raw)
	out := make([]string, 0, len(items)) // non-nil: the field is present
	for j, it := range items {
		out = append(out, d.str(fmt.Sprintf("%s[%d]", path, j), it))
	}
	return out
}

func (d *decoder) rules(path string, raw json.RawMessage) []Rule {
	items := d.array(path, raw)
	out := make([]Rule, len(items))
	for i, it := range items {
		out[i] = d.rule(fmt.Sprintf("%s[%d]", path, i), it)
	}
	return out
}

func (d *decoder) rule(path string, raw json.RawMessage) Rule {
	var r Rule
	present := d.object(path, raw, map[string]func(string, json.RawMessage){
		"rulePriority": func(p string, v json.RawMessage) { r.RulePriority = d.integer(p, v) },
		"description":  func(p string, v json.RawMessage) { r.Description = d.str(p, v) },
		"selection":    func(p string, v json.RawMessage) { r.Selection = d.selection(p, v) },
		"action":       func(p string, v json.RawMessage) { r.Action = d.action(p, v) },
	})
	if kind(raw) != '{' {
		return r
	}
	for _, f := range []string{"rulePriority", "selection", "action"} {
		if !present[f] {
			d.pr.add(join(path, f), "required")
		}
	}
	return r
}

func (d *decoder) selection(path string, raw json.RawMessage) Selection {
	var s Selection
	present := d.object(path, raw, map[string]func(string, json.RawMessage){
		"tagStatus":      func(p string, v json.RawMessage) { s.TagStatus = TagStatus(d.str(p, v)) },
		"tagPrefixList":  func(p string, v json.RawMessage) { s.TagPrefixList = d.strings(p, v) },
		"tagPatternList": func(p string, v json.RawMessage) { s.TagPatternList = d.strings(p, v) },
		"countType":      func(p string, v json.RawMessage) { s.CountType = CountType(d.str(p, v)) },
		"countUnit":      func(p string, v json.RawMessage) { s.CountUnit = d.str(p, v) },
		"countNumber":    func(p string, v json.RawMessage) { s.CountNumber = d.integer(p, v) },
	})
	if kind(raw) == '{' && !present["countNumber"] {
		d.pr.add(join(path, "countNumber"), "required")
	}
	return s
}

func (d *decoder) action(path string, raw json.RawMessage) Action {
	var a Action
	d.object(path, raw, map[string]func(string, json.RawMessage){
		"type": func(p string, v json.RawMessage) { a.Type = d.str(p, v) },
	})
	return a
}
