package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSyncRules(t *testing.T) {
	good := `upstreams: [{name: hub, prefix: hub, url: https://registry-1.docker.io, offline: true}]
offline: true
sync:
  - name: morning
    upstream: hub
    repositories: [library/alpine, "prom/*"]
    tags: {regex: '3\.\d+', semver: ">=3.19", latest: 2}
    platforms: [linux/amd64, linux/arm64/v8]
    referrers: true
    pin: true
  - {name: other, upstream: hub, repositories: [library/busybox], interval: 15m}
`
	c, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Offline || !c.Upstreams[0].Offline {
		t.Errorf("offline not read: %v %v", c.Offline, c.Upstreams[0].Offline)
	}
	if len(c.Sync) != 2 || c.Sync[0].Interval != time.Hour || c.Sync[1].Interval != 15*time.Minute ||
		c.Sync[0].Tags.Latest != 2 || !c.Sync[0].Pin || !c.Sync[0].Referrers || len(c.Sync[0].Platforms) != 2 {
		t.Errorf("sync rules: %+v", c.Sync)
	}
	bad := `upstreams: [{name: hub, prefix: hub, url: https://registry-1.docker.io}]
sync:
  - {name: a, upstream: nope, repositories: []}
  - {name: a, upstream: hub, repositories: ["x:1"], tags: {regex: "(", semver: "~1", latest: -1}, platforms: [linux], interval: -1s}
  - {upstream: hub, repositories: [x]}
`
	_, err = Parse([]byte(bad))
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("bad sync rules: %v", err)
	}
	for _, want := range []string{"sync[0].upstream", "sync[0].repositories", "sync[1].name", "sync[1].repositories[0]",
		"sync[1].tags.regex", "sync[1].tags.semver", "sync[1].tags.latest", "sync[1].platforms[0]", "sync[1].interval", "sync[2].name"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("no problem reported at %s in:\n%v", want, err)
		}
	}
}

func TestBundlesVerifyKeysValidated(t *testing.T) {
	_, err := Parse([]byte("bundles: {verifyKeys: [\"\", a.pub, a.pub]}\n"))
	if err == nil || !strings.Contains(err.Error(), "bundles.verifyKeys[0]") || !strings.Contains(err.Error(), "listed twice") {
		t.Fatalf("bad verifyKeys: %v", err)
	}
}
