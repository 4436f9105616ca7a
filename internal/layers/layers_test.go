// Package layers holds the test that keeps Berth's dependencies pointing
// down (docs/design.md, "Packages").
package layers

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// layer ranks every package: a package may import only packages of a
// lower layer. A new package must be ranked here.
var layer = map[string]int{
	"berth/internal/reponame":  0,
	"berth/internal/wildcard":  0,
	"berth/internal/oci":       0,
	"berth/internal/semver":    0,
	"berth/internal/keyfile":   0,
	"berth/internal/recompute": 0,
	"berth/internal/testclock": 0, // imported by tests only
	"berth/scan/scantest":      0, // imported by tests only
	"berth/errdefs":            0,
	"berth/config":             1,
	"berth/registry":           1,
	"berth/store":              1,
	"berth/cluster":            1,
	"berth/lifecycle":          1,
	"berth/upstream":           2,
	"berth/audit":              2,
	"berth/metrics":            2,
	"berth/auth":               2,
	"berth/reclaim":            2,
	"berth/vulndb":             2,
	"berth/vulndb/vulndbtest":  0, // imported by tests only
	"berth/store/scalestore":   2, // imported by benchmarks only
	"berth/local":              3,
	"berth/proxy":              3,
	"berth/syncer":             3,
	"berth/bundle":             3,
	"berth/replicate":          3,
	"berth/scan":               3,
	"berth/mirror":             4,
	"berth/admin":              4,
	"berth/admin/admintest":    5,
	"berth/ui":                 5,
	"berth/node":               6,
	"berth/cmd/berth":          7,
	// Build tooling: the summary line of make test.
	"berth/internal/cmd/testsum": 7,
}

func TestNoPackageImportsUpward(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", "berth/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		pkg := f[0]
		if strings.HasPrefix(pkg, "berth/test/") || pkg == "berth/internal/layers" {
			continue // tests drive the whole node from above
		}
		from, ok := layer[pkg]
		if !ok {
			t.Errorf("package %s has no layer; rank it in internal/layers", pkg)
			continue
		}
		for _, imp := range f[1:] {
			if !strings.HasPrefix(imp, "berth/") {
				continue
			}
			if to, ok := layer[imp]; ok && to >= from {
				t.Errorf("%s (layer %d) imports %s (layer %d): dependencies must point down", pkg, from, imp, to)
			}
		}
	}
}
