package lifecycle

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// TagStatus selects images by whether they carry tags.
type TagStatus string

// Tag statuses accepted in selection.tagStatus.
const (
	TagStatusTagged   TagStatus = "tagged"
	TagStatusUntagged TagStatus = "untagged"
	TagStatusAny      TagStatus = "any"
)

// CountType is the expiration criterion of a rule.
type CountType string

// Count types accepted in selection.countType.
const (
	CountImageCountMoreThan CountType = "imageCountMoreThan"
	CountSinceImagePushed   CountType = "sinceImagePushed"
	CountSinceImagePulled   CountType = "sinceImagePulled"
)

// CountUnitDays is the only unit ECR accepts in selection.countUnit.
const CountUnitDays = "days"

// ActionExpire is the only action type ECR accepts in action.type.
const ActionExpire = "expire"

// MaxWildcards is the maximum number of '*' in one tagPatternList entry.
const MaxWildcards = 4

// maxInt is the largest rulePriority or countNumber accepted (ECR integers
// are 32-bit).
const maxInt = math.MaxInt32

// Policy is an ECR lifecycle policy document.
type Policy struct {
	Rules []Rule `json:"rules"`
}

// Rule is one entry of Policy.Rules.
type Rule struct {
	RulePriority int       `json:"rulePriority"`
	Description  string    `json:"description,omitempty"`
	Selection    Selection `json:"selection"`
	Action       Action    `json:"action"`
}

// Selection chooses the images a rule applies to and when they expire.
//
// TagPrefixList and TagPatternList distinguish nil (absent) from empty
// (present but empty), as the JSON does.
type Selection struct {
	TagStatus      TagStatus `json:"tagStatus"`
	TagPrefixList  []string  `json:"tagPrefixList,omitempty"`
	TagPatternList []string  `json:"tagPatternList,omitempty"`
	CountType      CountType `json:"countType"`
	CountUnit      string    `json:"countUnit,omitempty"`
	CountNumber    int       `json:"countNumber"`
}

// Action is what happens to selected images; only "expire" exists.
type Action struct {
	Type string `json:"type"`
}

// ErrInvalidPolicy is wrapped by every error returned by Parse and
// Policy.Validate.
var ErrInvalidPolicy = errors.New("invalid lifecycle policy")

// FieldError is one problem in a policy, located by a field path such as
// "rules[1].selection.countUnit" (rules are indexed from 0 in document
// order, not by rulePriority).
type FieldError struct {
	Path string
	Msg  string
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// FieldErrors returns every *FieldError joined into err (nil if none).
func FieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(e error) {
		switch x := e.(type) {
		case nil:
		case *FieldError:
			out = append(out, x)
		case interface{ Unwrap() []error }:
			for _, c := range x.Unwrap() {
				walk(c)
			}
		case interface{ Unwrap() error }:
			walk(x.Unwrap())
		}
	}
	walk(err)
	return out
}

// problems collects FieldErrors, keeping only the first one per path so that
// a field that failed to decode is not reported again by validation.
type problems struct {
	errs []error
	seen map[string]bool
}

func (p *problems) add(path, format string, args ...any) {
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	if p.seen[path] || p.seen[""] {
		return
	}
	// A problem with a field hides the consequential problems of the
	// fields inside it (e.g. a missing selection and its missing tagStatus).
	for i := 0; i < len(path); i++ {
		if (path[i] == '.' || path[i] == '[') && p.seen[path[:i]] {
			return
		}
	}
	p.seen[path] = true
	p.errs = append(p.errs, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (p *problems) err() error {
	if len(p.errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidPolicy, errors.Join(p.errs...))
}

// Validate checks p against ECR's rules (see the package documentation) and
// reports every problem at once, each as a *FieldError joined under
// ErrInvalidPolicy.
func (p *Policy) Validate() error {
	var pr problems
	p.validate(&pr)
	return pr.err()
}

func (p *Policy) validate(pr *problems) {
	if p == nil || len(p.Rules) == 0 {
		pr.add("rules", "at least one rule is required")
		return
	}
	byPriority := map[int]int{} // rulePriority -> first rule index
	untagged := -1
	highest := math.MinInt
	for i, r := range p.Rules {
		if r.RulePriority > highest {
			highest = r.RulePriority
		}
		base := fmt.Sprintf("rules[%d]", i)
		switch prev, dup := byPriority[r.RulePriority]; {
		case r.RulePriority < 1:
			pr.add(base+".rulePriority", "must be a positive integer, got %d", r.RulePriority)
		case r.RulePriority > maxInt:
			pr.add(base+".rulePriority", "must be at most %d, got %d", maxInt, r.RulePriority)
		case dup:
			pr.add(base+".rulePriority", "must be unique: %d is also used by rules[%d]", r.RulePriority, prev)
		default:
			byPriority[r.RulePriority] = i
		}
		if r.Selection.TagStatus == TagStatusUntagged {
			if untagged >= 0 {
				pr.add(base+".selection.tagStatus", "only one rule may select untagged images (rules[%d] already does)", untagged)
			} else {
				untagged = i
			}
		}
		r.Selection.validate(pr, base+".selection")
		switch r.Action.Type {
		case ActionExpire:
		case "":
			pr.add(base+".action.type", "required")
		default:
			pr.add(base+".action.type", "must be %q, got %q", ActionExpire, r.Action.Type)
		}
	}
	for i, r := range p.Rules {
		if r.Selection.TagStatus == TagStatusAny && r.RulePriority < highest {
			pr.add(fmt.Sprintf("rules[%d].rulePriority", i),
				"a rule with tagStatus %q must have the highest rulePriority (got %d, highest is %d)",
				TagStatusAny, r.RulePriority, highest)
		}
	}
}

func (s *Selection) validate(pr *problems, base string) {
	switch s.TagStatus {
	case TagStatusTagged:
		switch {
		case s.TagPrefixList != nil && s.TagPatternList != nil:
			pr.add(base+".tagPatternList", "not allowed together with tagPrefixList")
		case s.TagPrefixList == nil && s.TagPatternList == nil:
			pr.add(base+".tagPatternList", "required when tagStatus is tagged and tagPrefixList is not set")
		}
		validateTagList(pr, base+".tagPrefixList", s.TagPrefixList, false)
		validateTagList(pr, base+".tagPatternList", s.TagPatternList, true)
	case TagStatusUntagged, TagStatusAny:
		if s.TagPrefixList != nil {
			pr.add(base+".tagPrefixList", "not allowed when tagStatus is %s", s.TagStatus)
		}
		if s.TagPatternList != nil {
			pr.add(base+".tagPatternList", "not allowed when tagStatus is %s", s.TagStatus)
		}
	case "":
		pr.add(base+".tagStatus", "required")
	default:
		pr.add(base+".tagStatus", "must be one of %q, %q, %q, got %q",
			TagStatusTagged, TagStatusUntagged, TagStatusAny, s.TagStatus)
	}

	switch s.CountType {
	case CountImageCountMoreThan:
		if s.CountUnit != "" {
			pr.add(base+".countUnit", "not allowed when countType is %s", s.CountType)
		}
	case CountSinceImagePushed, CountSinceImagePulled:
		switch s.CountUnit {
		case CountUnitDays:
		case "":
			pr.add(base+".countUnit", "required when countType is %s", s.CountType)
		default:
			pr.add(base+".countUnit", "must be %q, got %q", CountUnitDays, s.CountUnit)
		}
	case "":
		pr.add(base+".countType", "required")
	default:
		pr.add(base+".countType", "must be one of %q, %q, %q, got %q",
			CountImageCountMoreThan, CountSinceImagePushed, CountSinceImagePulled, s.CountType)
	}

	switch {
	case s.CountNumber < 1:
		pr.add(base+".countNumber", "must be a positive integer, got %d", s.CountNumber)
	case s.CountNumber > maxInt:
		pr.add(base+".countNumber", "must be at most %d, got %d", maxInt, s.CountNumber)
	}
}

func validateTagList(pr *problems, path string, list []string, pattern bool) {
	if list == nil {
		return
	}
	if len(list) == 0 {
		pr.add(path, "must contain at least one entry")
		return
	}
	for j, v := range list {
		p := fmt.Sprintf("%s[%d]", path, j)
		switch n := strings.Count(v, "*"); {
		case v == "":
			pr.add(p, "must not be empty")
		case !pattern && n > 0:
			// ECR treats prefixes literally; a '*' here is almost
			// certainly meant for tagPatternList.
			pr.add(p, "wildcards are not allowed in tagPrefixList (use tagPatternList)")
		case pattern && n > MaxWildcards:
			pr.add(p, "at most %d wildcards (*) allowed, got %d", MaxWildcards, n)
		}
	}
}
