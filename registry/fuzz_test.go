package registry

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func FuzzParsePath(f *testing.F) {
	seeds := []struct{ path, query string }{
		{"/v2", ""},
		{"/v2/", ""},
		{"/v2/_catalog", "n=10"},
		{"/v2/library/ubuntu/manifests/latest", ""},
		{"/v2/library/ubuntu/manifests/latest", "ns=docker.io"},
		{"/v2/a/manifests/" + testSHA256, "ns=registry.local:5000"},
		{"/v2/a/manifests/" + testSHA512, ""},
		{"/v2/a/b/blobs/" + testSHA256, ""},
		{"/v2/a/b/blobs/uploads/", ""},
		{"/v2/a/b/blobs/uploads/abc-123", ""},
		{"/v2/a/tags/list", "n=2&last=b"},
		{"/v2/a/referrers/" + testSHA256, ""},
		{"/v2/a/manifests/manifests/latest", ""},
		{"/v2/blobs/blobs/blobs/" + testSHA256, ""},
		{"/v2/my.org/a__b/c---d/tags/list", ""},
		{"/v2/A/manifests/latest", ""},
		{"/v2//manifests/latest", ""},
		{"/v2/a/manifests/-x", ""},
		{"/v2/a/manifests/foo:bar", ""},
		{"/v2/a/blobs/sha256:" + strings.ToUpper(testSHA256[7:]), ""},
		{"/v2/a/tags/list", "ns=-bad"},
		{"/v2/a/tags/list", "ns=%zz;ns=a"},
		{"/v1/", ""},
		{"", ""},
	}
	for _, s := range seeds {
		f.Add(s.path, s.query)
	}
	f.Fuzz(func(t *testing.T, path, query string) {
		checkParsePath(t, &url.URL{Path: path, RawQuery: query})
		// The same input as a client would send it: escaped, through the
		// request URI parser the server uses.
		if u, err := url.ParseRequestURI(path + "?" + query); err == nil {
			checkParsePath(t, u)
		}
	})
}

// checkParsePath asserts the invariants of ParsePath for any input.
func checkParsePath(t *testing.T, u *url.URL) {
	t.Helper()

	rt, err := ParsePath(u)
	if err != nil {
		var re *Error
		if !errors.As(err, &re) {
			t.Fatalf("ParsePath(%q): error %v (%T) is not an *Error", u, err, err)
		}
		if re.Status != http.StatusBadRequest && re.Status != http.StatusNotFound {
			t.Fatalf("ParsePath(%q): status %d, want 400 or 404", u, re.Status)
		}
		if re.Code == "" || re.Message == "" {
			t.Fatalf("ParsePath(%q): error without code or message: %+v", u, re)
		}
		if (rt != Route{}) {
			t.Fatalf("ParsePath(%q): route %+v with error", u, rt)
		}
		return
	}
	if !strings.HasPrefix(u.Path, "/v2") {
		t.Fatalf("ParsePath(%q) accepted a path outside /v2: %+v", u, rt)
	}
	switch rt.Kind {
	case KindBase, KindCatalog:
		if (rt != Route{Kind: rt.Kind}) {
			t.Fatalf("ParsePath(%q): %v route has fields set: %+v", u, rt.Kind, rt)
		}
		return
	}
	if !ValidName(rt.Repo.Name) {
		t.Fatalf("ParsePath(%q): invalid name %q accepted", u, rt.Repo.Name)
	}
	if ns := rt.Repo.NS; ns != "" {
		if len(ns) > 255 || !hostRE.MatchString(ns) || ns != strings.ToLower(ns) {
			t.Fatalf("ParsePath(%q): invalid ns %q accepted", u, ns)
		}
	}
	var canonical string
	switch rt.Kind {
	case KindManifest:
		if IsDigest(rt.Reference) {
			d, err := ParseDigest(rt.Reference)
			if err != nil || d != rt.Digest {
				t.Fatalf("ParsePath(%q): manifest reference %q, digest %q (%v)", u, rt.Reference, rt.Digest, err)
			}
		} else if !ValidTag(rt.Reference) || rt.Digest != "" {
			t.Fatalf("ParsePath(%q): manifest tag %q, digest %q", u, rt.Reference, rt.Digest)
		}
		if rt.UploadID != "" {
			t.Fatalf("ParsePath(%q): manifest with upload id %q", u, rt.UploadID)
		}
		canonical = "/v2/" + rt.Repo.Name + "/manifests/" + rt.Reference
	case KindBlob, KindReferrers:
		d, err := ParseDigest(rt.Digest.String())
		if err != nil || d.String() != rt.Reference {
			t.Fatalf("ParsePath(%q): %v with reference %q, digest %q (%v)", u, rt.Kind, rt.Reference, rt.Digest, err)
		}
		if rt.UploadID != "" {
			t.Fatalf("ParsePath(%q): %v with upload id %q", u, rt.Kind, rt.UploadID)
		}
		seg := "/blobs/"
		if rt.Kind == KindReferrers {
			seg = "/referrers/"
		}
		canonical = "/v2/" + rt.Repo.Name + seg + rt.Reference
	case KindBlobUpload:
		if rt.Reference != "" || rt.Digest != "" {
			t.Fatalf("ParsePath(%q): upload with reference %q, digest %q", u, rt.Reference, rt.Digest)
		}
		if rt.UploadID != "" && !uploadIDRE.MatchString(rt.UploadID) {
			t.Fatalf("ParsePath(%q): invalid upload id %q accepted", u, rt.UploadID)
		}
		canonical = "/v2/" + rt.Repo.Name + "/blobs/uploads/" + rt.UploadID
	case KindTags:
		if (rt != Route{Kind: KindTags, Repo: rt.Repo}) {
			t.Fatalf("ParsePath(%q): tags route has fields set: %+v", u, rt)
		}
		canonical = "/v2/" + rt.Repo.Name + "/tags/list"
	default:
		t.Fatalf("ParsePath(%q): unexpected kind %v", u, rt.Kind)
	}
	// The route's canonical path parses back to the same route.
	var q string
	if rt.Repo.NS != "" {
		q = "ns=" + rt.Repo.NS
	}
	again, err := ParsePath(&url.URL{Path: canonical, RawQuery: q})
	if err != nil {
		t.Fatalf("ParsePath(%q) = %+v, but canonical %q fails: %v", u, rt, canonical, err)
	}
	if again != rt {
		t.Fatalf("ParsePath(%q) = %+v, but canonical %q gives %+v", u, rt, canonical, again)
	}
}

func FuzzParseRange(f *testing.F) {
	seeds := []struct {
		header string
		size   int64
	}{
		{"", 100},
		{"bytes=0-", 100},
		{"bytes=10-19", 100},
		{"bytes=10-1000", 100},
		{"bytes=-10", 100},
		{"bytes=-1000", 100},
		{"bytes=-0", 100},
		{"bytes=100-", 100},
		{"bytes=20-10", 100},
		{"bytes=0-1,5-6", 100},
		{"bytes=0-", 0},
		{"bytes=-1", 0},
		{"bytes=0-9223372036854775808", 100},
		{"bytes=-9223372036854775807", 9223372036854775807},
		{"bytes= 1-2 ", 3},
		{"bytes=-5", -10},
		{"garbage", 1},
	}
	for _, s := range seeds {
		f.Add(s.header, s.size)
	}
	f.Fuzz(func(t *testing.T, header string, size int64) {
		start, end, partial, err := ParseRange(header, size)
		if err != nil {
			var re *Error
			if !errors.As(err, &re) {
				t.Fatalf("ParseRange(%q, %d): error %v (%T) is not an *Error", header, size, err, err)
			}
			if re.Status != http.StatusRequestedRangeNotSatisfiable || re.Code != CodeRangeInvalid {
				t.Fatalf("ParseRange(%q, %d): error %d %s, want 416 %s", header, size, re.Status, re.Code, CodeRangeInvalid)
			}
			if partial {
				t.Fatalf("ParseRange(%q, %d): partial with error", header, size)
			}
			return
		}
		if !partial {
			if header != "" {
				t.Fatalf("ParseRange(%q, %d): whole blob for a non-empty header", header, size)
			}
			return
		}
		if !(0 <= start && start <= end && end < size) {
			t.Fatalf("ParseRange(%q, %d) = %d-%d, not within the blob", header, size, start, end)
		}
		if !strings.HasPrefix(header, "bytes=") || strings.Contains(header, ",") {
			t.Fatalf("ParseRange(%q, %d) accepted a header that is not a single byte range", header, size)
		}
	})
}
