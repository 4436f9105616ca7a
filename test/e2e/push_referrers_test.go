package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"berth/test/testreg"
)

// pushRawBlob pushes data to a registry monolithically.
func pushRawBlob(t *testing.T, regURL, repo string, data []byte) string {
	t.Helper()
	d := pushSha256(data)
	req, _ := http.NewRequest(http.MethodPost, regURL+"/v2/"+repo+"/blobs/uploads/?digest="+d, bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push blob to %s: %s %s", regURL, resp.Status, body)
	}
	return d
}

// pushRawManifest PUTs a manifest body as repo:ref and returns its digest.
func pushRawManifest(t *testing.T, regURL, repo, ref, mediaType string, body []byte) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, regURL+"/v2/"+repo+"/manifests/"+ref, bytes.NewReader(body))
	req.Header.Set("Content-Type", mediaType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push manifest %s:%s: %s %s", repo, ref, resp.Status, b)
	}
	return pushSha256(body)
}

const (
	pushSigArtifactType = "application/vnd.dev.cosign.artifact.sig.v1+json"
	pushEmptyConfig     = `{}`
)

// pushSignature pushes a signature manifest (OCI artifact, subject = the
// image) to repo by digest and returns its descriptor.
func pushSignature(t *testing.T, regURL, repo string, subject v1.Descriptor, payload string) v1.Descriptor {
	t.Helper()
	cfg := pushRawBlob(t, regURL, repo, []byte(pushEmptyConfig))
	sig := pushRawBlob(t, regURL, repo, []byte(payload))
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"artifactType":  pushSigArtifactType,
		"config":        map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": cfg, "size": len(pushEmptyConfig)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": sig, "size": len(payload)}},
		"subject":       map[string]any{"mediaType": string(subject.MediaType), "digest": subject.Digest.String(), "size": subject.Size},
	}
	body, _ := json.Marshal(m)
	d := pushRawManifest(t, regURL, repo, pushSha256(body), "application/vnd.oci.image.manifest.v1+json", body)
	h, _ := v1.NewHash(d)
	return v1.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: h, Size: int64(len(body)), ArtifactType: pushSigArtifactType}
}

// pushGetReferrers asks berth for the referrers of d in repo.
func pushGetReferrers(ctx context.Context, t *testing.T, b *Berth, repo, d string) []v1.Descriptor {
	t.Helper()
	st, h, body := request(ctx, t, nil, http.MethodGet, b.URL+"/v2/"+repo+"/referrers/"+d, cred{}, nil, nil)
	if st != http.StatusOK {
		t.Fatalf("GET referrers of %s: %d %s", d, st, body)
	}
	if ct := h.Get("Content-Type"); ct != "application/vnd.oci.image.index.v1+json" {
		t.Errorf("referrers Content-Type %q", ct)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(body, &idx); err != nil {
		t.Fatalf("referrers body: %v: %s", err, body)
	}
	return idx.Manifests
}

func pushHasDescriptor(list []v1.Descriptor, want v1.Descriptor) bool {
	for _, d := range list {
		if d.Digest == want.Digest && d.Size == want.Size && d.MediaType == want.MediaType {
			return true
		}
	}
	return false
}

// TestProxiedReferrers lists an upstream image's signature through a
// prefixed rule: by the referrers tag schema on an upstream without the
// referrers API, and by subject on one with it; both cached for the TTL.
func TestProxiedReferrers(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.Run("TagSchema", func(t *testing.T) {
		up := testreg.Start(t) // no referrers API: 404 on /referrers/
		img := realImage(t, pushSeed(), 1, "amd64", true)
		imgDigest := up.Push(t, "team/app", "v1", img)
		mf, _ := img.RawManifest()
		subject := v1.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: imgDigest, Size: int64(len(mf))}
		sig := pushSignature(t, up.URL, "team/app", subject, `{"critical":{"image":{"docker-manifest-digest":"`+imgDigest.String()+`"}}}`)
		// The OCI referrers tag schema: an index tagged sha256-<hex>.
		idx, _ := json.Marshal(map[string]any{
			"schemaVersion": 2,
			"mediaType":     "application/vnd.oci.image.index.v1+json",
			"manifests": []any{map[string]any{"mediaType": string(sig.MediaType), "digest": sig.Digest.String(),
				"size": sig.Size, "artifactType": sig.ArtifactType}},
		})
		pushRawManifest(t, up.URL, "team/app", "sha256-"+imgDigest.Hex, "application/vnd.oci.image.index.v1+json", idx)
		up.Reset()

		b := StartBerth(t, "", "upstreams:\n"+upstreamConfig("up", "up", "up.test", up.URL, false, "    ttl: 1h\n"))
		list := pushGetReferrers(ctx, t, b, "up/team/app", imgDigest.String())
		if !pushHasDescriptor(list, sig) || len(list) != 1 {
			t.Errorf("referrers of %s: %+v, want the signature %s", imgDigest, list, sig.Digest)
		} else if list[0].ArtifactType != pushSigArtifactType {
			t.Errorf("referrer artifactType %q, want %q", list[0].ArtifactType, pushSigArtifactType)
		}
		t.Logf("upstream requests for the first referrers call: %v", up.Requests())
		if up.Count("total") == 0 {
			t.Error("first referrers request did not reach the upstream")
		}
		up.Reset()
		list = pushGetReferrers(ctx, t, b, "up/team/app", imgDigest.String())
		if !pushHasDescriptor(list, sig) {
			t.Errorf("second referrers call: %+v", list)
		}
		if n := up.Count("total"); n != 0 {
			t.Errorf("second referrers call within the TTL reached the upstream: %v", up.Requests())
		}
		// artifactType filter is applied on the cached list.
		st, h, body := request(ctx, t, nil, http.MethodGet, b.URL+"/v2/up/team/app/referrers/"+imgDigest.String()+"?artifactType=application/x-none", cred{}, nil, nil)
		if st != 200 || h.Get("OCI-Filters-Applied") != "artifactType" || strings.Contains(string(body), sig.Digest.String()) {
			t.Errorf("filtered referrers: %d %q %s", st, h.Get("OCI-Filters-Applied"), body)
		}
	})

	t.Run("ReferrersAPI", func(t *testing.T) {
		reg := testreg.Start(t, testreg.WithReferrers())
		img := realImage(t, pushSeed(), 1, "amd64", true)
		if err := crane.Push(img, strings.TrimPrefix(reg.URL, "http://")+"/team/app:v1", crane.Insecure); err != nil {
			t.Fatal(err)
		}
		imgDigest, _ := img.Digest()
		mf, _ := img.RawManifest()
		subject := v1.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: imgDigest, Size: int64(len(mf))}
		sig := pushSignature(t, reg.URL, "team/app", subject, `{"sig":"by-subject"}`)
		reg.Reset()

		b := StartBerth(t, "", "upstreams:\n"+upstreamConfig("up", "up", "up.test", reg.URL, false, "    ttl: 1h\n"))
		list := pushGetReferrers(ctx, t, b, "up/team/app", imgDigest.String())
		if !pushHasDescriptor(list, sig) || len(list) != 1 {
			t.Errorf("referrers (API) of %s: %+v, want the signature %s", imgDigest, list, sig.Digest)
		}
		if reg.Count("total") == 0 {
			t.Error("first referrers request did not reach the upstream")
		}
		reg.Reset()
		if list := pushGetReferrers(ctx, t, b, "up/team/app", imgDigest.String()); !pushHasDescriptor(list, sig) {
			t.Errorf("second referrers call: %+v", list)
		}
		if n := reg.Count("total"); n != 0 {
			t.Errorf("second referrers call within the TTL made %d upstream requests", n)
		}
	})
}
