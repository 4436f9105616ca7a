package reclaim

import (
	"slices"
	"testing"
	"time"

	"berth/lifecycle"
)

const lcDay = 24 * time.Hour

func mustPolicy(t *testing.T, text string) *lifecycle.Policy {
	t.Helper()
	p, err := lifecycle.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type planned struct {
	digest string
	rule   int
}

func plannedOf(rs []lifecycle.Result) []planned {
	var out []planned
	for _, r := range rs {
		out = append(out, planned{r.Digest, r.RulePriority})
	}
	return out
}

func TestPlanDependents(t *testing.T) {
	now := time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC)
	ago := func(d int) time.Time { return now.Add(-time.Duration(d) * lcDay) }
	images := []ImageInfo{
		// A tagged multi-arch image whose platforms are untagged, and
		// the signature of one platform.
		{Digest: "sha256:i1", Tags: []string{"v1"}, PushedAt: ago(40), Children: []string{"sha256:c1", "sha256:c2"}},
		{Digest: "sha256:c1", PushedAt: ago(40)},
		{Digest: "sha256:c2", PushedAt: ago(40)},
		{Digest: "sha256:s1", PushedAt: ago(39), Subject: "sha256:c1"},
		// An untagged index listing c2 too, and its own child.
		{Digest: "sha256:i2", PushedAt: ago(60), Children: []string{"sha256:c2", "sha256:c3"}},
		{Digest: "sha256:c3", PushedAt: ago(60)},
		// A plain untagged image, old, and a listed child that is not
		// stored (ignored).
		{Digest: "sha256:u1", PushedAt: ago(90), Children: []string{"sha256:missing"}},
	}
	untagged := mustPolicy(t, `{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":30},"action":{"type":"expire"}}]}`)
	// The untagged rule takes i2 and u1 only: the platforms and the
	// signature are held. c3 goes with i2; c2 stays, i1 still lists it.
	got := plannedOf(Plan(untagged, images, now))
	want := []planned{{"sha256:c3", 1}, {"sha256:i2", 1}, {"sha256:u1", 1}}
	if !slices.Equal(got, want) {
		t.Fatalf("untagged rule\n got %v\nwant %v", got, want)
	}
	// Expiring everything takes the dependents with their holders.
	all := mustPolicy(t, `{"rules":[{"rulePriority":7,"selection":{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":1},"action":{"type":"expire"}}]}`)
	got = plannedOf(Plan(all, images, now))
	if len(got) != len(images) {
		t.Fatalf("expire all: %v", got)
	}
	for _, p := range got {
		if p.rule != 7 {
			t.Fatalf("expire all: %v", got)
		}
	}
	// Keeping the newest tagged index keeps everything it holds.
	keepTagged := mustPolicy(t, `{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["v"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
		{"rulePriority":2,"selection":{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":50},"action":{"type":"expire"}}]}`)
	got = plannedOf(Plan(keepTagged, images, now))
	want = []planned{{"sha256:c3", 2}, {"sha256:i2", 2}, {"sha256:u1", 2}}
	if !slices.Equal(got, want) {
		t.Fatalf("keep tagged\n got %v\nwant %v", got, want)
	}
	if Plan(nil, images, now) != nil || Plan(all, nil, now) != nil {
		t.Fatal("nothing to plan should plan nothing")
	}
}

// TestPlanPulledByChildDigest: an index whose platform manifest is pulled
// by digest (how Kubernetes pulls) is not idle under sinceImagePulled;
// an index nobody pulls is.
func TestPlanPulledByChildDigest(t *testing.T) {
	now := time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC)
	ago := func(d int) time.Time { return now.Add(-time.Duration(d) * lcDay) }
	images := []ImageInfo{
		{Digest: "sha256:i1", Tags: []string{"prod"}, PushedAt: ago(60), LastPulledAt: ago(60), Children: []string{"sha256:c1"}},
		{Digest: "sha256:c1", PushedAt: ago(60), LastPulledAt: ago(1)},
		{Digest: "sha256:i2", Tags: []string{"old"}, PushedAt: ago(60), LastPulledAt: ago(60), Children: []string{"sha256:c2"}},
		{Digest: "sha256:c2", PushedAt: ago(60), LastPulledAt: ago(60)},
	}
	p := mustPolicy(t, `{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":30},"action":{"type":"expire"}}]}`)
	got := plannedOf(Plan(p, images, now))
	want := []planned{{"sha256:c2", 1}, {"sha256:i2", 1}}
	if !slices.Equal(got, want) {
		t.Fatalf("expired %v, want %v", got, want)
	}
}
