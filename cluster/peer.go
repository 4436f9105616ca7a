package cluster

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Peer-API authentication headers. A signed request carries
//
//	X-Berth-Peer: <sender node name>
//	X-Berth-Peer-Time: <unix seconds>
//	Authorization: Berth-Peer <hex HMAC-SHA256(peerKey, method "\n" requestURI "\n" node "\n" time)>
//
// where peerKey is derived from Config.Secret.
const (
	HeaderPeer     = "X-Berth-Peer"
	HeaderPeerTime = "X-Berth-Peer-Time"
	authScheme     = "Berth-Peer"
	// MaxClockSkew is how far a signed request's time may be from the
	// receiver's clock, either way.
	MaxClockSkew = 5 * time.Minute
)

var (
	errUnsigned     = errors.New("peer authentication required")
	errMalformed    = errors.New("malformed peer authentication")
	errBadSignature = errors.New("invalid peer signature")
	errClockSkew    = errors.New("peer request time outside the allowed clock skew")
)

func sign(key []byte, method, requestURI, node, ts string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(method + "\n" + requestURI + "\n" + node + "\n" + ts))
	return m.Sum(nil)
}

// SignRequest signs req as node at now with the cluster secret (Config.Secret),
// as the PeerClient signs every request: RequirePeer on a node with the same
// secret lets it through. Tests use it to send signed requests by hand.
func SignRequest(req *http.Request, secret []byte, node string, now time.Time) {
	signWith(req, deriveKey(secret, peerKeyLabel), node, now)
}

// signWith sets the peer headers on req, signed with the derived peer key.
func signWith(req *http.Request, key []byte, node string, now time.Time) {
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	req.Header.Set(HeaderPeer, node)
	req.Header.Set(HeaderPeerTime, ts)
	// RequestURI is what the transport writes on the request line.
	req.Header.Set("Authorization", authScheme+" "+hex.EncodeToString(sign(key, method, req.URL.RequestURI(), node, ts)))
}

// signer is the PeerClient's RoundTripper.
type signer struct {
	name string
	key  []byte
	now  func() time.Time
	base http.RoundTripper
}

func (s *signer) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context()) // a RoundTripper must not modify req
	signWith(r, s.key, s.name, s.now())
	return s.base.RoundTrip(r)
}

// peerConnsPerHost bounds the connections a node opens to one peer.
const peerConnsPerHost = 256

func newPeerClient(c *Cluster) (*http.Transport, *http.Client) {
	t := &http.Transport{
		Proxy:                 nil, // peers are on the site network
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   16,
		// Within a peer's maxConnectionsPerAddress (512 by default), so a
		// storm of fills never has a node refused by its peer; requests
		// past it wait for a connection.
		MaxConnsPerHost:    peerConnsPerHost,
		DisableCompression: true, // blobs are passed through byte for byte
		TLSClientConfig:    c.set.peerTLS,
	}
	client := &http.Client{
		Transport: &signer{name: c.set.name, key: c.set.peerKey, now: c.opts.now, base: t},
		// Redirects are returned, not followed: a signature must not be
		// sent on to another host.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return t, client
}

// PeerURL is the base URL of a member's peer API: https when the cluster
// uses mutual TLS between peers.
func (c *Cluster) PeerURL(m Member) string {
	if c.set.peerTLS != nil {
		return "https://" + m.PeerAddr
	}
	return "http://" + m.PeerAddr
}

// PeerClient returns the shared client for calling other nodes' peer API.
// It signs every request, never uses a proxy, does not follow redirects,
// does not ask for compression, and has dial (5 s) and response-header
// (30 s) timeouts but no overall timeout: bound calls with the request
// context. It stays usable after Shutdown.
func (c *Cluster) PeerClient() *http.Client { return c.client }

type peerKey struct{}

// FromPeer returns the sending node's name if ctx belongs to a request
// that RequirePeer authenticated.
func FromPeer(ctx context.Context) (node string, ok bool) {
	node, ok = ctx.Value(peerKey{}).(string)
	return node, ok
}

// RequirePeer lets through only requests signed by a node holding the
// cluster secret, with a time within MaxClockSkew; the handler can get the
// sender with FromPeer. Others get 401 with a registry-style JSON error.
// The body is not signed and a signature can be replayed within the skew
// window, so the peer API should be read-only (GET/HEAD) and idempotent.
func (c *Cluster) RequirePeer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Every answer, a refusal too, tells the caller this node's time.
		w.Header().Set(HeaderTime, c.opts.now().UTC().Format(time.RFC3339Nano))
		node, err := c.verify(r)
		if err != nil {
			c.log.Debug("peer request rejected", zap.Error(err), zap.String("remote", r.RemoteAddr),
				zap.String("method", r.Method), zap.String("uri", r.RequestURI), zap.String("claimedPeer", r.Header.Get(HeaderPeer)))
			w.Header().Set("WWW-Authenticate", authScheme+` realm="berth-peer"`)
			writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", err.Error())
			return
		}
		if r.URL.Path == clockPath {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), peerKey{}, node)))
	})
}

func (c *Cluster) verify(r *http.Request) (string, error) {
	node, ts, auth := r.Header.Get(HeaderPeer), r.Header.Get(HeaderPeerTime), r.Header.Get("Authorization")
	if node == "" && ts == "" && auth == "" {
		return "", errUnsigned
	}
	sigHex, ok := strings.CutPrefix(auth, authScheme+" ")
	if !ok || node == "" || ts == "" {
		return "", errMalformed
	}
	got, err := hex.DecodeString(sigHex)
	if err != nil {
		return "", fmt.Errorf("%w: signature not hex", errMalformed)
	}
	uri := r.RequestURI
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	if !hmac.Equal(got, sign(c.set.peerKey, r.Method, uri, node, ts)) {
		return "", errBadSignature
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "", fmt.Errorf("%w: bad time", errMalformed)
	}
	if skew := c.opts.now().Sub(time.Unix(sec, 0)).Abs(); skew > MaxClockSkew {
		return "", fmt.Errorf("%w (%s)", errClockSkew, skew.Round(time.Second))
	}
	return node, nil
}

type errorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	body, _ := json.Marshal(struct {
		Errors []errorEntry `json:"errors"`
	}{[]errorEntry{{Code: code, Message: msg}}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

type memberJSON struct {
	Name        string `json:"name"`
	GossipAddr  string `json:"gossipAddr"`
	PeerAddr    string `json:"peerAddr"`
	Version     string `json:"version"`
	State       string `json:"state"`
	StoredBytes int64  `json:"storedBytes"`
	Blobs       int64  `json:"blobs"`
	// OwnedBytes: of the blobs the answering node holds, the bytes this
	// member owns.
	OwnedBytes int64 `json:"ownedBytes"`
}

type membersJSON struct {
	Self string `json:"self"`
	// OwnedBytesAsOf is when the members' ownedBytes were computed
	// (RFC 3339, UTC); absent before the first computation, when every
	// ownedBytes is 0.
	OwnedBytesAsOf string       `json:"ownedBytesAsOf,omitempty"`
	Members        []memberJSON `json:"members"`
}

// Owned is, per member name, the bytes of the blobs this node holds that
// the member owns, as computed at AsOf. The zero value is "not computed
// yet". Bytes is never changed once an Owned is handed out.
type Owned struct {
	Bytes map[string]int64
	AsOf  time.Time
}

// MembersHandler serves GET and HEAD with this node's view:
// {"self": name, "ownedBytesAsOf": time, "members": [{"name",
// "gossipAddr", "peerAddr", "version", "state", "storedBytes", "blobs",
// "ownedBytes"}]}, sorted by name. It does not authenticate: wrap it in
// RequirePeer or an admin guard as needed.
//
// owned, when not nil, gives the latest per-member owned bytes. It is
// called on every request, so it must return figures computed before
// (the node computes them in the background), never walk the store.
func (c *Cluster) MembersHandler(owned func() Owned) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "method not allowed")
			return
		}
		out := membersJSON{Self: c.set.name, Members: []memberJSON{}}
		var o Owned
		if owned != nil {
			o = owned()
		}
		if !o.AsOf.IsZero() {
			out.OwnedBytesAsOf = o.AsOf.UTC().Format(time.RFC3339)
		}
		for _, m := range c.Members() {
			out.Members = append(out.Members, memberJSON{
				Name: m.Name, GossipAddr: m.GossipAddr, PeerAddr: m.PeerAddr, Version: m.Version,
				State: m.State, StoredBytes: m.Stats.StoredBytes, Blobs: m.Stats.Blobs, OwnedBytes: o.Bytes[m.Name],
			})
		}
		writeJSON(w, r, out)
	})
}

// writeJSON answers with v as uncached JSON (headers only to a HEAD).
func writeJSON(w http.ResponseWriter, r *http.Request, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "UNKNOWN", "encoding the answer")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}
