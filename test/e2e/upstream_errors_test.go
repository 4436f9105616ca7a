package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"berth/test/clients"
	"berth/test/testport"
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

// TestDockerAndSkopeoSayWhyUpstreamFailed pulls with skopeo and the docker
// CLI through an upstream that is down (a closed port): both print only
// the status line of a 5xx answer, so that line names the upstream, what
// was asked and the cause.
func TestDockerAndSkopeoSayWhyUpstreamFailed(t *testing.T) {
	clients.RequireIsolatedNetns(t)
	t.Parallel()
	down := fmt.Sprintf("http://127.0.0.1:%d", testport.Free(t))
	b := StartBerth(t, "", "upstreams:\n"+upstreamConfig("hub", "hub", "docker.io", down, false, "    timeout: 5s\n"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	want := []string{"upstream hub failed for tag v1 of team/app", "connection refused"}
	check := func(who, out string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s's error lacks %q:\n%s", who, w, out)
			}
		}
	}

	t.Run("skopeo", func(t *testing.T) {
		policy := filepath.Join(t.TempDir(), "policy.json")
		writeFile(t, policy, `{"default":[{"type":"insecureAcceptAnything"}]}`)
		for _, args := range [][]string{
			{"inspect", "--tls-verify=false", "docker://" + b.Addr + "/hub/team/app:v1"},
			{"copy", "--src-tls-verify=false", "docker://" + b.Addr + "/hub/team/app:v1", "oci:" + t.TempDir() + ":app"},
		} {
			_, err := runSkopeo(ctx, t, policy, args...)
			if err == nil {
				t.Fatalf("skopeo %s through a down upstream succeeded", args[0])
			}
			check("skopeo "+args[0], err.Error())
		}
	})
	t.Run("docker", func(t *testing.T) {
		dk := clients.StartDockerd(t, clients.DockerdOptions{InsecureRegistries: []string{b.Addr}})
		out, err := clients.Docker(t, dk.Socket, "pull", b.Addr+"/hub/team/app:v1")
		if err == nil {
			t.Fatal("docker pull through a down upstream succeeded")
		}
		t.Logf("docker pull: %v", err)
		check("docker pull", out+err.Error())
	})
}
