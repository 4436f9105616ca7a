// Package semver reads tags as semantic versions ("1.2.3", "v1.20",
// "3.20.1-rc.1") and matches them against constraints such as
// ">=1.20, <2". It is a leaf: config validates constraints with it and the
// syncer selects tags with it.
package semver

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is a parsed tag: up to three numbers and a pre-release.
type Version struct {
	Nums [3]int
	Pre  string
}

// Parse reads s as a version: an optional "v", one to three dot-separated
// numbers, and an optional "-pre-release" (build metadata after "+" is
// ignored). ok is false for anything else ("latest", "alpine3.20").
func Parse(s string) (v Version, ok bool) {
	s = strings.TrimPrefix(s, "v")
	s, _, _ = strings.Cut(s, "+")
	core, pre, _ := strings.Cut(s, "-")
	parts := strings.Split(core, ".")
	if len(parts) > 3 {
		return Version{}, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || p == "" || (len(p) > 1 && p[0] == '0') {
			return Version{}, false
		}
		v.Nums[i] = n
	}
	v.Pre = pre
	return v, true
}

// Compare orders versions: by the numbers, then a pre-release before the
// release (-1, 0, 1).
func Compare(a, b Version) int {
	for i := range a.Nums {
		if a.Nums[i] != b.Nums[i] {
			if a.Nums[i] < b.Nums[i] {
				return -1
			}
			return 1
		}
	}
	switch {
	case a.Pre == b.Pre:
		return 0
	case a.Pre == "":
		return 1
	case b.Pre == "":
		return -1
	case a.Pre < b.Pre:
		return -1
	}
	return 1
}

// Constraint is a conjunction of comparisons.
type Constraint struct{ terms []term }

type term struct {
	op string
	v  Version
}

// ParseConstraint reads comparisons separated by commas or spaces, each an
// operator (>=, >, <=, <, =, !=; none means =) and a version:
// ">=1.20, <2", "=3.20.1".
func ParseConstraint(s string) (Constraint, error) {
	var c Constraint
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
	for _, f := range fields {
		op := ""
		for _, o := range []string{">=", "<=", "!=", ">", "<", "="} {
			if strings.HasPrefix(f, o) {
				op = o
				break
			}
		}
		v, ok := Parse(strings.TrimPrefix(f, op))
		if !ok || v.Pre != "" && op == "" {
			return Constraint{}, fmt.Errorf("%q is not a version comparison (e.g. >=1.20)", f)
		}
		if op == "" {
			op = "="
		}
		c.terms = append(c.terms, term{op: op, v: v})
	}
	if len(c.terms) == 0 {
		return Constraint{}, fmt.Errorf("%q has no version comparison (e.g. \">=1.20, <2\")", s)
	}
	return c, nil
}

// Allows reports whether v meets every comparison. A pre-release is
// allowed only when a comparison names a pre-release itself.
func (c Constraint) Allows(v Version) bool {
	pre := false
	for _, t := range c.terms {
		pre = pre || t.v.Pre != ""
		k := Compare(v, t.v)
		ok := map[string]bool{">=": k >= 0, ">": k > 0, "<=": k <= 0, "<": k < 0, "=": k == 0, "!=": k != 0}[t.op]
		if !ok {
			return false
		}
	}
	return v.Pre == "" || pre
}
