package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// decode sets the fields of v, a pointer to a struct, from the YAML
// document in data, over the values v already holds. Each problem names
// the key's path, what was expected and the value given, so that one pass
// reports every mistake of a file: wrong types, unknown keys and keys given
// twice. failed holds the paths of the keys that did not decode.
func decode(data []byte, v any) (problems []error, failed map[string]bool) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return []error{err}, nil
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil // an empty file: every key keeps its default
	}
	d := &decoder{failed: map[string]bool{}}
	d.value(doc.Content[0], reflect.ValueOf(v).Elem(), "")
	return d.problems, d.failed
}

type decoder struct {
	problems []error
	failed   map[string]bool
}

var durationType = reflect.TypeFor[time.Duration]()

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	at := path
	if at == "" {
		at = "the file"
	}
	d.problems = append(d.problems, fmt.Errorf("%s: %s (line %d)", at, fmt.Sprintf(format, args...), n.Line))
	d.failed[path] = true
}

// value decodes n into v, the value at path.
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		// An empty key keeps the default, and empties a list or a map.
		if v.Kind() == reflect.Slice || v.Kind() == reflect.Map {
			v.Set(reflect.Zero(v.Type()))
		}
		return
	}
	switch {
	case v.Type() == durationType:
		d.scalar(n, v, path)
	case v.Kind() == reflect.Struct:
		d.fields(n, v, path)
	case v.Kind() == reflect.Slice:
		d.list(n, v, path)
	case v.Kind() == reflect.Map:
		d.dict(n, v, path)
	default:
		d.scalar(n, v, path)
	}
}

// fields decodes a mapping into a struct, by the fields' yaml names.
func (d *decoder) fields(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping of keys, got %s", given(n))
		return
	}
	index := map[string]int{}
	var names []string
	for i := range v.NumField() {
		if name := keyName(v.Type().Field(i)); name != "" {
			index[name] = i
			names = append(names, name)
		}
	}
	d.pairs(n, path, func(k, val *yaml.Node, at string) {
		f, ok := index[k.Value]
		if !ok {
			d.fail(k, at, "unknown key; the keys here are %s", strings.Join(names, ", "))
			return
		}
		d.value(val, v.Field(f), at)
	})
}

// pairs calls each with every key of a mapping and its value, and reports
// a key given twice instead. Keys merged in with "<<: *anchor" come first
// and yield to the mapping's own.
func (d *decoder) pairs(n *yaml.Node, path string, each func(k, val *yaml.Node, at string)) {
	seen := map[string]int{}
	var merged []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k, val := n.Content[i], n.Content[i+1]; k.Tag == "!!merge" {
			merged = append(merged, val)
		} else {
			seen[k.Value] = -1 // given here: not taken from a merge
		}
	}
	for _, m := range merged {
		d.merge(m, path, seen, each)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Tag == "!!merge" {
			continue
		}
		at := join(path, k.Value)
		if line, twice := seen[k.Value]; twice && line >= 0 {
			d.fail(k, at, "given twice (first on line %d)", line)
			continue
		}
		seen[k.Value] = k.Line
		each(k, val, at)
	}
}

// merge gives each the keys of a merged mapping (or list of mappings) that
// were not given yet.
func (d *decoder) merge(m *yaml.Node, path string, seen map[string]int, each func(k, val *yaml.Node, at string)) {
	if m.Kind == yaml.AliasNode {
		m = m.Alias
	}
	switch m.Kind {
	case yaml.SequenceNode:
		for _, e := range m.Content {
			d.merge(e, path, seen, each)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, val := m.Content[i], m.Content[i+1]
			if _, given := seen[k.Value]; !given {
				seen[k.Value] = -2 // merged: the mapping's own key still wins
				each(k, val, join(path, k.Value))
			}
		}
	default:
		d.fail(m, path, "expected a mapping to merge with <<, got %s", given(m))
	}
}

// keyName is a field's key in the file; "" for fields that are not keys.
func keyName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	switch name {
	case "-":
		return ""
	case "":
		return strings.ToLower(f.Name)
	}
	return name
}

// list decodes a sequence into a new slice: a list in the file replaces
// the default list.
func (d *decoder) list(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "expected a list, got %s", given(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, e := range n.Content {
		d.value(e, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
	}
	v.Set(s)
}

// dict decodes a mapping into a new map with string keys.
func (d *decoder) dict(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping, got %s", given(n))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	d.pairs(n, path, func(k, val *yaml.Node, at string) {
		e := reflect.New(v.Type().Elem()).Elem()
		d.value(val, e, at)
		m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), e)
	})
	v.Set(m)
}

// scalar decodes a single value with yaml's own rules (durations as
// "90s", numbers, booleans) and words a failure in the file's terms.
func (d *decoder) scalar(n *yaml.Node, v reflect.Value, path string) {
	want := expected(v.Type(), path)
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, "expected %s, got %s", want, given(n))
		return
	}
	p := reflect.New(v.Type())
	// yaml would truncate 1.5 into an integer; a count or a size is whole.
	truncated := n.Tag == "!!float" && isInteger(v.Kind()) && v.Type() != durationType
	if err := n.Decode(p.Interface()); err != nil || truncated {
		d.fail(n, path, "expected %s, got %s", want, given(n))
		return
	}
	v.Set(p.Elem())
}

// expected names what a key of type t takes.
func expected(t reflect.Type, path string) string {
	if t == durationType {
		return `a duration such as "90s", "1h30m" or "24h"`
	}
	if t == reflect.TypeFor[*Freshness]() || t == reflect.TypeFor[Freshness]() {
		return `a duration such as "0s" or "720h", or never`
	}
	if isInteger(t.Kind()) {
		if strings.HasSuffix(path, "Bytes") {
			return "an integer (bytes)"
		}
		return "an integer"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return t.String()
}

func isInteger(k reflect.Kind) bool {
	return k >= reflect.Int && k <= reflect.Uint64
}

// given describes the value a node holds, for an error.
func given(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	if slices.Contains([]string{"!!str", "!!binary", "!!timestamp"}, n.Tag) || n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
		return fmt.Sprintf("%q", n.Value)
	}
	return n.Value
}

// join extends a key path: "cache" and "maxBytes" make "cache.maxBytes".
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
