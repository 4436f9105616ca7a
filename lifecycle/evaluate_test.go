package lifecycle

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func daysAgo(n int) time.Time { return now.AddDate(0, 0, -n) }

// fixture is a repository of 12 images. Newest first by push time:
// 12(1d) 11(3d) 08(5d) 06(10d) 05(20d) 10(30d) 07(35d) 04(40d) 03(60d)
// 02(80d) 09(90d) 01(100d).
func fixture() []Image {
	img := func(id string, tags []string, pushed int, pulled time.Time) Image {
		n, _ := strconv.Atoi(id)
		return Image{Digest: "sha256:" + id, Tags: tags, PushedAt: daysAgo(pushed), LastPulledAt: pulled, Size: int64(n) * 1000}
	}
	never := time.Time{}
	return []Image{
		img("01", []string{"v1.0.0"}, 100, daysAgo(2)),
		img("02", []string{"v1.1.0"}, 80, never),
		img("03", []string{"v1.2.0", "stable"}, 60, daysAgo(50)),
		img("04", []string{"v2.0.0", "prod-eu"}, 40, daysAgo(1)),
		img("05", []string{"v2.1.0", "prod-us"}, 20, never),
		img("06", []string{"prod-eu-2", "release"}, 10, daysAgo(9)),
		img("07", []string{"dev-abc"}, 35, never),
		img("08", []string{"dev-def"}, 5, daysAgo(4)),
		img("09", nil, 90, never),
		img("10", nil, 30, daysAgo(3)), // exactly 30 days old
		img("11", []string{}, 3, never),
		img("12", []string{"latest", "v3.0.0"}, 1, now.Add(-12*time.Hour)),
	}
}

func mustParse(t *testing.T, rules ...string) *Policy {
	t.Helper()
	p, err := Parse([]byte(policy(rules...)))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

// brief renders results as "rulePriority:digest-without-algorithm".
func brief(rs []Result) []string {
	var out []string
	for _, r := range rs {
		out = append(out, strconv.Itoa(r.RulePriority)+":"+strings.TrimPrefix(r.Digest, "sha256:"))
	}
	return out
}

const (
	count  = `"countType":"imageCountMoreThan","countNumber":%d`
	pushed = `"countType":"sinceImagePushed","countUnit":"days","countNumber":%d`
	pulled = `"countType":"sinceImagePulled","countUnit":"days","countNumber":%d`
)

func sel(tagging, criterion string, n int) string {
	return tagging + "," + fmt.Sprintf(criterion, n)
}

const (
	untagged = `"tagStatus":"untagged"`
	anyTag   = `"tagStatus":"any"`
)

func prefixes(p ...string) string {
	return `"tagStatus":"tagged","tagPrefixList":["` + strings.Join(p, `","`) + `"]`
}

func patterns(p ...string) string {
	return `"tagStatus":"tagged","tagPatternList":["` + strings.Join(p, `","`) + `"]`
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name  string
		rules []string
		want  []string // "rulePriority:digest", in output order
	}{
		// Count rules.
		{"untagged count keeps newest", []string{rule(1, sel(untagged, count, 1))}, []string{"1:10", "1:09"}},
		{"any count", []string{rule(1, sel(anyTag, count, 10))}, []string{"1:09", "1:01"}},
		{"count larger than matches expires nothing", []string{rule(1, sel(untagged, count, 3))}, nil},
		// Age since push; exactly countNumber days old is not older.
		{"untagged pushed", []string{rule(1, sel(untagged, pushed, 14))}, []string{"1:10", "1:09"}},
		{"any pushed boundary", []string{rule(1, sel(anyTag, pushed, 30))}, []string{"1:07", "1:04", "1:03", "1:02", "1:09", "1:01"}},
		// Age since pull; never-pulled images count from their push.
		{"untagged pulled, never pulled uses push", []string{rule(1, sel(untagged, pulled, 14))}, []string{"1:09"}},
		{"any pulled", []string{rule(1, sel(anyTag, pulled, 30))}, []string{"1:07", "1:03", "1:02", "1:09"}},
		{"prefix pulled", []string{rule(1, sel(prefixes("v1"), pulled, 30))}, []string{"1:03", "1:02"}},
		{"never pulled but recently pushed survives", []string{rule(1, sel(prefixes("dev"), pulled, 30))}, []string{"1:07"}},
		// Tag prefixes: every prefix must match some tag.
		{"prefix count", []string{rule(1, sel(prefixes("v"), count, 2))}, []string{"1:04", "1:03", "1:02", "1:01"}},
		{"all prefixes must match (06 has prod only)", []string{rule(1, sel(prefixes("v2", "prod"), pushed, 5))}, []string{"1:05", "1:04"}},
		{"prefix is case-sensitive", []string{rule(1, sel(prefixes("V"), pushed, 1))}, nil},
		// Tag patterns.
		{"pattern trailing wildcard", []string{rule(1, sel(patterns("prod-*"), count, 1))}, []string{"1:05", "1:04"}},
		{"pattern inner wildcard", []string{rule(1, sel(patterns("v1.*.0"), pushed, 70))}, []string{"1:02", "1:01"}},
		{"pattern leading wildcard", []string{rule(1, sel(patterns("*-eu*"), count, 1))}, []string{"1:04"}},
		{"all patterns must match", []string{rule(1, sel(patterns("v*.0.0", "prod*"), pushed, 1))}, []string{"1:04"}},
		{"pattern without wildcard is exact", []string{rule(1, sel(patterns("prod"), pushed, 1))}, nil},
		{"star matches every tagged image", []string{rule(1, sel(patterns("*"), count, 8))}, []string{"1:01"}},
		// Several rules and priorities.
		{
			"rules applied by priority, not document order",
			[]string{
				rule(30, sel(anyTag, pushed, 50)),
				rule(1, sel(untagged, count, 1)),
				rule(2, sel(prefixes("dev"), pushed, 30)),
			},
			// 09 (90d) is claimed by rule 1; rule 30 gets the old tagged ones.
			[]string{"1:10", "1:09", "2:07", "30:03", "30:02", "30:01"},
		},
		{
			"higher-priority match protects from any rule",
			[]string{rule(1, sel(patterns("prod-*"), count, 9999)), rule(2, sel(anyTag, pushed, 15))},
			[]string{"2:10", "2:07", "2:03", "2:02", "2:09", "2:01"},
		},
		{
			"untagged kept by rule 1 is protected from rule 2",
			[]string{rule(1, sel(untagged, pushed, 60)), rule(2, sel(anyTag, pushed, 20))},
			// 10 (30d, untagged) survives although older than 20 days.
			[]string{"1:09", "2:07", "2:04", "2:03", "2:02", "2:01"},
		},
		{
			"images expired by rule 1 still fill rule 2's count",
			[]string{rule(1, sel(prefixes("v"), count, 2)), rule(2, sel(anyTag, count, 8))},
			// Rule 2 keeps the 8 newest of all 12 (12 11 08 06 05 10 07 04),
			// 04 included although rule 1 expires it; of the rest
			// (03 02 09 01) only 09 is not claimed by rule 1. Were expired
			// images not counted, 11 images would remain and 09 would
			// survive.
			[]string{"1:04", "1:03", "1:02", "1:01", "2:09"},
		},
		{
			"each image expired by one rule only",
			[]string{rule(1, sel(prefixes("v1"), pushed, 1)), rule(2, sel(prefixes("v"), pushed, 1))},
			// 12 is exactly 1 day old: not older than 1 day.
			[]string{"1:03", "1:02", "1:01", "2:05", "2:04"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, tt.rules...)
			got := brief(Evaluate(p, fixture(), now))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Evaluate = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestEvaluateECRExamples replays the "Filtering on multiple rules" examples
// of the ECR user guide.
func TestEvaluateECRExamples(t *testing.T) {
	rules := []string{
		rule(1, sel(prefixes("prod"), count, 1)),
		rule(2, sel(prefixes("beta"), count, 1)),
	}
	tests := []struct {
		name   string
		images []Image
		want   []string
	}{
		{
			"example A",
			[]Image{
				{Digest: "A", Tags: []string{"beta-1", "prod-1"}, PushedAt: daysAgo(10)},
				{Digest: "B", Tags: []string{"beta-2", "prod-2"}, PushedAt: daysAgo(9)},
				{Digest: "C", Tags: []string{"beta-3"}, PushedAt: daysAgo(8)},
			},
			[]string{"1:A"},
		},
		{
			"example B",
			[]Image{
				{Digest: "A", Tags: []string{"beta-1", "prod-1"}, PushedAt: daysAgo(10)},
				{Digest: "B", Tags: []string{"beta-2", "prod-2"}, PushedAt: daysAgo(9)},
				{Digest: "C", Tags: []string{"beta-3", "prod-3"}, PushedAt: daysAgo(8)},
				{Digest: "D", Tags: []string{"beta-4"}, PushedAt: daysAgo(7)},
			},
			[]string{"1:B", "1:A"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := brief(Evaluate(mustParse(t, rules...), tt.images, now))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Evaluate = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEvaluateDetails(t *testing.T) {
	t.Run("input untouched", func(t *testing.T) {
		p := mustParse(t, rule(1, sel(prefixes("v"), count, 2)), rule(2, sel(anyTag, pulled, 7)))
		images := fixture()
		got := Evaluate(p, images, now)
		if !reflect.DeepEqual(images, fixture()) {
			t.Fatal("Evaluate modified its input")
		}
		got[0].Tags[0] = "changed"
		if images[3].Tags[0] != "v2.0.0" {
			t.Fatal("Result.Tags aliases Image.Tags")
		}
	})
	t.Run("empty inputs", func(t *testing.T) {
		if got := Evaluate(nil, fixture(), now); got != nil {
			t.Errorf("nil policy: %v", brief(got))
		}
		if got := Evaluate(mustParse(t, rule(1, sel(anyTag, count, 1))), nil, now); got != nil {
			t.Errorf("no images: %v", brief(got))
		}
	})
	t.Run("equal push times ordered by digest", func(t *testing.T) {
		ts := daysAgo(5)
		images := []Image{{Digest: "c", PushedAt: ts}, {Digest: "a", PushedAt: ts}, {Digest: "b", PushedAt: ts}}
		got := brief(Evaluate(mustParse(t, rule(1, sel(untagged, count, 1))), images, now))
		if want := []string{"1:b", "1:c"}; !reflect.DeepEqual(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("reasons and fields", func(t *testing.T) {
		p := mustParse(t, rule(1, sel(untagged, pulled, 14)), rule(2, sel(prefixes("v1"), count, 2)), rule(3, sel(prefixes("v2"), pulled, 1)))
		got := Evaluate(p, fixture(), now)
		want := []Result{
			{Digest: "sha256:09", Tags: nil, RulePriority: 1, Reason: "rule 1: sinceImagePulled 14 days: never pulled, pushed 90 days ago", PushedAt: daysAgo(90), Size: 9000},
			{Digest: "sha256:01", Tags: []string{"v1.0.0"}, RulePriority: 2, Reason: "rule 2: imageCountMoreThan 2: image 3 of 3 matching, newest first", PushedAt: daysAgo(100), Size: 1000},
			{Digest: "sha256:05", Tags: []string{"v2.1.0", "prod-us"}, RulePriority: 3, Reason: "rule 3: sinceImagePulled 1 days: never pulled, pushed 20 days ago", PushedAt: daysAgo(20), Size: 5000},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got  %+v\nwant %+v", got, want)
		}
		p = mustParse(t, rule(1, sel(anyTag, pulled, 30)))
		if r := Evaluate(p, fixture(), now)[1]; r.Reason != "rule 1: sinceImagePulled 30 days: last pulled 50 days ago" {
			t.Errorf("reason = %q", r.Reason)
		}
	})
	t.Run("unvalidated rules expire nothing", func(t *testing.T) {
		p := &Policy{Rules: []Rule{
			{RulePriority: 1, Selection: Selection{TagStatus: TagStatusAny, CountType: CountImageCountMoreThan}},
			{RulePriority: 2, Selection: Selection{TagStatus: TagStatusAny, CountType: CountSinceImagePushed}},
			{RulePriority: 3, Selection: Selection{TagStatus: TagStatusTagged, CountType: CountSinceImagePushed, CountNumber: 1}},
			{RulePriority: 4, Selection: Selection{TagStatus: "other", CountType: CountSinceImagePushed, CountNumber: 1}},
			{RulePriority: 5, Selection: Selection{TagStatus: TagStatusAny, CountType: "other", CountNumber: 1}},
		}}
		if got := Evaluate(p, fixture(), now); got != nil {
			t.Errorf("got %v", brief(got))
		}
	})
}

func TestWildcardMatch(t *testing.T) {
	tests := []struct {
		name, pattern, s string
		want             bool
	}{
		{"exact", "latest", "latest", true},
		{"exact mismatch", "latest", "latest2", false},
		{"trailing", "prod*", "prod", true},
		{"leading", "*prod", "preprod", true},
		{"middle", "v*.0", "v1.2.0", true},
		{"middle mismatch", "v*.0", "v1.2.1", false},
		{"four stars", "*a*b*c*", "xxaYbZcQ", true},
		{"backtracking", "*ab*ab", "aabab", true},
		{"only star", "*", "", true},
		{"empty pattern", "", "x", false},
		{"question mark is literal", "v?", "v1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := wildcardMatch(tt.pattern, tt.s); got != tt.want {
				t.Errorf("wildcardMatch(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
			}
		})
	}
}
