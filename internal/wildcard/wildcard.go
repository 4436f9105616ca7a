// Package wildcard matches names against patterns where '*' stands for any
// run of characters ('/' included) and every other character for itself:
// the patterns of repository policies, lifecycle tag patterns and
// repository name scopes.
package wildcard

// Match reports whether s matches pattern in full.
func Match(pattern, s string) bool {
	// Greedy matching, backtracking to the last star.
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && pattern[p] == s[i]:
			p++
			i++
		case star >= 0:
			mark++
			p, i = star+1, mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
