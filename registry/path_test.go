package registry

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

const (
	testSHA256 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	testSHA512 = "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
)

func TestParsePath(t *testing.T) {
	t.Parallel()

	longName := strings.Repeat("a", MaxNameLength+1)
	maxName := strings.Repeat("a/", 127) + "a" // 255 characters
	longTag := strings.Repeat("t", 129)
	maxTag := strings.Repeat("t", 128)

	tests := []struct {
		name      string
		path      string
		query     string
		kind      Kind
		repo      string
		ns        string
		reference string
		digest    Digest
		uploadID  string
		status    int
		code      string
	}{
		// Base and catalog.
		{name: "base without slash", path: "/v2", kind: KindBase},
		{name: "base with slash", path: "/v2/", kind: KindBase},
		{name: "base ignores ns", path: "/v2/", query: "ns=docker.io", kind: KindBase},
		{name: "catalog", path: "/v2/_catalog", kind: KindCatalog},

		// Manifests.
		{name: "manifest by tag", path: "/v2/library/ubuntu/manifests/latest", kind: KindManifest, repo: "library/ubuntu", reference: "latest"},
		{name: "manifest by max length tag", path: "/v2/a/manifests/" + maxTag, kind: KindManifest, repo: "a", reference: maxTag},
		{name: "manifest by tag with dots and dashes", path: "/v2/a/manifests/v1.2.3-rc_1", kind: KindManifest, repo: "a", reference: "v1.2.3-rc_1"},
		{name: "manifest by tag starting with underscore", path: "/v2/a/manifests/_x", kind: KindManifest, repo: "a", reference: "_x"},
		{name: "manifest by sha256 digest", path: "/v2/library/ubuntu/manifests/" + testSHA256, kind: KindManifest, repo: "library/ubuntu", reference: testSHA256, digest: testSHA256},
		{name: "manifest by sha512 digest", path: "/v2/library/ubuntu/manifests/" + testSHA512, kind: KindManifest, repo: "library/ubuntu", reference: testSHA512, digest: testSHA512},

		// Blobs, tags, referrers, uploads.
		{name: "blob sha256", path: "/v2/a/b/blobs/" + testSHA256, kind: KindBlob, repo: "a/b", reference: testSHA256, digest: testSHA256},
		{name: "blob sha512", path: "/v2/a/b/blobs/" + testSHA512, kind: KindBlob, repo: "a/b", reference: testSHA512, digest: testSHA512},
		{name: "tags list", path: "/v2/a/b/tags/list", kind: KindTags, repo: "a/b"},
		{name: "referrers", path: "/v2/a/referrers/" + testSHA256, kind: KindReferrers, repo: "a", reference: testSHA256, digest: testSHA256},
		{name: "upload without id", path: "/v2/a/blobs/uploads", kind: KindBlobUpload, repo: "a"},
		{name: "upload without id trailing slash", path: "/v2/a/blobs/uploads/", kind: KindBlobUpload, repo: "a"},
		{name: "upload with id", path: "/v2/a/b/blobs/uploads/abc-DEF_123", kind: KindBlobUpload, repo: "a/b", uploadID: "abc-DEF_123"},
		{name: "upload with invalid id", path: "/v2/a/blobs/uploads/a.b", status: http.StatusNotFound, code: CodeBlobUploadUnknown},

		// Names.
		{name: "name with several components", path: "/v2/a/b/c/d/e/manifests/latest", kind: KindManifest, repo: "a/b/c/d/e", reference: "latest"},
		{name: "name with dot", path: "/v2/my.org/img/manifests/1", kind: KindManifest, repo: "my.org/img", reference: "1"},
		{name: "name with underscore", path: "/v2/my_img/manifests/1", kind: KindManifest, repo: "my_img", reference: "1"},
		{name: "name with double underscore", path: "/v2/my__img/manifests/1", kind: KindManifest, repo: "my__img", reference: "1"},
		{name: "name with dashes", path: "/v2/my---img/manifests/1", kind: KindManifest, repo: "my---img", reference: "1"},
		{name: "name of max length", path: "/v2/" + maxName + "/tags/list", kind: KindTags, repo: maxName},
		{name: "name component manifests", path: "/v2/a/manifests/manifests/latest", kind: KindManifest, repo: "a/manifests", reference: "latest"},
		{name: "name component blobs", path: "/v2/blobs/blobs/" + testSHA256, kind: KindBlob, repo: "blobs", reference: testSHA256, digest: testSHA256},
		{name: "name component tags", path: "/v2/tags/tags/list", kind: KindTags, repo: "tags"},
		{name: "name component manifests tags list", path: "/v2/a/manifests/tags/list", kind: KindTags, repo: "a/manifests"},
		{name: "name component blobs manifest", path: "/v2/blobs/manifests/latest", kind: KindManifest, repo: "blobs", reference: "latest"},

		// ns parameter.
		{name: "ns host", path: "/v2/library/ubuntu/manifests/latest", query: "ns=docker.io", kind: KindManifest, repo: "library/ubuntu", ns: "docker.io", reference: "latest"},
		{name: "ns host port", path: "/v2/a/blobs/" + testSHA256, query: "ns=registry.local:5000", kind: KindBlob, repo: "a", ns: "registry.local:5000", reference: testSHA256, digest: testSHA256},
		{name: "ns lower-cased", path: "/v2/a/tags/list", query: "ns=GHCR.io", kind: KindTags, repo: "a", ns: "ghcr.io"},
		{name: "ns empty", path: "/v2/a/tags/list", query: "ns=", kind: KindTags, repo: "a"},
		{name: "other query only", path: "/v2/a/tags/list", query: "n=10&last=b", kind: KindTags, repo: "a"},
		{name: "ns with path", path: "/v2/a/tags/list", query: "ns=docker.io/evil", status: http.StatusBadRequest, code: CodeNameInvalid},
		{name: "ns leading dash", path: "/v2/a/tags/list", query: "ns=-docker.io", status: http.StatusBadRequest, code: CodeNameInvalid},
		{name: "ns bad port", path: "/v2/a/tags/list", query: "ns=docker.io:", status: http.StatusBadRequest, code: CodeNameInvalid},
		{name: "ns with scheme", path: "/v2/a/tags/list", query: "ns=https://docker.io", status: http.StatusBadRequest, code: CodeNameInvalid},
		{name: "ns too long", path: "/v2/a/tags/list", query: "ns=" + strings.Repeat("a", 256), status: http.StatusBadRequest, code: CodeNameInvalid},

		// Invalid names.
		{name: "name upper case", path: "/v2/Library/ubuntu/manifests/latest", status: http.StatusBadRequest, code: CodeNameInvalid},
		{name: "name leading separator", path: "/v2/-a/manifests/latest", status: http.StatusBadRequest, code: CodeNameInvalid},
		{name: "name leading dot", path: "/v2/.a/manifests/latest", status: http.StatusBadRequest, code: CodeNameInvalid},
		{name: "name trailing separator", path: "/v2/a_/manifests/latest", status: http.StatusBadRequest, code: CodeNameInvalid},
		{name: "name triple underscore", path: "/v2/a___b/manifests/latest", status: http.StatusBadRequest, code: CodeNameInvalid},
		{name: "name empty component", path: "/v2/a//b/manifests/latest", status: http.StatusBadRequest, code: CodeNameInvalid},
		{name: "name leading slash", path: "/v2//a/manifests/latest", status: http.StatusBadRequest, code: CodeNameInvalid},
		{name: "name empty", path: "/v2//manifests/latest", status: http.StatusBadRequest, code: CodeNameInvalid},
		{name: "name too long", path: "/v2/" + longName + "/manifests/latest", status: http.StatusBadRequest, code: CodeNameInvalid},
		{name: "name dot dot", path: "/v2/a/../b/manifests/latest", status: http.StatusBadRequest, code: CodeNameInvalid},

		// Invalid tags: a tag that fails the grammar is MANIFEST_INVALID; one with a
		// colon is taken for a digest and is DIGEST_INVALID.
		{name: "tag too long", path: "/v2/a/manifests/" + longTag, status: http.StatusBadRequest, code: CodeManifestInvalid},
		{name: "tag leading dash", path: "/v2/a/manifests/-latest", status: http.StatusBadRequest, code: CodeManifestInvalid},
		{name: "tag leading dot", path: "/v2/a/manifests/.latest", status: http.StatusBadRequest, code: CodeManifestInvalid},
		{name: "tag with plus", path: "/v2/a/manifests/1.0+build", status: http.StatusBadRequest, code: CodeManifestInvalid},
		{name: "tag empty", path: "/v2/a/manifests/", status: http.StatusBadRequest, code: CodeManifestInvalid},
		{name: "tag with colon", path: "/v2/a/manifests/foo:bar", status: http.StatusBadRequest, code: CodeDigestInvalid},

		// Bad digests.
		{name: "manifest digest unknown algorithm", path: "/v2/a/manifests/md5:d41d8cd98f00b204e9800998ecf8427e", status: http.StatusBadRequest, code: CodeDigestInvalid},
		{name: "manifest digest upper-case hex", path: "/v2/a/manifests/" + strings.ToUpper(testSHA256[:7]) + strings.ToUpper(testSHA256[7:]), status: http.StatusBadRequest, code: CodeDigestInvalid},
		{name: "blob digest upper-case hex", path: "/v2/a/blobs/sha256:" + strings.ToUpper(testSHA256[7:]), status: http.StatusBadRequest, code: CodeDigestInvalid},
		{name: "blob digest too short", path: "/v2/a/blobs/" + testSHA256[:len(testSHA256)-1], status: http.StatusBadRequest, code: CodeDigestInvalid},
		{name: "blob digest too long", path: "/v2/a/blobs/" + testSHA256 + "0", status: http.StatusBadRequest, code: CodeDigestInvalid},
		{name: "blob sha512 with sha256 length", path: "/v2/a/blobs/sha512:" + testSHA256[7:], status: http.StatusBadRequest, code: CodeDigestInvalid},
		{name: "blob digest missing colon", path: "/v2/a/blobs/sha256" + testSHA256[7:], status: http.StatusBadRequest, code: CodeDigestInvalid},
		{name: "blob digest unknown algorithm", path: "/v2/a/blobs/sha384:" + strings.Repeat("a", 96), status: http.StatusBadRequest, code: CodeDigestInvalid},
		{name: "blob digest non hex", path: "/v2/a/blobs/sha256:" + strings.Repeat("g", 64), status: http.StatusBadRequest, code: CodeDigestInvalid},
		{name: "blob digest empty", path: "/v2/a/blobs/", status: http.StatusBadRequest, code: CodeDigestInvalid},
		{name: "referrers bad digest", path: "/v2/a/referrers/latest", status: http.StatusBadRequest, code: CodeDigestInvalid},

		// Unknown paths.
		{name: "root", path: "/", status: http.StatusNotFound, code: CodeNameUnknown},
		{name: "v1", path: "/v1/a/manifests/latest", status: http.StatusNotFound, code: CodeNameUnknown},
		{name: "v2 prefix only", path: "/v20/a/manifests/latest", status: http.StatusNotFound, code: CodeNameUnknown},
		{name: "name only", path: "/v2/a", status: http.StatusNotFound, code: CodeNameUnknown},
		{name: "manifests without name", path: "/v2/manifests/latest", status: http.StatusNotFound, code: CodeNameUnknown},
		{name: "tags without list", path: "/v2/a/tags", status: http.StatusNotFound, code: CodeNameUnknown},
		{name: "tags other", path: "/v2/a/tags/all", status: http.StatusNotFound, code: CodeNameUnknown},
		{name: "unknown endpoint", path: "/v2/a/things/x", status: http.StatusNotFound, code: CodeNameUnknown},
		{name: "catalog trailing slash", path: "/v2/_catalog/", status: http.StatusNotFound, code: CodeNameUnknown},
		{name: "manifest trailing slash", path: "/v2/a/manifests/latest/", status: http.StatusNotFound, code: CodeNameUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			rt, err := ParsePath(&url.URL{Path: tt.path, RawQuery: tt.query})
			if tt.code != "" {
				if err == nil {
					t.Fatalf("ParsePath(%q) = %+v, want %s error", tt.path, rt, tt.code)
				}
				var re *Error
				if !errors.As(err, &re) {
					t.Fatalf("error %v (%T) is not an *Error", err, err)
				}
				if re.Status != tt.status {
					t.Errorf("status = %d, want %d", re.Status, tt.status)
				}
				if re.Code != tt.code {
					t.Errorf("code = %s, want %s (%v)", re.Code, tt.code, re)
				}
				if (rt != Route{}) {
					t.Errorf("route = %+v on error, want zero", rt)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePath(%q): unexpected error %v", tt.path, err)
			}
			if rt.Kind != tt.kind {
				t.Errorf("kind = %v, want %v", rt.Kind, tt.kind)
			}
			if rt.Repo.Name != tt.repo {
				t.Errorf("name = %q, want %q", rt.Repo.Name, tt.repo)
			}
			if rt.Repo.NS != tt.ns {
				t.Errorf("ns = %q, want %q", rt.Repo.NS, tt.ns)
			}
			if rt.Reference != tt.reference {
				t.Errorf("reference = %q, want %q", rt.Reference, tt.reference)
			}
			if rt.Digest != tt.digest {
				t.Errorf("digest = %q, want %q", rt.Digest, tt.digest)
			}
			if rt.UploadID != tt.uploadID {
				t.Errorf("upload id = %q, want %q", rt.UploadID, tt.uploadID)
			}
		})
	}
}

func TestKindString(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		kind Kind
		want string
	}{
		{name: "base", kind: KindBase, want: "base"},
		{name: "catalog", kind: KindCatalog, want: "catalog"},
		{name: "manifest", kind: KindManifest, want: "manifest"},
		{name: "blob", kind: KindBlob, want: "blob"},
		{name: "upload", kind: KindBlobUpload, want: "upload"},
		{name: "tags", kind: KindTags, want: "tags"},
		{name: "referrers", kind: KindReferrers, want: "referrers"},
		{name: "out of range", kind: Kind(99), want: "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.kind.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRepoString(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		repo Repo
		want string
	}{
		{name: "without ns", repo: Repo{Name: "library/ubuntu"}, want: "library/ubuntu"},
		{name: "with ns", repo: Repo{Name: "library/ubuntu", NS: "docker.io"}, want: "docker.io/library/ubuntu"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.repo.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}
