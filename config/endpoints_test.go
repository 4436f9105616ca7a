package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestValidateEndpoints(t *testing.T) {
	tests := []struct {
		name string
		rule Upstream
		want []string // substrings of the error; none: valid
	}{
		{name: "urls", rule: Upstream{URLs: []string{"https://mirror.example", "https://origin.example"},
			Proxy: "http://10.0.0.1:3128", NoProxy: []string{"*.corp", "10.0.0.0/8"}}},
		{name: "url and urls agree", rule: Upstream{URL: "https://a.example", URLs: []string{"https://a.example", "https://b.example"}}},
		{name: "url and urls disagree", rule: Upstream{URL: "https://c.example", URLs: []string{"https://a.example"}},
			want: []string{"upstreams[0]: give url or urls, not both"}},
		{name: "bad urls", rule: Upstream{URLs: []string{"https://a.example", "ftp://b.example", "", "https://A.example/"}},
			want: []string{`upstreams[0].urls[1]: scheme must be http or https, not "ftp"`,
				"upstreams[0].urls[2]: must not be empty", `upstreams[0].urls[3]: "https://A.example/" is listed twice`}},
		{name: "credentials in a url", rule: Upstream{URLs: []string{"https://a.example", "https://bob:secret@b.example"}},
			want: []string{"upstreams[0].urls[1]: no user or password in the URL; give them as username and passwordFile"}},
		{name: "proxy credentials are the proxy's", rule: Upstream{URL: "https://a.example", Proxy: "http://u:p@10.0.0.1:3128"}},
		{name: "tls with an https endpoint", rule: Upstream{URLs: []string{"http://mirror.lan:5000", "https://a.example"}, CAFile: "/ca.pem"}},
		{name: "tls without an https endpoint", rule: Upstream{URLs: []string{"http://mirror.lan:5000", "http://b.lan"}, CAFile: "/ca.pem"},
			want: []string{"upstreams[0]: caFile, certFile, keyFile and insecureSkipVerify need an https url"}},
		{name: "bad proxy", rule: Upstream{URL: "https://a.example", Proxy: "socks://p:1080"},
			want: []string{`upstreams[0].proxy: scheme must be http or https, not "socks"`}},
		{name: "noProxy without proxy", rule: Upstream{URL: "https://a.example", NoProxy: []string{"x.example"}},
			want: []string{"upstreams[0].noProxy: needs proxy"}},
		{name: "bad noProxy", rule: Upstream{URL: "https://a.example", Proxy: "http://p:3128", NoProxy: []string{"http://x.example", " "}},
			want: []string{`upstreams[0].noProxy[0]: "http://x.example" is not a host`, `upstreams[0].noProxy[1]`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.rule
			r.Name, r.Prefix = "a", "a"
			err := ValidateUpstreams([]Upstream{r.WithDefaults()})
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestParseURLs(t *testing.T) {
	cfg, err := Parse([]byte(`
upstreams:
  - name: hub
    registry: docker.io
    urls: [https://mirror.example, https://registry-1.docker.io]
    proxy: http://proxy.corp:3128
    noProxy: [mirror.example]
`))
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Upstreams[0]
	if r.URL != "https://mirror.example" || !reflect.DeepEqual(r.Endpoints(), []string{"https://mirror.example", "https://registry-1.docker.io"}) {
		t.Errorf("url %q, endpoints %q", r.URL, r.Endpoints())
	}
	if !r.IsDockerHub() || r.Proxy != "http://proxy.corp:3128" || len(r.NoProxy) != 1 {
		t.Errorf("rule = %+v", r)
	}
}

func TestValidateBandwidth(t *testing.T) {
	_, err := Parse([]byte("upstreamBandwidth: -1\nserveBandwidth: -1\nmaxBlobStreams: -1\nupstreams: [{name: a, prefix: a, url: https://a.example, upstreamBandwidth: -5}]\n"))
	for _, want := range []string{"upstreamBandwidth: must not be negative", "upstreams[0].upstreamBandwidth: must not be negative",
		"serveBandwidth: must not be negative", "maxBlobStreams: must not be negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}
