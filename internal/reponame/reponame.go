// Package reponame holds the OCI distribution grammar of repository names,
// shared by the registry edge and the configuration's checks.
package reponame

// MaxLength bounds a repository name, as distribution does.
const MaxLength = 255

// Valid reports whether name matches the spec's repository name grammar,
// [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*,
// at most MaxLength long. It is checked by hand on every request; the
// registry's tests hold it to the regular expression.
func Valid(name string) bool {
	if len(name) == 0 || len(name) > MaxLength {
		return false
	}
	i := 0
	for {
		// A component: alnum runs joined by ".", "_", "__" or "-"+.
		if !isLowerAlnum(name, i) {
			return false
		}
		for isLowerAlnum(name, i) {
			i++
		}
		for i < len(name) && name[i] != '/' {
			switch name[i] {
			case '.':
				i++
			case '_':
				i++
				if i < len(name) && name[i] == '_' {
					i++
				}
			case '-':
				for i < len(name) && name[i] == '-' {
					i++
				}
			default:
				return false
			}
			if !isLowerAlnum(name, i) {
				return false
			}
			for isLowerAlnum(name, i) {
				i++
			}
		}
		if i == len(name) {
			return true
		}
		i++ // the '/'
	}
}

func isLowerAlnum(s string, i int) bool {
	return i < len(s) && (s[i] >= 'a' && s[i] <= 'z' || s[i] >= '0' && s[i] <= '9')
}
