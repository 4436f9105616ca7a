package audit

import (
	"net/http"
	"testing"
	"time"

	"berth/registry"
)

func TestAction(t *testing.T) {
	tests := []struct {
		method string
		kind   registry.Kind
		want   string
	}{
		{http.MethodGet, registry.KindManifest, "BatchGetImage"},
		{http.MethodHead, registry.KindManifest, "BatchGetImage"},
		{http.MethodPut, registry.KindManifest, "PutImage"},
		{http.MethodDelete, registry.KindManifest, "BatchDeleteImage"},
		{http.MethodGet, registry.KindBlob, "GetDownloadUrlForLayer"},
		{http.MethodHead, registry.KindBlob, "BatchCheckLayerAvailability"},
		{http.MethodDelete, registry.KindBlob, "DeleteLayer"},
		{http.MethodPost, registry.KindBlobUpload, "InitiateLayerUpload"},
		{http.MethodPatch, registry.KindBlobUpload, "UploadLayerPart"},
		{http.MethodPut, registry.KindBlobUpload, "CompleteLayerUpload"},
		{http.MethodDelete, registry.KindBlobUpload, "AbortLayerUpload"},
		{http.MethodGet, registry.KindBlobUpload, "DescribeLayerUpload"},
		{http.MethodGet, registry.KindTags, "ListImages"},
		{http.MethodGet, registry.KindCatalog, "DescribeRepositories"},
		{http.MethodGet, registry.KindReferrers, "ListReferrers"},
		{http.MethodGet, registry.KindBase, ""},
	}
	for _, tt := range tests {
		if got := Action(registry.RequestInfo{Method: tt.method, Kind: tt.kind}); got != tt.want {
			t.Errorf("Action(%s kind %d) = %q, want %q", tt.method, tt.kind, got, tt.want)
		}
	}
}

func TestFromRequest(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600))
	digest := "sha256:" + "ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12"
	tests := []struct {
		name string
		info registry.RequestInfo
		want Event
		ok   bool
	}{
		{
			name: "anonymous pull by tag",
			info: registry.RequestInfo{Method: http.MethodGet, Kind: registry.KindManifest, Repo: registry.Repo{Name: "library/alpine"},
				Reference: "3.20", Status: 200, Bytes: 512, Client: "10.0.0.7"},
			want: Event{Time: now.UTC(), Principal: "anonymous", SourceIP: "10.0.0.7", Action: "BatchGetImage",
				Repository: "library/alpine", Reference: "3.20", Result: "success", Status: 200, Bytes: 512},
			ok: true,
		},
		{
			name: "refused push by digest, with its code",
			info: registry.RequestInfo{Method: http.MethodPut, Kind: registry.KindManifest, Repo: registry.Repo{Name: "private/app"},
				Reference: digest, Status: 403, Code: "DENIED", Principal: "bob", Client: "10.0.0.8"},
			want: Event{Time: now.UTC(), Principal: "bob", SourceIP: "10.0.0.8", Action: "PutImage",
				Repository: "private/app", Reference: digest, Digest: digest, Result: "DENIED", Status: 403},
			ok: true,
		},
		{
			name: "failure without a code",
			info: registry.RequestInfo{Method: http.MethodGet, Kind: registry.KindTags, Repo: registry.Repo{Name: "a"}, Status: 502, Principal: "carol"},
			want: Event{Time: now.UTC(), Principal: "carol", Action: "ListImages", Repository: "a", Result: "failure", Status: 502},
			ok:   true,
		},
		{
			name: "the ping is not audited",
			info: registry.RequestInfo{Method: http.MethodGet, Kind: registry.KindBase, Status: 200},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := FromRequest(tt.info, now)
			if ok != tt.ok || got != tt.want {
				t.Errorf("FromRequest = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}
