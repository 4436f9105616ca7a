package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestUpstreamFailureSaysWhy pulls through an upstream whose name does not
// resolve (the test's network namespace has no DNS server): the client's
// error names the upstream, what was asked and the cause in plain words.
func TestUpstreamFailureSaysWhy(t *testing.T) {
	b := StartBerth(t, "", "upstreams:\n"+
		upstreamConfig("hub", "hub", "docker.io", "http://registry.invalid:5000", true, "    timeout: 5s\n"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	noRetry := func(o *crane.Options) { o.Remote = append(o.Remote, remote.WithRetryBackoff(remote.Backoff{Steps: 1})) }
	_, err := crane.Digest(b.Addr+"/hub/team/app:v1", crane.Insecure, crane.WithContext(ctx), noRetry)
	if err == nil {
		t.Fatal("pull through an unresolvable upstream succeeded")
	}
	msg := err.Error()
	for _, want := range []string{"UPSTREAM_UNAVAILABLE", "upstream hub failed for tag v1 of team/app", "lookup registry.invalid"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the client's error lacks %q: %s", want, msg)
		}
	}
}
