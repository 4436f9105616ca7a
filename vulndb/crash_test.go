package vulndb

import (
	"archive/tar"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"berth/store"
)

// crashEnv names the store directory of the child TestKillDuringImport
// kills: a test binary started with it set runs crashImport, not the tests.
const crashEnv = "BERTH_VULNDB_CRASH_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashEnv); dir != "" {
		os.Exit(crashImport(dir))
	}
	os.Exit(m.Run())
}

// crashImport imports the tar its standard input carries into the store in
// dir; the test kills it before the import ends.
func crashImport(dir string) int {
	ctx := context.Background()
	st, err := store.Open(ctx, dir, store.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer st.Close()
	db, err := Open(ctx, Options{Store: st, Now: func() time.Time { return testNow }})
	if err == nil {
		_, err = db.ImportStream(ctx, "stdin.tar", os.Stdin)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Fprintln(os.Stderr, "the import finished: the test meant to kill it first")
	return 1
}

// TestKillDuringImport kills (SIGKILL) a process in the middle of an
// import, after it wrote batches of the new version, and opens its store:
// the old version is served, and the next import drops the half-written
// one.
func TestKillDuringImport(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	func() { // version 1, then the store is closed for the child
		st, err := store.Open(ctx, dir, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		db, err := Open(ctx, Options{Store: st})
		if err != nil {
			t.Fatal(err)
		}
		seedDir, zipPath := seed(t)
		if _, err := db.ImportPaths(ctx, seedDir, zipPath); err != nil {
			t.Fatal(err)
		}
	}()

	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// More records than two batches hold: when the writes return, the
	// child has read all but a pipe's buffer of them, so it committed at
	// least one batch of version 2 and is waiting for the rest.
	tw := tar.NewWriter(stdin)
	for i := 0; i < 40000; i++ {
		rec := fmt.Sprintf(`{"id": "GO-CRASH-%05d", "modified": "2024-01-01T00:00:00Z", "summary": "padding padding padding padding padding",
  "affected": [{"package": {"ecosystem": "Go", "name": "example.com/crash"},
    "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.0.%d"}]}]}]}`, i, i)
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("r/%05d.json", i), Mode: 0o644, Size: int64(len(rec)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(rec)); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	db, st := openDB(t, dir, nil)
	info, err := db.Describe(ctx)
	if err != nil || info.Version != 1 || info.Records != 12 {
		t.Fatalf("after the kill: %+v %v; want version 1 served", info, err)
	}
	if got := ids(t, db, Package{"Debian:12", "openssl", "3.0.11-1~deb12u2"}); len(got) != 1 {
		t.Fatalf("version 1 does not match after the kill: %v", got)
	}
	if got := ids(t, db, Package{"Go", "example.com/crash", "1.0.0"}); len(got) != 0 {
		t.Fatalf("the half-written version is served: %v", got)
	}
	half := countEntries(t, st, 2, "Go", "example.com/crash")
	if half == 0 {
		t.Fatal("the child wrote nothing of version 2 before the kill: the test did not kill mid-import")
	}
	info, err = db.ImportStream(ctx, "go.json", strings.NewReader(seedRecords["go/GO-2022-1059.json"]))
	if err != nil || info.Version != 2 || info.Records != 1 {
		t.Fatalf("the import after the kill: %+v %v", info, err)
	}
	if n := countEntries(t, st, 2, "Go", "example.com/crash"); n != 0 {
		t.Fatalf("%d entries of the killed import survive in version 2 (of %d)", n, half)
	}
}

func countEntries(t *testing.T, st *store.Store, version uint64, eco, name string) int {
	t.Helper()
	n := 0
	if err := st.ScanVulns(context.Background(), version, eco, name, func(string, []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}
