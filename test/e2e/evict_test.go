package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"berth/test/testreg"

	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestEvictionLRU fills a store capped at 200 MiB with pushed and cached
// images past its watermark: cached images go least recently pulled first,
// pushed ones stay, pulls running meanwhile complete, and every remaining
// image is whole.
func TestEvictionLRU(t *testing.T) {
	const mib = 1 << 20
	up := testreg.Start(t)
	cached := make([]v1.Hash, 5)
	for i := range cached {
		cached[i] = up.Push(t, fmt.Sprintf("team/img%d", i), "v1", testreg.Image(t, uint64(100+i), 30*mib))
	}
	b := StartBerth(t, "", "cache:\n  maxBytes: 209715200\n  highWatermark: 0.9\n  lowWatermark: 0.8\n  evictInterval: 200ms\n"+
		"upstreams:\n"+upstreamConfig("hub", "hub", "docker.io", up.URL, true, ""))
	pushed := make([]v1.Hash, 2)
	for i := range pushed {
		img := testreg.Image(t, uint64(200+i), 30*mib)
		if err := crane.Push(img, fmt.Sprintf("%s/private/app%d:v1", b.Addr, i)); err != nil {
			t.Fatal(err)
		}
		pushed[i], _ = img.Digest()
	}
	pull := func(i int) {
		t.Helper()
		d, err := testreg.PullAll(fmt.Sprintf("%s/team/img%d:v1", b.Addr, i))
		if err != nil || d != cached[i] {
			t.Fatalf("pull img%d: %v %v", i, d, err)
		}
	}
	for i := range 4 {
		pull(i) // 60 MiB pushed + 120 MiB cached = the 180 MiB high watermark
	}
	pull(0) // img0 is now the most recently pulled

	// Pulls of cached images running while img4's fill forces eviction.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for _, i := range []int{0, 3, 0, 3} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := testreg.PullAll(fmt.Sprintf("%s/team/img%d:v1", b.Addr, i))
			if err == nil && d != cached[i] {
				err = fmt.Errorf("img%d digest %s", i, d)
			}
			errs <- err
		}()
	}
	pull(4)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("pull during eviction: %v", err)
		}
	}
	// The two least recently pulled (img1, img2) were evicted.
	up.Reset()
	for _, i := range []int{0, 3, 4} {
		pull(i)
	}
	if n := up.Count("GET blobs"); n != 0 {
		t.Fatalf("recently pulled images were evicted: %d upstream blob GETs: %v\n%s", n, up.Requests(), lastLines(b.Log(), 30))
	}
	for i, d := range pushed {
		got, err := testreg.PullAll(fmt.Sprintf("%s/private/app%d:v1", b.Addr, i))
		if err != nil || got != d {
			t.Fatalf("pushed image %d after eviction: %v %v", i, got, err)
		}
	}
	if up.Count("total") != 0 {
		t.Fatalf("pushed images touched the upstream")
	}
	before := up.Count("GET blobs")
	pull(1) // evicted: filled again
	if up.Count("GET blobs") == before {
		t.Fatal("img1 was not evicted")
	}
	s := scrape(t, b)
	if metric(t, s, "berth_store_bytes") > 200*mib {
		t.Fatalf("store over its cap: %v", metric(t, s, "berth_store_bytes"))
	}
	if metric(t, s, "berth_evictions_total") == 0 {
		t.Fatal("no evictions counted")
	}
}

// TestStoreFullAnswers507: when only pushed content fills the store, a
// cold fill is refused with a clear 507 instead of filling the disk.
func TestStoreFullAnswers507(t *testing.T) {
	const mib = 1 << 20
	up := testreg.Start(t)
	img := testreg.Image(t, 300, 5*mib)
	up.Push(t, "team/small", "v1", img)
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	b := StartBerth(t, "", "cache:\n  maxBytes: 20971520\n"+"upstreams:\n"+upstreamConfig("hub", "hub", "docker.io", up.URL, true, ""))
	if err := crane.Push(testreg.Image(t, 301, 18*mib), b.Addr+"/private/big:v1"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := b.Do(ctx, http.MethodGet, "/v2/team/small/blobs/"+ld.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var eb struct {
		Errors []struct{ Code, Message string }
	}
	json.Unmarshal(body, &eb)
	if resp.StatusCode != http.StatusInsufficientStorage || len(eb.Errors) != 1 || eb.Errors[0].Code != "INSUFFICIENT_STORAGE" {
		t.Fatalf("got %d %s, want 507 INSUFFICIENT_STORAGE", resp.StatusCode, body)
	}
	// The pushed image is untouched.
	if _, err := testreg.PullAll(b.Addr + "/private/big:v1"); err != nil {
		t.Fatal(err)
	}
}
