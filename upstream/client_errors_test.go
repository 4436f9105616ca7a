package upstream

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"berth/test/testreg"
)

func TestClientErrors(t *testing.T) {
	const missing = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	answer := func(kind string, status int, hdr map[string]string) func(w http.ResponseWriter, r *http.Request) bool {
		return func(w http.ResponseWriter, r *http.Request) bool {
			if testreg.Kind(r.URL.Path) != kind {
				return false
			}
			for k, v := range hdr {
				w.Header().Set(k, v)
			}
			w.WriteHeader(status)
			io.WriteString(w, `{"errors":[{"code":"X","message":"test answer"}]}`)
			return true
		}
	}
	calls := map[string]func(u *Upstream) error{
		"HeadManifest": func(u *Upstream) error { _, err := u.HeadManifest(context.Background(), "team/app", "v1"); return err },
		"GetManifest": func(u *Upstream) error {
			_, _, err := u.GetManifest(context.Background(), "team/app", "v1")
			return err
		},
		"GetManifestUnknownTag": func(u *Upstream) error {
			_, _, err := u.GetManifest(context.Background(), "team/app", "nope")
			return err
		},
		"HeadManifestUnknownRepo": func(u *Upstream) error {
			_, err := u.HeadManifest(context.Background(), "team/none", "v1")
			return err
		},
		"GetManifestUnknownDigest": func(u *Upstream) error {
			_, _, err := u.GetManifest(context.Background(), "team/app", missing)
			return err
		},
		"GetBlob": func(u *Upstream) error {
			rc, _, err := u.GetBlobRange(context.Background(), "team/app", missing, 0, -1)
			if rc != nil {
				rc.Close()
			}
			return err
		},
		"HeadBlob":  func(u *Upstream) error { _, err := u.HeadBlob(context.Background(), "team/app", missing); return err },
		"ListTags":  func(u *Upstream) error { _, err := u.ListTags(context.Background(), "team/app"); return err },
		"ListTags0": func(u *Upstream) error { _, err := u.ListTags(context.Background(), "team/none"); return err },
	}
	tests := []struct {
		name           string
		mutate         func(w http.ResponseWriter, r *http.Request) bool
		call           string
		wantNotFound   bool
		wantUnavail    bool
		wantStatus     int
		wantRetryAfter time.Duration
	}{
		{name: "unknown tag is 404", call: "GetManifestUnknownTag", wantNotFound: true, wantStatus: 404},
		{name: "unknown repo HEAD is 404", call: "HeadManifestUnknownRepo", wantNotFound: true, wantStatus: 404},
		{name: "unknown digest is 404", call: "GetManifestUnknownDigest", wantNotFound: true, wantStatus: 404},
		{name: "unknown blob is 404", call: "GetBlob", wantNotFound: true, wantStatus: 404},
		{name: "unknown blob HEAD is 404", call: "HeadBlob", wantNotFound: true, wantStatus: 404},
		{name: "unknown repo tags is 404", call: "ListTags0", wantNotFound: true, wantStatus: 404},
		{name: "manifest 500", call: "GetManifest", mutate: answer("manifests", 500, nil), wantUnavail: true, wantStatus: 500},
		{name: "manifest HEAD 503", call: "HeadManifest", mutate: answer("manifests", 503, nil), wantUnavail: true, wantStatus: 503},
		{name: "manifest 429 with Retry-After", call: "GetManifest", mutate: answer("manifests", 429, map[string]string{"Retry-After": "7"}),
			wantUnavail: true, wantStatus: 429, wantRetryAfter: 7 * time.Second},
		{name: "manifest HEAD 429 with Retry-After", call: "HeadManifest", mutate: answer("manifests", 429, map[string]string{"Retry-After": "30"}),
			wantUnavail: true, wantStatus: 429, wantRetryAfter: 30 * time.Second},
		{name: "blob 502", call: "GetBlob", mutate: answer("blobs", 502, nil), wantUnavail: true, wantStatus: 502},
		{name: "blob 429", call: "GetBlob", mutate: answer("blobs", 429, map[string]string{"Retry-After": "2"}),
			wantUnavail: true, wantStatus: 429, wantRetryAfter: 2 * time.Second},
		{name: "tags 500", call: "ListTags", mutate: answer("tags", 500, nil), wantUnavail: true, wantStatus: 500},
		{name: "ping 500", call: "HeadManifest", mutate: answer("base", 500, nil), wantUnavail: true, wantStatus: 500},
		{name: "ping 429", call: "GetManifest", mutate: answer("base", 429, nil), wantUnavail: true, wantStatus: 429},
		{name: "manifest 403 is neither", call: "GetManifest", mutate: answer("manifests", 403, nil), wantStatus: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := testreg.Start(t)
			reg.Push(t, "team/app", "v1", testreg.Image(t, 3, 100))
			reg.Mutate(tt.mutate)
			err := calls[tt.call](ctUpstream(t, reg.URL, nil))
			if err == nil {
				t.Fatalf("%s succeeded", tt.call)
			}
			if got := errors.Is(err, ErrNotFound); got != tt.wantNotFound {
				t.Errorf("errors.Is(%v, ErrNotFound) = %v", err, got)
			}
			if got := errors.Is(err, ErrUnavailable); got != tt.wantUnavail {
				t.Errorf("errors.Is(%v, ErrUnavailable) = %v", err, got)
			}
			if errors.Is(err, ErrTimeout) {
				t.Errorf("%v is ErrTimeout", err)
			}
			var se *StatusError
			if !errors.As(err, &se) {
				t.Fatalf("%v (%T) is not a StatusError", err, err)
			}
			if se.Status != tt.wantStatus || se.RetryAfter != tt.wantRetryAfter || se.Upstream != "test" {
				t.Errorf("StatusError = %+v, want status %d, RetryAfter %s", se, tt.wantStatus, tt.wantRetryAfter)
			}
		})
	}
}

// A hung upstream fails with ErrUnavailable and ErrTimeout soon after the
// rule's timeout.
func TestClientTimeouts(t *testing.T) {
	const timeout = 300 * time.Millisecond
	tests := []struct {
		name  string
		hang  func(*http.Request) bool
		call  func(u *Upstream, digest string) error
		limit time.Duration // the call must fail by then
	}{
		{name: "HeadManifest, whole registry hung", hang: func(*http.Request) bool { return true },
			call: func(u *Upstream, _ string) error {
				_, err := u.HeadManifest(context.Background(), "team/app", "v1")
				return err
			}, limit: timeout},
		{name: "GetManifest, whole registry hung", hang: func(*http.Request) bool { return true },
			call: func(u *Upstream, _ string) error {
				_, _, err := u.GetManifest(context.Background(), "team/app", "v1")
				return err
			}, limit: timeout},
		{name: "GetManifest hung", hang: ctKind(http.MethodGet, "manifests"),
			call: func(u *Upstream, _ string) error {
				_, _, err := u.GetManifest(context.Background(), "team/app", "v1")
				return err
			}, limit: timeout},
		{name: "HeadManifest hung", hang: ctKind(http.MethodHead, "manifests"),
			call: func(u *Upstream, _ string) error {
				_, err := u.HeadManifest(context.Background(), "team/app", "v1")
				return err
			}, limit: timeout},
		{name: "GetBlob first byte", hang: ctKind(http.MethodGet, "blobs"),
			call: func(u *Upstream, d string) error {
				rc, _, err := u.GetBlobRange(context.Background(), "team/app", d, 0, -1)
				if rc != nil {
					rc.Close()
				}
				return err
			}, limit: timeout},
		{name: "GetBlob, whole registry hung", hang: func(*http.Request) bool { return true },
			call: func(u *Upstream, d string) error {
				rc, _, err := u.GetBlobRange(context.Background(), "team/app", d, 0, -1)
				if rc != nil {
					rc.Close()
				}
				return err
			}, limit: timeout},
		{name: "HeadBlob hung", hang: ctKind(http.MethodHead, "blobs"),
			call: func(u *Upstream, d string) error {
				_, err := u.HeadBlob(context.Background(), "team/app", d)
				return err
			},
			limit: timeout},
		{name: "ListTags hung", hang: ctKind(http.MethodGet, "tags"),
			call:  func(u *Upstream, _ string) error { _, err := u.ListTags(context.Background(), "team/app"); return err },
			limit: 4 * timeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := testreg.Start(t)
			d := ctPushBlob(t, reg, "team/app", "v1", testreg.Bytes(4096, 4))
			synctest.Test(t, func(t *testing.T) {
				ctHang(t, reg, tt.hang)
				u, _ := ctInProcess(t, reg, func(r *Rule) { r.Timeout = timeout })
				start := time.Now()
				err := tt.call(u, d)
				took := time.Since(start)
				if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrTimeout) {
					t.Errorf("err = %v, want ErrUnavailable and ErrTimeout", err)
				}
				if errors.Is(err, ErrNotFound) {
					t.Errorf("%v is ErrNotFound", err)
				}
				if took != tt.limit {
					t.Errorf("failed after %s, want %s", took, tt.limit)
				}
			})
		})
	}
}

// A caller that gives up is told so, not that the upstream is down.
func TestClientCallerCancels(t *testing.T) {
	reg := testreg.Start(t)
	synctest.Test(t, func(t *testing.T) {
		ctHang(t, reg, ctKind(http.MethodGet, "manifests"))
		u, _ := ctInProcess(t, reg, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		time.AfterFunc(100*time.Millisecond, cancel)
		_, _, err := u.GetManifest(ctx, "team/app", "v1")
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
			t.Fatalf("err = %v, want context.Canceled and not ErrUnavailable", err)
		}
	})
}

func TestClientClosedUpstream(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	// Timeouts far longer than the test: an error that is not ErrTimeout
	// was noticed at once.
	u := ctUpstream(t, srv.URL, func(r *Rule) { r.Timeout, r.IdleTimeout = time.Hour, time.Hour })
	const d = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	calls := []struct {
		name string
		call func() error
	}{
		{name: "HeadManifest", call: func() error { _, err := u.HeadManifest(context.Background(), "a", "v1"); return err }},
		{name: "GetManifest", call: func() error { _, _, err := u.GetManifest(context.Background(), "a", "v1"); return err }},
		{name: "GetBlobRange", call: func() error { _, _, err := u.GetBlobRange(context.Background(), "a", d, 0, -1); return err }},
		{name: "HeadBlob", call: func() error { _, err := u.HeadBlob(context.Background(), "a", d); return err }},
		{name: "ListTags", call: func() error { _, err := u.ListTags(context.Background(), "a"); return err }},
	}
	for _, tt := range calls {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrTimeout) || errors.Is(err, ErrNotFound) {
				t.Errorf("err = %v, want ErrUnavailable only", err)
			}
		})
	}
}
