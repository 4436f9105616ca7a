package cluster

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

type errorsBody struct {
	Errors []errorEntry `json:"errors"`
}

func TestRequirePeer(t *testing.T) {
	a := start(t, testNode{name: "node-a", port: freePort(t)})
	b := start(t, testNode{name: "node-b", port: freePort(t)})
	stranger := start(t, testNode{name: "stranger", port: freePort(t), secret: secret(9)})

	srv := httptest.NewServer(b.RequirePeer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		node, ok := FromPeer(r.Context())
		fmt.Fprintf(w, "%s %v", node, ok)
	})))
	defer srv.Close()
	plain := &http.Transport{}
	defer plain.CloseIdleConnections()

	// clientAt signs as node-a with the cluster key at a shifted clock.
	clientAt := func(shift time.Duration) *http.Client {
		return &http.Client{Transport: &signer{name: "node-a", key: a.set.peerKey,
			now: func() time.Time { return time.Now().Add(shift) }, base: plain}}
	}
	// forged sends headers signed for (method, uri, node) with the cluster key.
	forged := func(method, uri, node string, edit func(http.Header)) *http.Client {
		return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			r = r.Clone(r.Context())
			ts := strconv.FormatInt(time.Now().Unix(), 10)
			r.Header.Set(HeaderPeer, node)
			r.Header.Set(HeaderPeerTime, ts)
			r.Header.Set("Authorization", "Berth-Peer "+hex.EncodeToString(sign(a.set.peerKey, method, uri, node, ts)))
			if edit != nil {
				edit(r.Header)
			}
			return plain.RoundTrip(r)
		})}
	}
	// signedBy signs with SignRequest as node-a with the cluster secret sec.
	signedBy := func(sec []byte) *http.Client {
		return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			r = r.Clone(r.Context())
			SignRequest(r, sec, "node-a", time.Now())
			return plain.RoundTrip(r)
		})}
	}
	const path = "/v2/library/alpine/blobs/sha256:abc?ns=docker.io"
	tests := []struct {
		name     string
		client   *http.Client
		method   string
		path     string
		wantCode int
		wantBody string
	}{
		{name: "peer", client: a.PeerClient(), path: path, wantCode: 200, wantBody: "node-a true"},
		{name: "peer HEAD", client: a.PeerClient(), method: http.MethodHead, path: path, wantCode: 200},
		{name: "escaped path", client: a.PeerClient(), path: "/v2/a%2Fb/blobs/x?q=%20y&z", wantCode: 200, wantBody: "node-a true"},
		{name: "self", client: b.PeerClient(), path: path, wantCode: 200, wantBody: "node-b true"},
		{name: "clock 4 minutes behind", client: clientAt(-4 * time.Minute), path: path, wantCode: 200, wantBody: "node-a true"},
		{name: "no headers", client: &http.Client{Transport: plain}, path: path, wantCode: 401},
		{name: "other secret", client: stranger.PeerClient(), path: path, wantCode: 401},
		{name: "old timestamp", client: clientAt(-6 * time.Minute), path: path, wantCode: 401},
		{name: "future timestamp", client: clientAt(6 * time.Minute), path: path, wantCode: 401},
		{name: "tampered path", client: forged("GET", "/v2/x/blobs/sha256:abc", "node-a", nil), path: "/v2/y/blobs/sha256:abc", wantCode: 401},
		{name: "tampered query", client: forged("GET", "/v2/x?a=1", "node-a", nil), path: "/v2/x?a=2", wantCode: 401},
		{name: "tampered method", client: forged("GET", path, "node-a", nil), method: http.MethodDelete, path: path, wantCode: 401},
		{name: "tampered node", client: forged("GET", path, "node-a", func(h http.Header) { h.Set(HeaderPeer, "node-b") }), path: path, wantCode: 401},
		{name: "tampered time", client: forged("GET", path, "node-a", func(h http.Header) { h.Set(HeaderPeerTime, "1") }), path: path, wantCode: 401},
		{name: "signature not hex", client: forged("GET", path, "node-a", func(h http.Header) { h.Set("Authorization", "Berth-Peer zz") }), path: path, wantCode: 401},
		{name: "other scheme", client: forged("GET", path, "node-a", func(h http.Header) { h.Set("Authorization", "Bearer x") }), path: path, wantCode: 401},
		{name: "no node", client: forged("GET", path, "node-a", func(h http.Header) { h.Del(HeaderPeer) }), path: path, wantCode: 401},
		{name: "SignRequest", client: signedBy(secret(1)), path: path, wantCode: 200, wantBody: "node-a true"},
		{name: "SignRequest, other secret", client: signedBy(secret(9)), path: path, wantCode: 401},
		{name: "forged with the key", client: forged("GET", path, "node-a", nil), path: path, wantCode: 200, wantBody: "node-a true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := tt.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tt.wantCode)
			}
			if tt.wantCode == http.StatusUnauthorized {
				var eb errorsBody
				if err := json.Unmarshal(body, &eb); err != nil || len(eb.Errors) != 1 || eb.Errors[0].Code != "UNAUTHORIZED" ||
					eb.Errors[0].Message == "" || resp.Header.Get("Content-Type") != "application/json" ||
					!strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Berth-Peer") {
					t.Fatalf("401 answer %q %v (%v)", body, resp.Header, err)
				}
				return
			}
			if string(body) != tt.wantBody {
				t.Errorf("body %q, want %q", body, tt.wantBody)
			}
		})
	}
	if _, ok := FromPeer(t.Context()); ok {
		t.Error("FromPeer on a plain context")
	}
}

func TestPeerClientRequest(t *testing.T) {
	c := start(t, testNode{name: "node-a", port: freePort(t)})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
			return
		}
		fmt.Fprint(w, r.Header.Get("Accept-Encoding"))
	}))
	defer srv.Close()
	tests := []struct {
		name     string
		path     string
		wantCode int
	}{
		{name: "redirect not followed", path: "/redirect", wantCode: http.StatusTemporaryRedirect},
		{name: "no compression asked", path: "/plain", wantCode: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+tt.path, nil)
			resp, err := c.PeerClient().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantCode || (tt.wantCode == 200 && len(body) != 0) {
				t.Errorf("status %d body %q", resp.StatusCode, body)
			}
		})
	}
	if req, _ := http.NewRequest(http.MethodGet, srv.URL, nil); true {
		resp, err := c.PeerClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if req.Header.Get(HeaderPeer) != "" {
			t.Error("PeerClient modified the caller's request")
		}
	}
	if c.PeerClient().Timeout != 0 {
		t.Error("PeerClient has a total timeout")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestMembersHandler(t *testing.T) {
	p1 := freePort(t)
	n1 := start(t, testNode{name: "node-1", port: p1, stats: statsPtr(10, 1)}, WithVersion("1.2.3"))
	n2 := start(t, testNode{name: "node-2", port: freePort(t), join: []string{addr(p1)}, stats: statsPtr(20, 2)}, WithVersion("1.2.3"))
	eventually(t, "formed", func() error { return converged([]*Cluster{n1, n2}, "node-1", "node-2") })
	eventually(t, "stats", func() error {
		if got := n1.Members()[1].Stats.Blobs; got != 2 {
			return fmt.Errorf("node-2 blobs %d", got)
		}
		return nil
	})

	asOf := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))
	computed := func() Owned { return Owned{Bytes: map[string]int64{"node-1": 7, "node-2": 3}, AsOf: asOf} }
	tests := []struct {
		name     string
		method   string
		owned    func() Owned
		wantCode int
		wantBody string
	}{
		{name: "GET", method: http.MethodGet, wantCode: 200, wantBody: fmt.Sprintf(
			`{"self":"node-1","members":[`+
				`{"name":"node-1","gossipAddr":"%s","peerAddr":"%s","version":"1.2.3","state":"alive","storedBytes":10,"blobs":1,"ownedBytes":0},`+
				`{"name":"node-2","gossipAddr":"%s","peerAddr":"%s","version":"1.2.3","state":"alive","storedBytes":20,"blobs":2,"ownedBytes":0}]}`,
			n1.Self().GossipAddr, n1.Self().PeerAddr, n2.Self().GossipAddr, n2.Self().PeerAddr)},
		{name: "GET, owned bytes not computed yet", method: http.MethodGet, owned: func() Owned { return Owned{} }, wantCode: 200, wantBody: fmt.Sprintf(
			`{"self":"node-1","members":[`+
				`{"name":"node-1","gossipAddr":"%s","peerAddr":"%s","version":"1.2.3","state":"alive","storedBytes":10,"blobs":1,"ownedBytes":0},`+
				`{"name":"node-2","gossipAddr":"%s","peerAddr":"%s","version":"1.2.3","state":"alive","storedBytes":20,"blobs":2,"ownedBytes":0}]}`,
			n1.Self().GossipAddr, n1.Self().PeerAddr, n2.Self().GossipAddr, n2.Self().PeerAddr)},
		{name: "GET, owned bytes computed", method: http.MethodGet, owned: computed, wantCode: 200, wantBody: fmt.Sprintf(
			`{"self":"node-1","ownedBytesAsOf":"2026-01-02T02:04:05Z","members":[`+
				`{"name":"node-1","gossipAddr":"%s","peerAddr":"%s","version":"1.2.3","state":"alive","storedBytes":10,"blobs":1,"ownedBytes":7},`+
				`{"name":"node-2","gossipAddr":"%s","peerAddr":"%s","version":"1.2.3","state":"alive","storedBytes":20,"blobs":2,"ownedBytes":3}]}`,
			n1.Self().GossipAddr, n1.Self().PeerAddr, n2.Self().GossipAddr, n2.Self().PeerAddr)},
		{name: "HEAD", method: http.MethodHead, wantCode: 200},
		{name: "POST", method: http.MethodPost, wantCode: 405, wantBody: `{"errors":[{"code":"UNSUPPORTED","message":"method not allowed"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			n1.MembersHandler(tt.owned).ServeHTTP(rec, httptest.NewRequest(tt.method, "/cluster/members", nil))
			if rec.Code != tt.wantCode || rec.Body.String() != tt.wantBody {
				t.Errorf("%d %s\nwant %d %s", rec.Code, rec.Body, tt.wantCode, tt.wantBody)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}
