package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"berth/test/testreg"
)

func TestGetBlob(t *testing.T) {
	reg := testreg.Start(t)
	data := testreg.Bytes(100_000, 5)
	d := ctPushBlob(t, reg, "team/app", "v1", data)

	// The test registry only understands closed ranges (bytes=a-b); serve
	// blob GETs through http.ServeContent, which does every form.
	var mu sync.Mutex
	var ranges []string
	reg.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || testreg.Kind(r.URL.Path) != "blobs" {
			return false
		}
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		mu.Unlock()
		full := r.Clone(r.Context())
		full.Header.Del("Range")
		rec := httptest.NewRecorder()
		reg.Serve(rec, full)
		if rec.Code != http.StatusOK {
			w.WriteHeader(rec.Code)
			return true
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(rec.Body.Bytes()))
		return true
	})
	u := ctUpstream(t, reg.URL, nil)

	tests := []struct {
		name      string
		off       int64
		wantRange string
	}{
		{name: "whole", off: 0, wantRange: ""},
		{name: "from 1", off: 1, wantRange: "bytes=1-"},
		{name: "from the middle", off: 54_321, wantRange: "bytes=54321-"},
		{name: "last byte", off: int64(len(data) - 1), wantRange: fmt.Sprintf("bytes=%d-", len(data)-1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			ranges = nil
			mu.Unlock()
			rc, size, err := u.GetBlobRange(context.Background(), "team/app", d, tt.off, -1)
			if err != nil {
				t.Fatalf("GetBlobRange: %v", err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if size != int64(len(data)) {
				t.Errorf("size = %d, want the whole blob's %d", size, len(data))
			}
			if !bytes.Equal(got, data[tt.off:]) {
				t.Errorf("got %d bytes, want the %d from offset %d", len(got), len(data)-int(tt.off), tt.off)
			}
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(ranges, []string{tt.wantRange}) {
				t.Errorf("Range headers sent: %q, want %q", ranges, tt.wantRange)
			}
		})
	}

	size, err := u.HeadBlob(context.Background(), "team/app", d)
	if err != nil || size != int64(len(data)) {
		t.Errorf("HeadBlob = %d, %v; want %d", size, err, len(data))
	}
}

// An upstream that ignores Range must not have its whole blob appended at an
// offset.
func TestGetBlobRangeIgnored(t *testing.T) {
	reg := testreg.Start(t)
	data := testreg.Bytes(10_000, 6)
	d := ctPushBlob(t, reg, "team/app", "v1", data)
	reg.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
		r.Header.Del("Range")
		return false
	})
	u := ctUpstream(t, reg.URL, nil)
	rc, _, err := u.GetBlobRange(context.Background(), "team/app", d, 100, -1)
	if err == nil {
		rc.Close()
		t.Fatal("GetBlobRange at an offset accepted a 200")
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("err = %v, want ErrUnavailable", err)
	}
}

func TestGetBlobIdleTimeout(t *testing.T) {
	const idle = 250 * time.Millisecond
	reg := testreg.Start(t)
	data := testreg.Bytes(64<<10, 7)
	d := ctPushBlob(t, reg, "team/app", "v1", data)
	synctest.Test(t, func(t *testing.T) {
		stop := make(chan struct{})
		t.Cleanup(func() { close(stop) })
		reg.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodGet || testreg.Kind(r.URL.Path) != "blobs" {
				return false
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.WriteHeader(http.StatusOK)
			w.Write(data[:len(data)/2])
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-stop:
			}
			return true
		})
		u, _ := ctInProcess(t, reg, func(r *Rule) { r.Timeout = 5 * time.Second; r.IdleTimeout = idle })
		rc, size, err := u.GetBlobRange(context.Background(), "team/app", d, 0, -1)
		if err != nil {
			t.Fatalf("GetBlob: %v", err)
		}
		defer rc.Close()
		if size != int64(len(data)) {
			t.Errorf("size = %d, want %d", size, len(data))
		}
		got := make([]byte, len(data))
		n, err := io.ReadFull(rc, got[:len(data)/2])
		if err != nil {
			t.Fatalf("read the bytes sent: %d, %v", n, err)
		}
		start := time.Now()
		n, err = rc.Read(got)
		took := time.Since(start)
		if n != 0 || !errors.Is(err, ErrTimeout) || !errors.Is(err, ErrUnavailable) {
			t.Fatalf("read after the stall = %d, %v; want 0, ErrUnavailable and ErrTimeout", n, err)
		}
		if took != idle {
			t.Errorf("stall noticed after %s, want %s", took, idle)
		}
	})
}

// A slow stream that keeps making progress is not cut, however long it
// takes in total.
func TestGetBlobSlowButSteady(t *testing.T) {
	const idle = 400 * time.Millisecond
	reg := testreg.Start(t)
	data := testreg.Bytes(5<<20, 8)
	d := ctPushBlob(t, reg, "team/app", "v1", data)
	synctest.Test(t, func(t *testing.T) {
		reg.SlowBlobs(idle - time.Millisecond) // 5 pieces, each just in time
		u, _ := ctInProcess(t, reg, func(r *Rule) { r.Timeout = 5 * time.Second; r.IdleTimeout = idle })
		start := time.Now()
		rc, _, err := u.GetBlobRange(context.Background(), "team/app", d, 0, -1)
		if err != nil {
			t.Fatalf("GetBlob: %v", err)
		}
		defer rc.Close()
		got, err := io.ReadAll(rc)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("got %d bytes, want %d", len(got), len(data))
		}
		if took, want := time.Since(start), 5*(idle-time.Millisecond); took != want {
			t.Fatalf("stream took %s, want %s (5 pieces)", took, want)
		}
	})
}

// Berth follows an upstream's redirects for blobs to an allowed host (a
// CDN, say) and does not pass its credentials along.
func TestGetBlobFollowsRedirect(t *testing.T) {
	tests := []struct {
		name  string
		token bool
	}{
		{name: "anonymous"},
		{name: "token auth", token: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := testreg.Start(t)
			data := testreg.Bytes(300_000, 9)
			d := ctPushBlob(t, reg, "team/app", "v1", data)

			var mu sync.Mutex
			var cdnRequests []string
			cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				cdnRequests = append(cdnRequests, r.Method+" "+r.URL.Path+" auth="+r.Header.Get("Authorization"))
				mu.Unlock()
				if r.URL.Path != "/cdn/"+d {
					http.NotFound(w, r)
					return
				}
				http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
			}))
			t.Cleanup(cdn.Close)
			reg.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
				if r.Method != http.MethodGet || testreg.Kind(r.URL.Path) != "blobs" {
					return false
				}
				http.Redirect(w, r, cdn.URL+"/cdn/"+d, http.StatusTemporaryRedirect)
				return true
			})

			cdnHost := strings.TrimPrefix(cdn.URL, "http://")
			target, edit := reg.URL, func(r *Rule) { r.AllowedHosts = []string{cdnHost} }
			if tt.token {
				ts := ctTokenServer(t, reg, "alice", "s3cret")
				target = ts.URL
				edit = func(r *Rule) {
					r.Username = "alice"
					r.PasswordFile = ctWriteFile(t, "pw", "s3cret\n")
					r.AllowedHosts = []string{cdnHost}
				}
			}
			u := ctUpstream(t, target, edit)

			for _, off := range []int64{0, 1000} {
				rc, _, err := u.GetBlobRange(context.Background(), "team/app", d, off, -1)
				if err != nil {
					t.Fatalf("GetBlobRange(off=%d): %v", off, err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, data[off:]) {
					t.Fatalf("off=%d: got %d bytes, want %d", off, len(got), len(data)-int(off))
				}
			}
			mu.Lock()
			defer mu.Unlock()
			want := []string{"GET /cdn/" + d + " auth=", "GET /cdn/" + d + " auth="}
			if !slices.Equal(cdnRequests, want) {
				t.Errorf("CDN saw %q, want %q", cdnRequests, want)
			}
		})
	}
}
