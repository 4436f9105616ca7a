package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// newClient is a keep-alive HTTP/1.1 client without compression, like a
// container runtime's.
func newClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		DisableCompression:    true,
		MaxIdleConns:          4 * conns,
		MaxIdleConnsPerHost:   conns,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
	}}
}

func closeIdle(c *http.Client) { c.CloseIdleConnections() }

const acceptManifests = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, " +
	"application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"

// fetchResult is one blob download as the client saw it.
type fetchResult struct {
	Bytes int64
	TTFB  time.Duration // request sent to first body byte
	Total time.Duration // request sent to last body byte
	// Tail is the wait between holding all but the last byte and the last
	// byte (Berth releases the last byte of a fill after verification).
	Tail   time.Duration
	Digest string // sha256 of the body, when asked for
}

// MBps is the throughput in 10^6 bytes per second.
func (r fetchResult) MBps() float64 { return float64(r.Bytes) / r.Total.Seconds() / 1e6 }

// fetch GETs url and reads the body into buf (never holding more), checking
// the status, the size and (with verify) the sha256.
func fetch(ctx context.Context, c *http.Client, url string, want int64, buf []byte, verify bool) (fetchResult, error) {
	var res fetchResult
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return res, err
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return res, fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	var h hash.Hash
	if verify {
		h = sha256.New()
	}
	var almost time.Time
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			now := time.Now()
			if res.Bytes == 0 {
				res.TTFB = now.Sub(start)
			}
			res.Bytes += int64(n)
			if h != nil {
				h.Write(buf[:n])
			}
			if almost.IsZero() && res.Bytes >= want-1 {
				almost = now
			}
			if res.Bytes >= want {
				res.Total = now.Sub(start)
				res.Tail = now.Sub(almost)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return res, fmt.Errorf("GET %s: after %d bytes: %w", url, res.Bytes, rerr)
		}
	}
	if res.Bytes != want {
		return res, fmt.Errorf("GET %s: %d bytes, want %d", url, res.Bytes, want)
	}
	if h != nil {
		res.Digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	}
	return res, nil
}

// fetchParallel starts every url at once (one connection each) and returns
// the per-request results and the wall time from start to the last byte.
func fetchParallel(ctx context.Context, c *http.Client, urls []string, sizes []int64, bufSize int) ([]fetchResult, time.Duration, error) {
	res := make([]fetchResult, len(urls))
	errs := make([]error, len(urls))
	var ready, wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range urls {
		ready.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, bufSize)
			ready.Done()
			<-gate
			res[i], errs[i] = fetch(ctx, c, urls[i], sizes[i], buf, false)
		}()
	}
	ready.Wait()
	start := time.Now()
	close(gate)
	wg.Wait()
	wall := time.Since(start)
	return res, wall, errors.Join(errs...)
}

// loadResult is what a fixed-duration load run measured.
type loadResult struct {
	Requests int
	Errors   int
	Elapsed  time.Duration
	Lat      []time.Duration // sorted
}

func (l loadResult) RPS() float64 { return float64(l.Requests) / l.Elapsed.Seconds() }

func (l loadResult) Pct(p float64) time.Duration {
	if len(l.Lat) == 0 {
		return 0
	}
	i := int(p * float64(len(l.Lat)-1))
	return l.Lat[i]
}

// load runs conns goroutines, each doing method url in a keep-alive loop,
// until dur passes or maxReq requests were made.
func load(ctx context.Context, c *http.Client, conns int, dur time.Duration, maxReq int64, method, url string, hdr http.Header) loadResult {
	ctx, cancel := context.WithTimeout(ctx, dur+10*time.Second)
	defer cancel()
	var count, errCount atomic.Int64
	lats := make([][]time.Duration, conns)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(dur)
	for g := 0; g < conns; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1<<14)
			buf := make([]byte, 32<<10)
			for time.Now().Before(deadline) && count.Add(1) <= maxReq && ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, method, url, nil)
				req.Header = hdr
				t0 := time.Now()
				resp, err := c.Do(req)
				if err != nil {
					errCount.Add(1)
					continue
				}
				for {
					if _, err := resp.Body.Read(buf); err != nil {
						break
					}
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errCount.Add(1)
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			lats[g] = lat
		}()
	}
	wg.Wait()
	res := loadResult{Elapsed: time.Since(start), Errors: int(errCount.Load())}
	for _, l := range lats {
		res.Lat = append(res.Lat, l...)
	}
	res.Requests = len(res.Lat)
	sort.Slice(res.Lat, func(i, j int) bool { return res.Lat[i] < res.Lat[j] })
	return res
}

// pullResult is one whole-image pull.
type pullResult struct {
	Bytes int64
	Wall  time.Duration
}

// pullImage pulls repo:tag from base like a container runtime: the manifest
// by tag, then the config and the layers with par fetches in parallel. With
// verify, the manifest and every blob are checked against their digests.
func pullImage(ctx context.Context, c *http.Client, base, repo, tag string, par int, verify bool) (pullResult, error) {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/"+repo+"/manifests/"+tag, nil)
	if err != nil {
		return pullResult{}, err
	}
	req.Header.Set("Accept", acceptManifests)
	resp, err := c.Do(req)
	if err != nil {
		return pullResult{}, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	resp.Body.Close()
	if err != nil {
		return pullResult{}, err
	}
	if resp.StatusCode != 200 {
		return pullResult{}, fmt.Errorf("manifest %s:%s: %d %s", repo, tag, resp.StatusCode, body)
	}
	if verify {
		sum := sha256.Sum256(body)
		if d, want := "sha256:"+hex.EncodeToString(sum[:]), resp.Header.Get("Docker-Content-Digest"); d != want {
			return pullResult{}, fmt.Errorf("manifest %s:%s from %s: body is %s, header says %q", repo, tag, base, d, want)
		}
	}
	var m imageManifest
	if err := json.Unmarshal(body, &m); err != nil {
		return pullResult{}, err
	}
	descs := append([]descriptor{m.Config}, m.Layers...)
	total := int64(len(body))
	var next atomic.Int64
	var bytes atomic.Int64
	errs := make([]error, par)
	var wg sync.WaitGroup
	for w := 0; w < par; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 256<<10)
			for i := next.Add(1) - 1; i < int64(len(descs)); i = next.Add(1) - 1 {
				d := descs[i]
				r, err := fetch(ctx, c, base+"/v2/"+repo+"/blobs/"+d.Digest, d.Size, buf, verify)
				if err == nil && verify && r.Digest != d.Digest {
					err = fmt.Errorf("blob %s from %s: the body is %s", d.Digest, base, r.Digest)
				}
				if err != nil {
					errs[w] = err
					return
				}
				bytes.Add(r.Bytes)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return pullResult{}, err
	}
	return pullResult{Bytes: total + bytes.Load(), Wall: time.Since(start)}, nil
}
