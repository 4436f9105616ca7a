package scan

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/config"
	"berth/scan/scantest"
	"berth/store"
	"berth/vulndb"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// env is a scanner over a real store and vulnerability database.
type env struct {
	st   *store.Store
	db   *vulndb.DB
	s    *Scanner
	reg  *prometheus.Registry
	set  config.Scanning
	tmp  string
	ctx  context.Context
	done chan uint64 // rescans queued, by database version
}

func newEnv(t *testing.T, tweak func(*config.Scanning)) *env {
	t.Helper()
	return newEnvStore(t, t.TempDir(), store.Options{}, tweak)
}

// newEnvStore is newEnv over a store in dir opened with opts.
func newEnvStore(t *testing.T, dir string, opts store.Options, tweak func(*config.Scanning)) *env {
	t.Helper()
	ctx := t.Context()
	st, err := store.Open(ctx, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg := prometheus.NewRegistry()
	db, err := vulndb.Open(ctx, vulndb.Options{Store: st, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{st: st, db: db, reg: reg, set: config.Default().Scanning, tmp: t.TempDir(), ctx: ctx, done: make(chan uint64, 8)}
	if tweak != nil {
		tweak(&e.set)
	}
	e.s, err = New(Options{Store: st, DB: db, Settings: func() config.Scanning { return e.set }, TempDir: e.tmp,
		Registerer: reg, OnRescan: func(v uint64) { e.done <- v }})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.s.Close)
	return e
}

// put stores an image in a local repository as a push does: its blobs,
// the manifest with its image record and links.
func (e *env) put(t *testing.T, repo string, img v1.Image) string {
	t.Helper()
	key := store.LocalKey(repo)
	var links []string
	blob := func(dg string, b []byte) {
		links = append(links, dg)
		if err := (&Scanner{o: Options{Store: e.st}}).putBlob(e.ctx, dg, b, true); err != nil {
			t.Fatal(err)
		}
	}
	cfg, _ := img.RawConfigFile()
	cd, _ := img.ConfigName()
	blob(cd.String(), cfg)
	layers, _ := img.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		rc, _ := l.Compressed()
		var b strings.Builder
		buf := make([]byte, 1<<16)
		for {
			n, err := rc.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		blob(d.String(), []byte(b.String()))
	}
	body, _ := img.RawManifest()
	mt, _ := img.MediaType()
	dg, _ := img.Digest()
	b := e.st.NewBatch()
	defer b.Close()
	must(t, b.PutManifest(dg.String(), &store.Manifest{MediaType: string(mt), Body: body}))
	must(t, b.PutImage(key, dg.String(), store.Image{PushedAt: time.Now(), MediaType: string(mt)}))
	must(t, b.Link(key, links...))
	must(t, b.Commit())
	return dg.String()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (e *env) importDB(t *testing.T, records ...map[string]string) uint64 {
	t.Helper()
	info, err := e.db.ImportPaths(e.ctx, scantest.WriteOSV(t, records...))
	if err != nil {
		t.Fatal(err)
	}
	return info.Version
}

// scan runs one scan by hand and waits for it.
func (e *env) scan(t *testing.T, repo, digest string) *Record {
	t.Helper()
	if !e.s.Enqueue(store.LocalKey(repo), digest, "test") {
		t.Fatal("queue full")
	}
	if err := e.s.WaitIdle(e.ctx); err != nil {
		t.Fatal(err)
	}
	r, err := e.s.record(e.ctx, digest)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// found lists findings as "id package version fixed".
func found(r *Record) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, strings.Join([]string{f.Name, f.Attr("package_name"), f.Attr("package_version"), f.Attr("fixed_version")}, " "))
	}
	sort.Strings(out)
	return out
}

var (
	binOnce sync.Once
	binary  []byte
)

func goBinary(t *testing.T) []byte {
	binOnce.Do(func() { binary = scantest.GoBinary(t) })
	if binary == nil {
		t.Fatal("no Go binary")
	}
	return binary
}

func TestScanFindsEverySeededVulnerabilityAndNoFixedOne(t *testing.T) {
	e := newEnv(t, nil)
	e.importDB(t, scantest.Records)
	text := strings.TrimPrefix(scantest.TextVersion, "v")
	fixedText := strings.TrimPrefix(nextMinorForTest(scantest.TextVersion), "v")
	tests := []struct {
		name string
		img  v1.Image
		want []string
	}{
		{"vulnerable", scantest.Vulnerable(t, goBinary(t)), []string{
			"DEBIAN-CVE-2024-0727 openssl 3.0.11-1~deb12u2 3.0.13-1~deb12u1",
			"GHSA-35jh-r3h4-6jhm lodash 4.17.20 4.17.21",
			"GO-2099-0001 golang.org/x/text " + text + " " + fixedText,
		}},
		{"fixed", scantest.Fixed(t), nil},
		{"alpine", scantest.Alpine(t), []string{"ALPINE-CVE-2023-42363 busybox 1.36.1-r28 1.36.1-r29"}},
		{"whiteout hides a lower layer's lock file", scantest.Image(t,
			scantest.Layer(t, scantest.PackageLock("4.17.20")),
			scantest.Layer(t, scantest.File{Name: "app/.wh.package-lock.json"})), nil},
		{"opaque directory hides a lower layer's lock file", scantest.Image(t,
			scantest.Layer(t, scantest.PackageLock("4.17.20")),
			scantest.Layer(t, scantest.File{Name: "app/.wh..wh..opq"})), nil},
		{"an upper layer replaces a file", scantest.Image(t,
			scantest.Layer(t, scantest.PackageLock("4.17.20")),
			scantest.Layer(t, scantest.PackageLock("4.17.21"))), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dg := e.put(t, "app/"+strings.ReplaceAll(tt.name, " ", "-"), tt.img)
			r := e.scan(t, "app/"+strings.ReplaceAll(tt.name, " ", "-"), dg)
			if r.Status != StatusComplete {
				t.Fatalf("status %s: %s", r.Status, r.Description)
			}
			if got := found(r); !slices.Equal(got, tt.want) {
				t.Errorf("findings:\n got %q\nwant %q\npackages %+v", got, tt.want, r.Packages)
			}
		})
	}
}

func nextMinorForTest(v string) string {
	var rec struct {
		Affected []struct {
			Ranges []struct {
				Events []map[string]string `json:"events"`
			} `json:"ranges"`
		} `json:"affected"`
	}
	_ = json.Unmarshal([]byte(scantest.Records["GO-2099-0001.json"]), &rec)
	return rec.Affected[0].Ranges[0].Events[1]["fixed"]
}

func TestRescanAfterNewDatabaseChangesFindings(t *testing.T) {
	e := newEnv(t, nil)
	e.importDB(t, scantest.Records)
	dg := e.put(t, "app/fixed", scantest.Fixed(t))
	if r := e.scan(t, "app/fixed", dg); r.Status != StatusComplete || len(r.Findings) != 0 {
		t.Fatalf("first scan: %s %q", r.Status, found(r))
	}
	v := e.importDB(t, scantest.Records, scantest.Records2)
	for got := range e.done {
		if got == v {
			break
		}
	}
	if err := e.s.WaitIdle(e.ctx); err != nil {
		t.Fatal(err)
	}
	r, err := e.s.record(e.ctx, dg)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"GHSA-0000-new0-lodash lodash 4.17.21 4.17.22"}; r.DBVersion != v || !slices.Equal(found(r), want) {
		t.Fatalf("after import of version %d: record of version %d, findings %q, want %q", v, r.DBVersion, found(r), want)
	}
	if got := vulnerabilities(t, e.s, e.reg); got["LOW"] != 1 {
		t.Errorf("berth_image_vulnerabilities{severity=LOW} = %v, want 1", got["LOW"])
	}
}

func TestScanWithoutDatabaseFailsWithTheReason(t *testing.T) {
	e := newEnv(t, nil)
	dg := e.put(t, "app/a", scantest.Fixed(t))
	r := e.scan(t, "app/a", dg)
	if r.Status != StatusFailed || !strings.Contains(r.Description, "import-vulndb") {
		t.Fatalf("status %s: %q", r.Status, r.Description)
	}
}

func TestEnqueueNeverBlocksAndDropsWhenFull(t *testing.T) {
	e := newEnv(t, func(s *config.Scanning) { s.QueueSize = 1 })
	e.s.Close() // no worker takes from the queue
	if !e.s.Enqueue(store.LocalKey("a"), "sha256:"+strings.Repeat("1", 64), "push") {
		t.Fatal("first enqueue dropped")
	}
	if !e.s.Enqueue(store.LocalKey("a"), "sha256:"+strings.Repeat("1", 64), "push") {
		t.Fatal("a pending scan enqueued again is not a drop")
	}
	if e.s.Enqueue(store.LocalKey("a"), "sha256:"+strings.Repeat("2", 64), "push") {
		t.Fatal("enqueue beyond the queue was not dropped")
	}
	if got := testutil.ToFloat64(e.s.m.dropped.WithLabelValues("push")); got != 1 {
		t.Errorf("dropped = %v", got)
	}
}

func TestHostileLayersFailTheScanCleanly(t *testing.T) {
	e := newEnv(t, func(s *config.Scanning) { s.MaxImageBytes = 32 << 20 })
	e.importDB(t, scantest.Records)
	tests := []struct {
		name  string
		layer []scantest.File
		want  string
	}{
		{"tar bomb", []scantest.File{{Name: "zeros", Size: 64 << 20}}, "maxImageBytes"},
		{"path escape", []scantest.File{{Name: "../../etc/cron.d/x", Body: []byte("x")}}, "escapes the image root"},
		{"hard link escape", []scantest.File{{Name: "x", Type: '1', Link: "../../../etc/shadow"}}, "escapes the image root"},
		{"not a tar", nil, "not a valid tar"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var img v1.Image
			if tt.layer == nil {
				img = scantest.Image(t, rawLayer(t, []byte("this is not a tar stream at all, "+strings.Repeat("x", 1024))))
			} else {
				img = scantest.Image(t, scantest.Layer(t, tt.layer...))
			}
			repo := "bad/" + strings.ReplaceAll(tt.name, " ", "-")
			r := e.scan(t, repo, e.put(t, repo, img))
			if r.Status != StatusFailed || !strings.Contains(r.Description, tt.want) {
				t.Fatalf("status %s %q, want FAILED with %q", r.Status, r.Description, tt.want)
			}
		})
	}
	if left, _ := listDir(e.tmp); len(left) != 0 {
		t.Errorf("scratch directories left behind: %v", left)
	}
}

func TestHugeFileIsSkippedNotRead(t *testing.T) {
	e := newEnv(t, func(s *config.Scanning) { s.MaxFileBytes = 1 << 20 })
	e.importDB(t, scantest.Records)
	big := scantest.PackageLock("4.17.20")
	big.Size = 4 << 20 // the lock file claims 4 MiB (zero-padded)
	img := scantest.Image(t, scantest.Layer(t, scantest.DebianRelease, scantest.DpkgStatus("3.0.11-1~deb12u2"), big))
	r := e.scan(t, "app/big", e.put(t, "app/big", img))
	if r.Status != StatusComplete || !strings.Contains(r.Description, "1 files were skipped") {
		t.Fatalf("status %s %q", r.Status, r.Description)
	}
	if got := found(r); len(got) != 1 || !strings.HasPrefix(got[0], "DEBIAN-CVE-2024-0727 ") {
		t.Errorf("findings %q", got)
	}
}

func TestUnsupportedArtifact(t *testing.T) {
	e := newEnv(t, nil)
	e.importDB(t, scantest.Records)
	img := scantest.Image(t)
	img = mutateConfigType(t, img, "application/vnd.cncf.helm.config.v1+json")
	r := e.scan(t, "charts/x", e.put(t, "charts/x", img))
	if r.Status != StatusUnsupported {
		t.Fatalf("status %s %q", r.Status, r.Description)
	}
}

func rawLayer(t *testing.T, b []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func listDir(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out, err
}

func mutateConfigType(t *testing.T, img v1.Image, mt string) v1.Image {
	t.Helper()
	return mutate.ConfigMediaType(img, types.MediaType(mt))
}
