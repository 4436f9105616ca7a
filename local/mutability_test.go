package local_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"berth/errdefs"
	"berth/local"
	"berth/registry"
)

func TestImmutableTagRefusesAnotherDigest(t *testing.T) {
	e := newEnv(t, envOptions{manualCreate: true})
	e.createRepo("team/imm", local.Immutable)
	a, b := newImage("a", 1), newImage("b", 1)
	e.push("team/imm", "v1", a)
	for _, bl := range b.blobs() {
		e.pushBlob("team/imm", bl.data)
	}

	resp, body := e.putManifest("team/imm", "v1", ociManifest, b.body)
	msg := wantError(t, resp, body, http.StatusForbidden, registry.CodeDenied)
	if !strings.Contains(msg, "v1") {
		t.Errorf("message %q does not name the tag v1", msg)
	}
	if d, _ := e.getManifest("team/imm", "v1"); d != a.digest {
		t.Fatalf("v1 is %s after the refused push, want %s", d, a.digest)
	}

	// The same digest again is no move.
	e.pushManifest("team/imm", "v1", a)
	if d, _ := e.getManifest("team/imm", "v1"); d != a.digest {
		t.Fatalf("v1 is %s after re-pushing it, want %s", d, a.digest)
	}

	// A push by digest with ?tag=v1 may not move it either, and stores
	// nothing.
	resp, body = e.putManifest("team/imm", b.digest+"?tag=v1", ociManifest, b.body)
	wantError(t, resp, body, http.StatusForbidden, registry.CodeDenied)
	resp, body = e.do(http.MethodGet, "/v2/team/imm/manifests/"+b.digest, nil)
	wantError(t, resp, body, http.StatusNotFound, registry.CodeManifestUnknown)

	// New tags are fine.
	e.pushManifest("team/imm", "v2", b)
	if got := e.tags("team/imm"); strings.Join(got, ",") != "v1,v2" {
		t.Fatalf("tags %v, want [v1 v2]", got)
	}
}

func TestTagMutability(t *testing.T) {
	tests := []struct {
		name       string
		mutability string
		exclusions []string
		tag        string
		wantMoves  bool
	}{
		{name: "mutable", mutability: local.Mutable, tag: "v1", wantMoves: true},
		{name: "mutable latest", mutability: local.Mutable, tag: "latest", wantMoves: true},
		{name: "immutable", mutability: local.Immutable, tag: "v1"},
		{name: "immutable latest", mutability: local.Immutable, tag: "latest"},
		{name: "exclusion matches exactly", mutability: local.ImmutableWithExclusion, exclusions: []string{"latest*"}, tag: "latest", wantMoves: true},
		{name: "exclusion matches by wildcard", mutability: local.ImmutableWithExclusion, exclusions: []string{"latest*"}, tag: "latest-dev", wantMoves: true},
		{name: "exclusion does not match", mutability: local.ImmutableWithExclusion, exclusions: []string{"latest*"}, tag: "v1"},
		{name: "exclusion is not a substring match", mutability: local.ImmutableWithExclusion, exclusions: []string{"latest*"}, tag: "my-latest"},
		{name: "second exclusion matches", mutability: local.ImmutableWithExclusion, exclusions: []string{"latest*", "dev-*"}, tag: "dev-42", wantMoves: true},
	}
	e := newEnv(t, envOptions{manualCreate: true})
	a, b := newImage("a", 1), newImage("b", 2)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			repo := fmt.Sprintf("mut/r%d", i)
			e.createRepo(repo, tt.mutability, tt.exclusions...)
			e.push(repo, tt.tag, a)
			for _, bl := range b.blobs() {
				e.pushBlob(repo, bl.data)
			}
			resp, body := e.putManifest(repo, tt.tag, ociManifest, b.body)
			want := a.digest
			if tt.wantMoves {
				wantStatus(t, resp, body, http.StatusCreated)
				want = b.digest
			} else {
				msg := wantError(t, resp, body, http.StatusForbidden, registry.CodeDenied)
				if !strings.Contains(msg, tt.tag) {
					t.Errorf("message %q does not name the tag %s", msg, tt.tag)
				}
			}
			if d, _ := e.getManifest(repo, tt.tag); d != want {
				t.Fatalf("tag %s is %s, want %s", tt.tag, d, want)
			}
		})
	}
}

func TestAutoCreatedRepositoryUsesDefaultMutability(t *testing.T) {
	e := newEnv(t, envOptions{defaultMutability: local.Immutable})
	a, b := newImage("a", 1), newImage("b", 1)
	e.push("auto/imm", "v1", a)
	rec, err := e.repos.Repository(context.Background(), "auto/imm")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Mutability != local.Immutable {
		t.Fatalf("auto-created repository is %s, want %s", rec.Mutability, local.Immutable)
	}
	for _, bl := range b.blobs() {
		e.pushBlob("auto/imm", bl.data)
	}
	resp, body := e.putManifest("auto/imm", "v1", ociManifest, b.body)
	wantError(t, resp, body, http.StatusForbidden, registry.CodeDenied)
}

func TestSetMutabilityAppliesToLaterPushes(t *testing.T) {
	e := newEnv(t, envOptions{manualCreate: true})
	ctx := context.Background()
	e.createRepo("flip", local.Mutable)
	a, b := newImage("a", 1), newImage("b", 1)
	e.push("flip", "v1", a)
	if err := e.repos.SetMutability(ctx, "flip", local.Immutable, nil); err != nil {
		t.Fatal(err)
	}
	for _, bl := range b.blobs() {
		e.pushBlob("flip", bl.data)
	}
	resp, body := e.putManifest("flip", "v1", ociManifest, b.body)
	wantError(t, resp, body, http.StatusForbidden, registry.CodeDenied)
	if err := e.repos.SetMutability(ctx, "flip", local.ImmutableWithExclusion, []string{"v*"}); err != nil {
		t.Fatal(err)
	}
	e.pushManifest("flip", "v1", b)
	if d, _ := e.getManifest("flip", "v1"); d != b.digest {
		t.Fatalf("v1 is %s, want %s", d, b.digest)
	}
	if err := e.repos.SetMutability(ctx, "nope", local.Mutable, nil); !errors.Is(err, errdefs.ErrRepositoryUnknown) {
		t.Fatalf("SetMutability of a missing repository: %v, want NAME_UNKNOWN", err)
	}
}

func TestValidateMutability(t *testing.T) {
	tests := []struct {
		name       string
		mutability string
		exclusions []string
		wantErr    bool
	}{
		{name: "mutable", mutability: local.Mutable},
		{name: "immutable", mutability: local.Immutable},
		{name: "immutable with exclusion", mutability: local.ImmutableWithExclusion, exclusions: []string{"latest*"}},
		{name: "several exclusions", mutability: local.ImmutableWithExclusion, exclusions: []string{"latest", "dev-*", "rc?"}},
		{name: "empty", mutability: "", wantErr: true},
		{name: "lower case", mutability: "mutable", wantErr: true},
		{name: "unknown", mutability: "APPEND_ONLY", wantErr: true},
		{name: "mutable with exclusions", mutability: local.Mutable, exclusions: []string{"latest"}, wantErr: true},
		{name: "immutable with exclusions", mutability: local.Immutable, exclusions: []string{"latest"}, wantErr: true},
		{name: "exclusion mode without filters", mutability: local.ImmutableWithExclusion, wantErr: true},
		{name: "empty filter", mutability: local.ImmutableWithExclusion, exclusions: []string{""}, wantErr: true},
		{name: "bad pattern", mutability: local.ImmutableWithExclusion, exclusions: []string{"latest["}, wantErr: true},
		{name: "one bad pattern among good", mutability: local.ImmutableWithExclusion, exclusions: []string{"latest", "[a-"}, wantErr: true},
	}
	e := newEnv(t, envOptions{manualCreate: true})
	ctx := context.Background()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := local.ValidateMutability(tt.mutability, tt.exclusions)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ValidateMutability(%q, %q) = %v, want error %v", tt.mutability, tt.exclusions, err, tt.wantErr)
			}
			name := fmt.Sprintf("valid/r%d", i)
			_, cerr := e.repos.CreateRepository(ctx, name, tt.mutability, tt.exclusions)
			if !tt.wantErr {
				if cerr != nil {
					t.Fatalf("CreateRepository: %v", cerr)
				}
				return
			}
			if !errors.Is(err, errdefs.ErrInvalidParameter) {
				t.Fatalf("error %v is not an invalid parameter", err)
			}
			if cerr == nil {
				t.Fatal("CreateRepository accepted an invalid setting")
			}
			if _, err := e.repos.Repository(ctx, name); !errors.Is(err, errdefs.ErrRepositoryUnknown) {
				t.Fatalf("refused repository exists: %v", err)
			}
		})
	}
}

func TestCreateRepository(t *testing.T) {
	e := newEnv(t, envOptions{manualCreate: true})
	ctx := context.Background()
	if _, err := e.repos.CreateRepository(ctx, "Bad_Name", local.Mutable, nil); !errors.Is(err, errdefs.ErrNameInvalid) {
		t.Fatalf("invalid name: %v, want NAME_INVALID", err)
	}
	e.createRepo("team/app", local.Mutable)
	if _, err := e.repos.CreateRepository(ctx, "team/app", local.Immutable, nil); err == nil {
		t.Fatal("creating an existing repository succeeded")
	}
	rec, err := e.repos.Repository(ctx, "team/app")
	if err != nil || rec.Mutability != local.Mutable {
		t.Fatalf("repository after a second create: %+v, %v; want it unchanged", rec, err)
	}

	// Without auto-create, a push to an unknown repository is refused
	// and creates nothing.
	resp, body := e.do(http.MethodPost, "/v2/other/blobs/uploads/", nil)
	wantError(t, resp, body, http.StatusNotFound, registry.CodeNameUnknown)
	im := newImage("x", 1)
	resp, body = e.putManifest("other", "v1", ociManifest, im.body)
	wantError(t, resp, body, http.StatusNotFound, registry.CodeNameUnknown)
	if _, err := e.repos.Repository(ctx, "other"); !errors.Is(err, errdefs.ErrRepositoryUnknown) {
		t.Fatalf("refused push created the repository: %v", err)
	}
}

// Concurrent pushes of different images to one immutable tag: exactly one
// wins, and the tag points at the winner.
func TestImmutableTagConcurrentPushes(t *testing.T) {
	e := newEnv(t, envOptions{manualCreate: true})
	e.createRepo("race", local.Immutable)
	const n = 8
	imgs := make([]image, n)
	for i := range imgs {
		imgs[i] = newImage(fmt.Sprintf("race%d", i), 1)
		for _, bl := range imgs[i].blobs() {
			e.pushBlob("race", bl.data)
		}
	}
	statuses := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range imgs {
		wg.Go(func() {
			<-start
			resp, _ := e.putManifest("race", "v1", ociManifest, imgs[i].body)
			statuses[i] = resp.StatusCode
		})
	}
	close(start)
	wg.Wait()
	var winners []int
	for i, s := range statuses {
		switch s {
		case http.StatusCreated:
			winners = append(winners, i)
		case http.StatusForbidden:
		default:
			t.Fatalf("push %d: status %d", i, s)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%d pushes to the immutable tag succeeded (%v), want exactly 1", len(winners), winners)
	}
	if d, _ := e.getManifest("race", "v1"); d != imgs[winners[0]].digest {
		t.Fatalf("v1 is %s, want the winner %s", d, imgs[winners[0]].digest)
	}
}
