package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"berth/test/testreg"
)

// pullCount is what a known sequence of pulls sent through Berth.
type pullCount struct {
	hits, misses              int
	storeBytes, upstreamBytes int64
}

// pullImage GETs an image's manifest and blobs by digest through Berth,
// reading every body, and counts them as hits or misses.
func pullImage(t *testing.T, b *Berth, repo string, img v1.Image, hit bool, c *pullCount) {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	mt, _ := img.MediaType()
	paths := []string{"/v2/hub/" + repo + "/manifests/" + d.String()}
	for _, bd := range blobDigests(t, img) {
		paths = append(paths, "/v2/hub/"+repo+"/blobs/"+bd)
	}
	for _, p := range paths {
		resp, err := b.Do(context.Background(), http.MethodGet, p, http.Header{"Accept": {string(mt)}})
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", p, resp.StatusCode)
		}
		if hit {
			c.hits, c.storeBytes = c.hits+1, c.storeBytes+n
		} else {
			c.misses, c.upstreamBytes = c.misses+1, c.upstreamBytes+n
		}
	}
	// A fill's client has the last byte before the blob is committed: the
	// next pull is all hits once every fill of this one logged its end.
	for _, bd := range blobDigests(t, img) {
		if !hit {
			b.WaitLog("the fill of "+bd, time.Minute, func(log string) bool { return loggedFilled(log, bd) })
		}
	}
}

// loggedFilled reports whether the log has the line of a fill of digest
// d that committed.
func loggedFilled(log, d string) bool {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "blob filled") && strings.Contains(l, d) {
			return true
		}
	}
	return false
}

// imageSize is what describe-images reports: config and layers.
func imageSize(t *testing.T, img v1.Image) int64 {
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	n := m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n
}

// gate makes the upstream send the first half of one blob and hold the
// rest until release is closed; every answer says RateLimit-Remaining 77.
func gate(up *testreg.Registry, digest string, blob []byte, release <-chan struct{}) {
	up.Mutate(func(w http.ResponseWriter, req *http.Request) bool {
		w.Header().Set("RateLimit-Remaining", "77;w=21600")
		if req.Method != http.MethodGet || !strings.HasSuffix(req.URL.Path, "/blobs/"+digest) {
			return false
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(blob)))
		w.Header().Set("Docker-Content-Digest", digest)
		w.WriteHeader(http.StatusOK)
		half := len(blob) / 2
		w.Write(blob[:half])
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-req.Context().Done():
			return true
		}
		w.Write(blob[half:])
		return true
	})
}

// TestStatusPageShowsPullsAndFills: after a known sequence of pulls the
// page shows the hit ratio, bytes by source and images they make; a fill
// held half way by the upstream appears with its progress and completes
// once the upstream sends the rest.
func TestStatusPageShowsPullsAndFills(t *testing.T) {
	t.Parallel()
	up := testreg.Start(t)
	imgA := realImage(t, pushSeed(), 2, runtime.GOARCH, false)
	imgB := realImage(t, pushSeed(), 1, runtime.GOARCH, false)
	up.Push(t, "library/a", "v1", imgA)
	up.Push(t, "library/b", "v1", imgB)
	big, err := random.Image(2<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	up.Push(t, "library/c", "v1", big)
	layers, _ := big.Layers()
	bigDigest, _ := layers[0].Digest()
	rc, _ := layers[0].Compressed()
	bigBlob, _ := io.ReadAll(rc)
	release := make(chan struct{})
	gate(up, bigDigest.String(), bigBlob, release)
	b := StartBerth(t, "", "upstreams:\n"+upstreamConfig("hub", "hub", "docker.io", up.URL, true, ""))

	var c pullCount
	pullImage(t, b, "library/a", imgA, false, &c)
	pullImage(t, b, "library/a", imgA, true, &c)
	pullImage(t, b, "library/b", imgB, false, &c)
	ratio := float64(c.hits) / float64(c.hits+c.misses)

	ctx := tab(t, startBrowser(t), "", "")
	open(t, ctx, b.AdminURL+"/ui/")
	waitFor(t, ctx, fmt.Sprintf("the hit ratio %.4f", ratio),
		fmt.Sprintf(`Math.abs(Number(document.getElementById("hit-ratio").dataset.value) - %v) < 1e-9`, ratio))
	got := eval[struct{ Store, Upstream, Peer float64 }](t, ctx, `({Store: Number(document.getElementById("bytes-store").dataset.value),
		Upstream: Number(document.getElementById("bytes-upstream").dataset.value),
		Peer: Number(document.getElementById("bytes-peer").dataset.value)})`)
	if got.Store != float64(c.storeBytes) || got.Upstream != float64(c.upstreamBytes) || got.Peer != 0 {
		t.Errorf("page bytes store %v, upstream %v, peer %v; the pulls were store %d, upstream %d, peer 0",
			got.Store, got.Upstream, got.Peer, c.storeBytes, c.upstreamBytes)
	}
	sc := scrape(t, b)
	if m := metric(t, sc, `berth_bytes_served_total{source="store"}`); m != got.Store {
		t.Errorf("/metrics says %v bytes from the store, the page %v", m, got.Store)
	}
	for repo, img := range map[string]v1.Image{"hub/library/a": imgA, "hub/library/b": imgB} {
		d, _ := img.Digest()
		waitFor(t, ctx, "image "+repo+"@"+d.String(), fmt.Sprintf(
			`!!document.querySelector('#images tr[data-repository=%s][data-digest=%s][data-size="%d"]')`,
			jsString(repo), jsString(d.String()), imageSize(t, img)))
	}
	// The filter keeps the images whose repository, tag or digest match.
	eval[bool](t, ctx, `(s => { s.value = "library/b"; s.dispatchEvent(new Event("input")); return true })(document.getElementById("search"))`)
	waitFor(t, ctx, "hub/library/b alone after filtering", `(rows => rows.length === 1 && rows[0].dataset.repository === "hub/library/b")(document.querySelectorAll("#images tbody tr"))`)
	eval[bool](t, ctx, `(s => { s.value = ""; s.dispatchEvent(new Event("input")); return true })(document.getElementById("search"))`)
	waitFor(t, ctx, "RateLimit-Remaining 77 for hub", `(document.querySelector('#upstreams tr[data-upstream="hub"] .ratelimit') || {}).textContent === "77"`)
	var cfg struct{ Hash string }
	resp, err := http.Get(b.AdminURL + "/config")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&cfg)
	resp.Body.Close()
	waitFor(t, ctx, "the config's hash", fmt.Sprintf(`document.getElementById("config").dataset.hash === %s && document.getElementById("config").textContent.includes("loaded")`, jsString(cfg.Hash)))
	screenshot(t, ctx, "ui-status.png")

	// A fill the upstream holds half way.
	done := make(chan error, 1)
	go func() {
		resp, err := b.Do(context.Background(), http.MethodGet, "/v2/hub/library/c/blobs/"+bigDigest.String(), nil)
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err == nil && !bytes.Equal(body, bigBlob) {
			err = fmt.Errorf("the blob came back with %d bytes, not the %d sent", len(body), len(bigBlob))
		}
		done <- err
	}()
	row := fmt.Sprintf(`document.querySelector('#fills tr[data-digest=%s]')`, jsString(bigDigest.String()))
	waitFor(t, ctx, "the fill running half way", fmt.Sprintf(`(r => r && r.dataset.state === "running" && Number(r.dataset.written) > 0 &&
		Number(r.dataset.written) < %d && r.dataset.size === "%d")(%s)`, len(bigBlob), len(bigBlob), row))
	screenshot(t, ctx, "ui-fill.png")
	close(release)
	waitFor(t, ctx, "the fill done", fmt.Sprintf(`(r => r && r.dataset.state === "done" && r.dataset.written === "%d")(%s)`, len(bigBlob), row))
	if err := <-done; err != nil {
		t.Fatalf("the client of the held fill: %v", err)
	}
	waitFor(t, ctx, "no fill in flight", `document.getElementById("fills-count").dataset.value === "0"`)
}

// TestStatusPageAdminOnlyAndAudited: with auth on, the page refuses an
// anonymous browser and a user outside the admin group; an admin's
// actions on the page (pin an image, preview a lifecycle policy, delete
// an image, start garbage collection) go through
// the admin API and show in the audit log, on the page and on disk.
func TestStatusPageAdminOnlyAndAudited(t *testing.T) {
	t.Parallel()
	up := testreg.Start(t)
	img := realImage(t, pushSeed(), 1, runtime.GOARCH, false)
	want := up.Push(t, "library/alpine", "3.20", img).String()
	users := map[string]string{"root": "root-secret-pw", "bob": "bob-secret-pw"}
	b := StartBerth(t, "", "upstreams:\n"+upstreamConfig("hub", "hub", "docker.io", up.URL, true, "")+
		fmt.Sprintf("auth:\n  enabled: true\n  htpasswd: %q\n  groups: {admins: [root]}\n", auHtpasswd(t, users)))
	bob := crane.WithAuth(&authn.Basic{Username: "bob", Password: users["bob"]})
	old := up.Push(t, "library/alpine", "3.19", realImage(t, pushSeed(), 1, runtime.GOARCH, false)).String()
	for _, tag := range []string{"3.19", "3.20"} {
		if _, err := crane.Manifest(b.Addr+"/hub/library/alpine:"+tag, bob); err != nil {
			t.Fatalf("bob pulls the manifest of %s: %v", tag, err)
		}
	}

	browser := startBrowser(t)
	// Without credentials Berth answers 401 with a Basic challenge, which
	// a headless browser, having no one to ask, ends as a failed load.
	anon := tab(t, browser, "", "")
	if resp, err := chromedp.RunResponse(anon, chromedp.Navigate(b.AdminURL+"/ui/")); err == nil && resp.Status != http.StatusUnauthorized {
		t.Errorf("an anonymous browser loaded the page: %d", resp.Status)
	} else if err != nil && !strings.Contains(err.Error(), "AUTH") {
		t.Errorf("an anonymous browser: %v, want a refused login", err)
	}
	bobTab := tab(t, browser, "bob", users["bob"])
	open(t, bobTab, b.AdminURL+"/ui/")
	waitFor(t, bobTab, "the refusal of bob", `document.body.innerText.includes("not in the admin group") && !document.getElementById("summary")`)
	for _, path := range []string{"/ui/api/status", "/ui/app.js"} {
		req, _ := http.NewRequest(http.MethodGet, b.AdminURL+path, nil)
		req.SetBasicAuth("bob", users["bob"])
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("bob GET %s: %v %v, want 403", path, resp.StatusCode, err)
		} else {
			resp.Body.Close()
		}
	}

	root := tab(t, browser, "root", users["root"])
	open(t, root, b.AdminURL+"/ui/")
	imageRow := fmt.Sprintf(`#images tr[data-repository="hub/library/alpine"][data-digest=%s]`, jsString(want))
	waitFor(t, root, "the cached image", fmt.Sprintf(`!!document.querySelector('%s')`, imageRow))
	click(t, root, imageRow+" button.pin")
	waitFor(t, root, "the image pinned", fmt.Sprintf(`(r => r && r.textContent.includes("pinned") && r.querySelector("button.pin").textContent === "Unpin")(document.querySelector('%s'))`, imageRow))
	// A lifecycle policy's preview lists what it would expire (one of the
	// two images), and expires nothing.
	policy := `{"rules":[{"rulePriority":1,"description":"keep one","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}`
	adminCall(t, b, "root", users["root"], "put-lifecycle-policy", fmt.Sprintf(`{"repositoryName":"hub/*","lifecyclePolicyText":%q}`, policy))
	waitFor(t, root, "the policy listed", `!!document.querySelector('#policies tr[data-scope="hub/*"]')`)
	click(t, root, `#policies tr[data-scope="hub/*"] button.preview`)
	waitFor(t, root, "the preview complete", `document.getElementById("preview-title").textContent.includes("COMPLETE — 1 images would expire") &&
		document.querySelectorAll("#preview-rows tr").length === 1`)
	// Delete asks for a second click, then deletes through batch-delete-image.
	oldRow := fmt.Sprintf(`#images tr[data-repository="hub/library/alpine"][data-digest=%s]`, jsString(old))
	click(t, root, oldRow+" button.delete")
	click(t, root, oldRow+" button.delete.confirm")
	waitFor(t, root, "the image deleted", fmt.Sprintf(`document.getElementById("action-result").textContent.startsWith("batch-delete-image: 1 deleted") &&
		!document.querySelector('%s')`, oldRow))
	click(t, root, "#start-gc")
	waitFor(t, root, "garbage collection done", `document.getElementById("action-result").textContent.startsWith("start-gc: done")`)
	for _, action := range []string{"PinImage", "StartLifecyclePolicyPreview", "BatchDeleteImage", "StartGc"} {
		waitFor(t, root, action+" by root in the audit table", fmt.Sprintf(
			`[...document.querySelectorAll('#audit tr[data-action=%s]')].some(r => r.children[1].textContent === "root")`, jsString(action)))
	}
	log, err := os.ReadFile(filepath.Join(b.DataDir, "audit", "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, action := range []string{`"action":"PinImage"`, `"action":"BatchDeleteImage"`, `"action":"StartGc"`} {
		if !bytes.Contains(log, []byte(action)) || !bytes.Contains(log, []byte(`"principal":"root"`)) {
			t.Errorf("audit.log has no %s by root:\n%s", action, log)
		}
	}
}

// adminCall sends one admin API request as user and fails the test unless
// it succeeds.
func adminCall(t *testing.T, b *Berth, user, pass, verb, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.AdminURL+"/admin/v1/"+verb, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(user, pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s: %d %s", verb, resp.StatusCode, msg)
	}
}

// TestStatusPageClusterMembers: a node's page lists the cluster's members
// with the stored and owned bytes /cluster/members gives, once what was
// pulled through another node reached it by gossip, and when the owned
// bytes were computed.
func TestStatusPageClusterMembers(t *testing.T) {
	t.Parallel()
	up := testreg.Start(t)
	img := realImage(t, pushSeed(), 2, runtime.GOARCH, false)
	up.Push(t, "library/a", "v1", img)
	nodes := startCluster(t, 2, up.URL, "")
	var c pullCount
	pullImage(t, nodes[0].Berth, "library/a", img, false, &c)

	ctx := tab(t, startBrowser(t), "", "")
	open(t, ctx, nodes[1].AdminURL+"/ui/")
	waitFor(t, ctx, "two members alive, node0 with stored bytes", `(rows => rows.length === 2 && [...rows].every(r => r.dataset.state === "alive") &&
		Number(document.querySelector('#members tr[data-member="node0"]').dataset.stored) > 0)(document.querySelectorAll("#members tbody tr"))`)
	// Owned bytes are computed in the background: once node1's figures
	// cover what it holds, the page shows them and when they were computed.
	members, _ := ownedSettled(t, nodes[1])
	waitFor(t, ctx, "the owned bytes' date", fmt.Sprintf(`document.querySelector("#owned-asof").dataset.asof === %s && document.querySelector("#owned-asof").textContent.includes("computed")`, jsString(members.OwnedBytesAsOf)))
	for _, m := range members.Members {
		got := eval[[]string](t, ctx, fmt.Sprintf(`(r => [r.dataset.stored, r.dataset.owned])(document.querySelector('#members tr[data-member=%s]'))`, jsString(m.Name)))
		if got[0] != fmt.Sprint(m.StoredBytes) || got[1] != fmt.Sprint(m.OwnedBytes) {
			t.Errorf("member %s on the page: stored %s, owned %s; /cluster/members: %d, %d", m.Name, got[0], got[1], m.StoredBytes, m.OwnedBytes)
		}
	}
}
