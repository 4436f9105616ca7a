package lifecycle

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// FuzzParse: no lifecycle policy makes Parse panic; what it refuses wraps
// ErrInvalidPolicy, and what it accepts goes through encoding/json and
// Parse again to the same policy.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		policy(rule(1, selUntaggedCount), rule(3, selTaggedPushed), rule(10, selAnyPulled)),
		policy(rule(5, `"tagStatus":"tagged","tagPatternList":["prod*","*-eu-*-*-*"],"countType":"imageCountMoreThan","countNumber":3`)),
		`{"rules":[{"rulePriority":1,"description":"Expire images older than 14 days","selection":{"tagStatus":"untagged",` +
			`"countType":"sinceImagePushed","countUnit":"days","countNumber":14},"action":{"type":"expire"}}]}`,
		`{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["prod"],` +
			`"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},` +
			`{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}`,
		`{"rules":[]}`,
		`{"rules":[`,
		`{}`,
		`{"rules":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidPolicy) || p != nil {
				t.Fatalf("Parse(%q) = %v, %v; want a nil policy and ErrInvalidPolicy", data, p, err)
			}
			return
		}
		out, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(out)
		if err != nil || !reflect.DeepEqual(again, p) {
			t.Fatalf("Parse(%q) = %+v, which marshals to %s and parses to %+v, %v", data, p, out, again, err)
		}
	})
}
