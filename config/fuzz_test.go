package config

import (
	"errors"
	"os"
	"testing"
)

// FuzzParse: no YAML document makes Parse panic; what it refuses is an
// *Error listing at least one problem, and what it accepts validates.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		string(example),
		"",
		"listen: \":5000\"\nupstreams:\n  - {name: hub, prefix: hub, registry: docker.io, url: \"https://registry-1.docker.io\", default: true}\n",
		"local:\n  prefixes: [private]\n  maxOpenUploads: 4\n  maxUploadBytes: 1048576\ncache:\n  maxBytes: 10737418240\n",
		"auth:\n  enabled: true\n  htpasswd: /etc/berth/htpasswd\nadmin:\n  listen: 0.0.0.0:5001\n",
		"upstreams: {}\n",
		"listen: [\n",
		"local:\n  uploadTimeout: -1s\n",
		"&a [*a]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || len(e.Problems) == 0 {
				t.Fatalf("Parse(%q): %v is not an *Error with problems", data, err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse(%q) accepted a config that does not validate: %v", data, err)
		}
	})
}
