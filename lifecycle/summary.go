package lifecycle

import (
	"cmp"
	"slices"
)

// RuleSummary totals what one rule expires.
type RuleSummary struct {
	RulePriority int
	Description  string
	Images       int
	Bytes        int64
}

// Summary totals what a policy expires, per rule and overall.
//
// Bytes sums Image.Size of the expired images: images may share layers, so
// it is an upper bound on the storage actually reclaimed.
type Summary struct {
	Rules  []RuleSummary // ordered by RulePriority
	Images int
	Bytes  int64
}

// Summarize totals results per rule. When p is non-nil every rule of p gets
// an entry, including rules that expire nothing; results whose RulePriority
// is not in p get an entry without Description.
func Summarize(p *Policy, results []Result) Summary {
	var s Summary
	idx := map[int]int{} // rulePriority -> index in s.Rules
	entry := func(priority int, desc string) *RuleSummary {
		if i, ok := idx[priority]; ok {
			return &s.Rules[i]
		}
		idx[priority] = len(s.Rules)
		s.Rules = append(s.Rules, RuleSummary{RulePriority: priority, Description: desc})
		return &s.Rules[len(s.Rules)-1]
	}
	if p != nil {
		for _, r := range p.Rules {
			entry(r.RulePriority, r.Description)
		}
	}
	for _, r := range results {
		e := entry(r.RulePriority, "")
		e.Images++
		e.Bytes += r.Size
		s.Images++
		s.Bytes += r.Size
	}
	slices.SortStableFunc(s.Rules, func(a, b RuleSummary) int { return cmp.Compare(a.RulePriority, b.RulePriority) })
	return s
}
