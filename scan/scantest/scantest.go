// Package scantest builds the images and the OSV database the scanning
// tests share: images with real package metadata (a dpkg status file, an
// apk database, a Go binary built by the test, a package-lock.json) and
// advisories that name some of their versions vulnerable and others fixed.
package scantest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// File is one tar entry of a layer.
type File struct {
	Name string
	Body []byte
	Mode int64
	// Type is a tar type flag (0: a regular file).
	Type byte
	Link string
	// Size, when set, overrides len(Body) in the header (a tar bomb's
	// entry claims it, Body is written as zeros up to it).
	Size int64
}

// TarGz is a gzipped tar of files.
func TarGz(t testing.TB, files []File) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, f := range files {
		h := &tar.Header{Name: f.Name, Mode: f.Mode, Typeflag: f.Type, Linkname: f.Link, Size: int64(len(f.Body))}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if f.Size > 0 {
			h.Size = f.Size
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := io.Copy(tw, io.MultiReader(bytes.NewReader(f.Body), io.LimitReader(zeros{}, h.Size-int64(len(f.Body))))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// Layer is a gzipped layer of files.
func Layer(t testing.TB, files ...File) v1.Layer {
	t.Helper()
	b := TarGz(t, files)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Image is an OCI image (linux/amd64) of layers.
func Image(t testing.TB, layers ...v1.Layer) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// DebianRelease is /etc/os-release of Debian 12.
var DebianRelease = File{Name: "etc/os-release", Body: []byte("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n")}

// AlpineRelease is /etc/os-release of Alpine 3.20.
var AlpineRelease = File{Name: "etc/os-release", Body: []byte("NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.1\nPRETTY_NAME=\"Alpine Linux v3.20\"\n")}

// DpkgStatus is a dpkg status file with libssl3 (source openssl) at
// opensslVersion and zlib1g, which no advisory names.
func DpkgStatus(opensslVersion string) File {
	body := "Package: libssl3\nStatus: install ok installed\nPriority: optional\nArchitecture: amd64\nSource: openssl\nVersion: " + opensslVersion +
		"\nDescription: Secure Sockets Layer toolkit - shared libraries\n\n" +
		"Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nSource: zlib\nVersion: 1:1.2.13.dfsg-1\nDescription: compression library\n\n"
	return File{Name: "var/lib/dpkg/status", Body: []byte(body)}
}

// ApkInstalled is an apk database with busybox at version.
func ApkInstalled(version string) File {
	body := "C:Q1abc=\nP:busybox\nV:" + version + "\nA:x86_64\nS:500000\nI:900000\nT:Size optimized toolbox\nU:https://busybox.net/\nL:GPL-2.0-only\no:busybox\nm:Maintainer <m@example.org>\n\n"
	return File{Name: "lib/apk/db/installed", Body: []byte(body)}
}

// PackageLock is an npm package-lock.json (v3) with lodash at version.
func PackageLock(version string) File {
	body := `{"name": "app", "version": "1.0.0", "lockfileVersion": 3, "requires": true, "packages": {
  "": {"name": "app", "version": "1.0.0", "dependencies": {"lodash": "^4.17.0"}},
  "node_modules/lodash": {"version": "` + version + `", "resolved": "https://registry.invalid/lodash/-/lodash-` + version + `.tgz"}}}`
	return File{Name: "app/package-lock.json", Body: []byte(body)}
}

// TextVersion is the golang.org/x/text version the Go binary is built
// with: the one Berth's go.sum names, so the module cache has it.
const TextVersion = "v0.41.0"

// GoBinary builds a small program that imports golang.org/x/text at
// TextVersion, offline, and returns the executable.
func GoBinary(t testing.TB) []byte {
	t.Helper()
	dir := t.TempDir()
	sum, err := os.ReadFile(filepath.Join(repoRoot(t), "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"go.mod":  "module example.com/app\n\ngo 1.22\n\nrequire golang.org/x/text " + TextVersion + "\n",
		"go.sum":  string(sum),
		"main.go": "package main\n\nimport (\n\t\"fmt\"\n\n\t\"golang.org/x/text/language\"\n)\n\nfunc main() { fmt.Println(language.English) }\n",
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "build", "-o", "app", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod -buildvcs=false", "GOPROXY=off", "GOWORK=off", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build the test binary: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "app"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func repoRoot(t testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller")
	}
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

// Vulnerable is an image whose every seeded package is vulnerable: Debian
// openssl, lodash, and golang.org/x/text in a Go binary (bin is GoBinary's).
func Vulnerable(t testing.TB, bin []byte) v1.Image {
	return Image(t,
		Layer(t, DebianRelease, DpkgStatus("3.0.11-1~deb12u2")),
		Layer(t, PackageLock("4.17.20"), File{Name: "usr/local/bin/app", Body: bin, Mode: 0o755}))
}

// Fixed is the same image with the fixed versions and no Go binary.
func Fixed(t testing.TB) v1.Image {
	return Image(t, Layer(t, DebianRelease, DpkgStatus("3.0.15-1~deb12u1")), Layer(t, PackageLock("4.17.21")))
}

// Alpine is an image with a vulnerable busybox.
func Alpine(t testing.TB) v1.Image {
	return Image(t, Layer(t, AlpineRelease, ApkInstalled("1.36.1-r28")))
}

// Records is the first database: one advisory per seeded package, each
// fixed in a version the Fixed image has.
var Records = map[string]string{
	"DEBIAN-CVE-2024-0727.json": `{"id": "DEBIAN-CVE-2024-0727", "modified": "2024-03-01T00:00:00Z",
  "aliases": ["CVE-2024-0727"], "summary": "openssl: denial of service via null dereference",
  "database_specific": {"severity": "HIGH"},
  "affected": [{"package": {"ecosystem": "Debian:12", "name": "openssl"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.13-1~deb12u1"}]}]}],
  "references": [{"type": "ADVISORY", "url": "https://security-tracker.debian.org/tracker/CVE-2024-0727"}]}`,
	"ALPINE-CVE-2023-42363.json": `{"id": "ALPINE-CVE-2023-42363", "modified": "2024-06-01T00:00:00Z",
  "summary": "busybox: use-after-free in awk", "database_specific": {"severity": "MEDIUM"},
  "affected": [{"package": {"ecosystem": "Alpine:v3.20", "name": "busybox"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.36.1-r29"}]}]}]}`,
	"GO-2099-0001.json": `{"id": "GO-2099-0001", "modified": "2024-05-01T00:00:00Z", "summary": "x/text: a test advisory",
  "database_specific": {"severity": "CRITICAL"},
  "affected": [{"package": {"ecosystem": "Go", "name": "golang.org/x/text"},
    "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "` + strings.TrimPrefix(nextMinor(TextVersion), "v") + `"}]}]}]}`,
	"GHSA-35jh-r3h4-6jhm.json": `{"id": "GHSA-35jh-r3h4-6jhm", "modified": "2024-01-01T00:00:00Z", "aliases": ["CVE-2021-23337"],
  "summary": "Command Injection in lodash", "database_specific": {"severity": "HIGH"},
  "affected": [{"package": {"ecosystem": "npm", "name": "lodash"},
    "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "4.17.21"}]}]}]}`,
}

// Records2 is a later database: it adds an advisory that the Fixed
// image's lodash is affected by.
var Records2 = map[string]string{
	"GHSA-0000-new0-lodash.json": `{"id": "GHSA-0000-new0-lodash", "modified": "2024-08-01T00:00:00Z",
  "summary": "lodash: a newer advisory", "database_specific": {"severity": "LOW"},
  "affected": [{"package": {"ecosystem": "npm", "name": "lodash"},
    "ranges": [{"type": "SEMVER", "events": [{"introduced": "4.17.21"}, {"fixed": "4.17.22"}]}]}]}`,
}

func nextMinor(v string) string {
	parts := strings.Split(strings.TrimPrefix(v, "v"), ".")
	n, _ := strconv.Atoi(parts[1])
	return "v" + parts[0] + "." + strconv.Itoa(n+1) + ".0"
}

// WriteOSV writes records (file name -> OSV JSON) into a new directory
// and returns it.
func WriteOSV(t testing.TB, records ...map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for _, rs := range records {
		for n, b := range rs {
			if err := os.WriteFile(filepath.Join(dir, n), []byte(b), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// RPMDB is a real rpm database (SQLite, a Rocky Linux 9 system's 141
// packages, among them bash 5.1.8-6.el9_1 and openssl and openssl-libs
// 1:3.0.7-6.el9_2): osv-scalibr's own test data, read from the module
// cache where the build found the module, not copied into Berth.
func RPMDB(t testing.TB) []byte {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/google/osv-scalibr")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("find osv-scalibr in the module cache: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "extractor", "filesystem", "os", "rpm", "testdata", "rpmdb.sqlite"))
	if err != nil {
		t.Fatalf("osv-scalibr's rpm test database: %v", err)
	}
	return b
}

// AlmaRelease is /etc/os-release of AlmaLinux 9.2.
var AlmaRelease = File{Name: "etc/os-release", Body: []byte("NAME=\"AlmaLinux\"\nID=\"almalinux\"\nVERSION_ID=\"9.2\"\nPRETTY_NAME=\"AlmaLinux 9.2 (Turquoise Kodkod)\"\n")}
