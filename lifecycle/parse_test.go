package lifecycle

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// policy builds a policy document from rule objects given as JSON text.
func policy(rules ...string) string {
	return `{"rules":[` + strings.Join(rules, ",") + `]}`
}

// rule builds a rule object from its priority and the inside of selection.
func rule(priority int, selection string) string {
	return fmt.Sprintf(`{"rulePriority":%d,"description":"r%d","selection":{%s},"action":{"type":"expire"}}`,
		priority, priority, selection)
}

const (
	selUntaggedCount = `"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1`
	selTaggedPushed  = `"tagStatus":"tagged","tagPrefixList":["v"],"countType":"sinceImagePushed","countUnit":"days","countNumber":30`
	selAnyPulled     = `"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":90`
)

func TestParseValid(t *testing.T) {
	data := policy(
		rule(1, selUntaggedCount),
		rule(5, `"tagStatus":"tagged","tagPatternList":["prod*","*-eu-*-*-*"],"countType":"imageCountMoreThan","countNumber":3`),
		rule(3, selTaggedPushed),
		rule(10, selAnyPulled),
	)
	p, err := Parse([]byte(data))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := &Policy{Rules: []Rule{
		{RulePriority: 1, Description: "r1", Selection: Selection{TagStatus: TagStatusUntagged, CountType: CountImageCountMoreThan, CountNumber: 1}, Action: Action{Type: ActionExpire}},
		{RulePriority: 5, Description: "r5", Selection: Selection{TagStatus: TagStatusTagged, TagPatternList: []string{"prod*", "*-eu-*-*-*"}, CountType: CountImageCountMoreThan, CountNumber: 3}, Action: Action{Type: ActionExpire}},
		{RulePriority: 3, Description: "r3", Selection: Selection{TagStatus: TagStatusTagged, TagPrefixList: []string{"v"}, CountType: CountSinceImagePushed, CountUnit: CountUnitDays, CountNumber: 30}, Action: Action{Type: ActionExpire}},
		{RulePriority: 10, Description: "r10", Selection: Selection{TagStatus: TagStatusAny, CountType: CountSinceImagePulled, CountUnit: CountUnitDays, CountNumber: 90}, Action: Action{Type: ActionExpire}},
	}}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("Parse = %+v, want %+v", p, want)
	}
	// The types round-trip through encoding/json to the same policy.
	out, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := Parse(out)
	if err != nil {
		t.Fatalf("Parse(Marshal(p)): %v\n%s", err, out)
	}
	if !reflect.DeepEqual(p2, want) {
		t.Fatalf("round trip = %+v, want %+v", p2, want)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		data string
		want []string // "path: message fragment", one per reported problem
	}{
		{"malformed JSON", `{"rules":[`, []string{": malformed JSON"}},
		{"trailing data", policy(rule(1, selUntaggedCount)) + ` {}`, []string{": unexpected data after the policy"}},
		{"not an object", `[]`, []string{": the policy must be a JSON object"}},
		{"rules missing", `{}`, []string{"rules: required"}},
		{"rules empty", `{"rules":[]}`, []string{"rules: at least one rule is required"}},
		{"rules not an array", `{"rules":{}}`, []string{"rules: must be an array"}},
		{"unknown top-level field", `{"rules":[` + rule(1, selUntaggedCount) + `],"version":1}`, []string{"version: unknown field"}},
		{"field names are case-sensitive", `{"Rules":[` + rule(1, selUntaggedCount) + `]}`, []string{"Rules: unknown field", "rules: required"}},
		{"rule not an object", `{"rules":[1]}`, []string{"rules[0]: must be an object"}},
		{"unknown rule field", policy(`{"rulePriority":1,"selection":{` + selUntaggedCount + `},"action":{"type":"expire"},"enabled":true}`), []string{"rules[0].enabled: unknown field"}},
		{"duplicate field", policy(`{"rulePriority":1,"rulePriority":2,"selection":{` + selUntaggedCount + `},"action":{"type":"expire"}}`), []string{"rules[0].rulePriority: duplicate field"}},
		{"unknown selection field", policy(rule(1, selUntaggedCount+`,"storageClass":"archive"`)), []string{"rules[0].selection.storageClass: unknown field"}},
		{"unknown action field", policy(`{"rulePriority":1,"selection":{` + selUntaggedCount + `},"action":{"type":"expire","targetStorageClass":"archive"}}`), []string{"rules[0].action.targetStorageClass: unknown field"}},
		{"rulePriority missing", policy(`{"selection":{` + selUntaggedCount + `},"action":{"type":"expire"}}`), []string{"rules[0].rulePriority: required"}},
		{"rulePriority zero", policy(rule(0, selUntaggedCount)), []string{"rules[0].rulePriority: must be a positive integer, got 0"}},
		{"rulePriority negative", policy(rule(-2, selUntaggedCount)), []string{"rules[0].rulePriority: must be a positive integer, got -2"}},
		{"rulePriority fractional", policy(`{"rulePriority":1.5,"selection":{` + selUntaggedCount + `},"action":{"type":"expire"}}`), []string{"rules[0].rulePriority: must be an integer, got 1.5"}},
		{"rulePriority string", policy(`{"rulePriority":"1","selection":{` + selUntaggedCount + `},"action":{"type":"expire"}}`), []string{"rules[0].rulePriority: must be an integer"}},
		{"rulePriority too large", policy(`{"rulePriority":99999999999999999999,"selection":{` + selUntaggedCount + `},"action":{"type":"expire"}}`), []string{"rules[0].rulePriority: must be at most 2147483647"}},
		{"rulePriority duplicate", policy(rule(2, selUntaggedCount), rule(2, selTaggedPushed)), []string{"rules[1].rulePriority: must be unique: 2 is also used by rules[0]"}},
		{"description not a string", policy(`{"rulePriority":1,"description":7,"selection":{` + selUntaggedCount + `},"action":{"type":"expire"}}`), []string{"rules[0].description: must be a string"}},
		{"selection missing", policy(`{"rulePriority":1,"action":{"type":"expire"}}`), []string{"rules[0].selection: required"}},
		{"selection not an object", policy(`{"rulePriority":1,"selection":"any","action":{"type":"expire"}}`), []string{"rules[0].selection: must be an object"}},
		{"tagStatus missing", policy(rule(1, `"countType":"imageCountMoreThan","countNumber":1`)), []string{"rules[0].selection.tagStatus: required"}},
		{"tagStatus invalid", policy(rule(1, `"tagStatus":"TAGGED","tagPrefixList":["v"],"countType":"imageCountMoreThan","countNumber":1`)), []string{`rules[0].selection.tagStatus: must be one of "tagged", "untagged", "any", got "TAGGED"`}},
		{"tagged without lists", policy(rule(1, `"tagStatus":"tagged","countType":"imageCountMoreThan","countNumber":1`)), []string{"rules[0].selection.tagPatternList: required when tagStatus is tagged and tagPrefixList is not set"}},
		{"tagged with both lists", policy(rule(1, `"tagStatus":"tagged","tagPrefixList":["v"],"tagPatternList":["v*"],"countType":"imageCountMoreThan","countNumber":1`)), []string{"rules[0].selection.tagPatternList: not allowed together with tagPrefixList"}},
		{"tagged with empty prefix list", policy(rule(1, `"tagStatus":"tagged","tagPrefixList":[],"countType":"imageCountMoreThan","countNumber":1`)), []string{"rules[0].selection.tagPrefixList: must contain at least one entry"}},
		{"empty prefix", policy(rule(1, `"tagStatus":"tagged","tagPrefixList":["v",""],"countType":"imageCountMoreThan","countNumber":1`)), []string{"rules[0].selection.tagPrefixList[1]: must not be empty"}},
		{"wildcard in prefix", policy(rule(1, `"tagStatus":"tagged","tagPrefixList":["prod*"],"countType":"imageCountMoreThan","countNumber":1`)), []string{"rules[0].selection.tagPrefixList[0]: wildcards are not allowed in tagPrefixList"}},
		{"prefix list not an array", policy(rule(1, `"tagStatus":"tagged","tagPrefixList":"v","countType":"imageCountMoreThan","countNumber":1`)), []string{"rules[0].selection.tagPrefixList: must be an array"}},
		{"prefix not a string", policy(rule(1, `"tagStatus":"tagged","tagPrefixList":["v",2],"countType":"imageCountMoreThan","countNumber":1`)), []string{"rules[0].selection.tagPrefixList[1]: must be a string"}},
		{"five wildcards", policy(rule(1, `"tagStatus":"tagged","tagPatternList":["*test*1*2*3","test*1*2*3*4*"],"countType":"imageCountMoreThan","countNumber":1`)), []string{"rules[0].selection.tagPatternList[1]: at most 4 wildcards (*) allowed, got 5"}},
		{"prefix list with untagged", policy(rule(1, `"tagStatus":"untagged","tagPrefixList":["v"],"countType":"imageCountMoreThan","countNumber":1`)), []string{"rules[0].selection.tagPrefixList: not allowed when tagStatus is untagged"}},
		{"pattern list with any", policy(rule(1, `"tagStatus":"any","tagPatternList":["v*"],"countType":"imageCountMoreThan","countNumber":1`)), []string{"rules[0].selection.tagPatternList: not allowed when tagStatus is any"}},
		{"two untagged rules", policy(rule(1, selUntaggedCount), rule(2, selUntaggedCount)), []string{"rules[1].selection.tagStatus: only one rule may select untagged images (rules[0] already does)"}},
		{"any not last", policy(rule(1, selAnyPulled), rule(2, selUntaggedCount)), []string{`rules[0].rulePriority: a rule with tagStatus "any" must have the highest rulePriority (got 1, highest is 2)`}},
		{"countType missing", policy(rule(1, `"tagStatus":"untagged","countNumber":1`)), []string{"rules[0].selection.countType: required"}},
		{"countType invalid", policy(rule(1, `"tagStatus":"untagged","countType":"sinceImageTransitioned","countUnit":"days","countNumber":1`)), []string{`rules[0].selection.countType: must be one of "imageCountMoreThan", "sinceImagePushed", "sinceImagePulled", got "sinceImageTransitioned"`}},
		{"countUnit missing for sinceImagePushed", policy(rule(1, `"tagStatus":"untagged","countType":"sinceImagePushed","countNumber":14`)), []string{"rules[0].selection.countUnit: required when countType is sinceImagePushed"}},
		{"countUnit missing for sinceImagePulled", policy(rule(1, `"tagStatus":"untagged","countType":"sinceImagePulled","countNumber":14`)), []string{"rules[0].selection.countUnit: required when countType is sinceImagePulled"}},
		{"countUnit not days", policy(rule(1, `"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"hours","countNumber":14`)), []string{`rules[0].selection.countUnit: must be "days", got "hours"`}},
		{"countUnit with imageCountMoreThan", policy(rule(1, `"tagStatus":"untagged","countType":"imageCountMoreThan","countUnit":"days","countNumber":1`)), []string{"rules[0].selection.countUnit: not allowed when countType is imageCountMoreThan"}},
		{"countNumber missing", policy(rule(1, `"tagStatus":"untagged","countType":"imageCountMoreThan"`)), []string{"rules[0].selection.countNumber: required"}},
		{"countNumber zero", policy(rule(1, `"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":0`)), []string{"rules[0].selection.countNumber: must be a positive integer, got 0"}},
		{"countNumber fractional", policy(rule(1, `"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":2.5`)), []string{"rules[0].selection.countNumber: must be an integer, got 2.5"}},
		{"countNumber too large", policy(rule(1, `"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":2147483648`)), []string{"rules[0].selection.countNumber: must be at most 2147483647, got 2147483648"}},
		{"action missing", policy(`{"rulePriority":1,"selection":{` + selUntaggedCount + `}}`), []string{"rules[0].action: required"}},
		{"action type missing", policy(`{"rulePriority":1,"selection":{` + selUntaggedCount + `},"action":{}}`), []string{"rules[0].action.type: required"}},
		{"action type not expire", policy(`{"rulePriority":1,"selection":{` + selUntaggedCount + `},"action":{"type":"transition"}}`), []string{`rules[0].action.type: must be "expire", got "transition"`}},
		{
			name: "several problems are all reported",
			data: `{"rules":[` +
				`{"rulePriority":3,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":5},"action":{"type":"expire"}},` +
				`{"rulePriority":3,"selection":{"tagStatus":"tagged","countType":"sinceImagePushed","countNumber":0},"action":{"type":"delete"}},` +
				`{"rulePriority":7,"selection":{"tagStatus":"untagged","tagPatternList":["a*b*c*d*e*f"],"countType":"imageCountMoreThan","countUnit":"days","countNumber":1,"extra":1},"action":{"type":"expire"}}` +
				`],"comment":"x"}`,
			want: []string{
				"rules[2].selection.extra: unknown field",
				"comment: unknown field",
				"rules[1].rulePriority: must be unique: 3 is also used by rules[0]",
				"rules[1].selection.tagPatternList: required when tagStatus is tagged",
				"rules[1].selection.countUnit: required when countType is sinceImagePushed",
				"rules[1].selection.countNumber: must be a positive integer, got 0",
				`rules[1].action.type: must be "expire", got "delete"`,
				"rules[2].selection.tagPatternList: not allowed when tagStatus is untagged",
				"rules[2].selection.countUnit: not allowed when countType is imageCountMoreThan",
				`rules[0].rulePriority: a rule with tagStatus "any" must have the highest rulePriority (got 3, highest is 7)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse([]byte(tt.data))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", p)
			}
			if p != nil {
				t.Errorf("Parse returned a policy with an error")
			}
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Errorf("error does not wrap ErrInvalidPolicy: %v", err)
			}
			var got []string
			for _, fe := range FieldErrors(err) {
				got = append(got, fe.Path+": "+fe.Msg)
			}
			if !matchAll(got, tt.want) {
				t.Errorf("problems:\n  %s\nwant (path: fragment):\n  %s",
					strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

// matchAll reports whether got and want pair up one to one, each got entry
// having the same path as its want entry and containing its message.
func matchAll(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	g, w := append([]string(nil), got...), append([]string(nil), want...)
	sort.Strings(g)
	sort.Strings(w)
	for i := range g {
		gp, gm, _ := strings.Cut(g[i], ": ")
		wp, wm, _ := strings.Cut(w[i], ": ")
		if gp != wp || !strings.Contains(gm, wm) {
			return false
		}
	}
	return true
}

func TestValidateBuiltPolicy(t *testing.T) {
	tests := []struct {
		name string
		p    *Policy
		want []string
	}{
		{"nil policy", nil, []string{"rules: at least one rule is required"}},
		{"valid", &Policy{Rules: []Rule{{RulePriority: 1, Selection: Selection{TagStatus: TagStatusAny, CountType: CountImageCountMoreThan, CountNumber: 1}, Action: Action{Type: ActionExpire}}}}, nil},
		{"zero rule", &Policy{Rules: []Rule{{}}}, []string{
			"rules[0].rulePriority: must be a positive integer",
			"rules[0].selection.tagStatus: required",
			"rules[0].selection.countType: required",
			"rules[0].selection.countNumber: must be a positive integer",
			"rules[0].action.type: required",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if (err == nil) != (tt.want == nil) {
				t.Fatalf("Validate = %v, want problems %v", err, tt.want)
			}
			var got []string
			for _, fe := range FieldErrors(err) {
				got = append(got, fe.Error())
			}
			if !matchAll(got, tt.want) {
				t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}
