package semver

import "testing"

func TestConstraint(t *testing.T) {
	tests := []struct {
		c    string
		tags map[string]bool
	}{
		{">=1.20, <2", map[string]bool{"1.20": true, "v1.21.3": true, "1.19.9": false, "2.0": false, "1.22-rc1": false, "latest": false}},
		{"=3.20.1", map[string]bool{"3.20.1": true, "3.20.2": false}},
		{">1.0.0-rc.1", map[string]bool{"1.0.0-rc.2": true, "1.0.0": true, "1.0.0-rc.0": false}},
		{"!=1.2 >=1", map[string]bool{"1.2.0": false, "1.3": true, "0.9": false}},
	}
	for _, tt := range tests {
		c, err := ParseConstraint(tt.c)
		if err != nil {
			t.Fatalf("%q: %v", tt.c, err)
		}
		for tag, want := range tt.tags {
			v, ok := Parse(tag)
			if got := ok && c.Allows(v); got != want {
				t.Errorf("%q allows %q: %v, want %v", tt.c, tag, got, want)
			}
		}
	}
	for _, bad := range []string{"", "abc", ">=x", "~1.2", "1.2.3.4"} {
		if _, err := ParseConstraint(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestCompare(t *testing.T) {
	order := []string{"0.9", "1.0.0-alpha", "1.0.0-beta", "1", "1.0.1", "1.10", "v2"}
	for i := 1; i < len(order); i++ {
		a, _ := Parse(order[i-1])
		b, _ := Parse(order[i])
		if Compare(a, b) != -1 || Compare(b, a) != 1 {
			t.Errorf("%s < %s does not hold", order[i-1], order[i])
		}
	}
}
