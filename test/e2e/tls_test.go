package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"hash"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"

	"berth/test/testport"
	"berth/test/testreg"
)

// tlCA is a test certificate authority.
type tlCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func tlNewCA(t *testing.T) *tlCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Berth test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tlCA{cert: cert, key: key, pool: pool}
}

// tlIssue writes a server certificate for 127.0.0.1 signed by ca to
// certFile and keyFile (each replaced atomically).
func (ca *tlCA) tlIssue(t *testing.T, serial int64, notBefore time.Time, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    notBefore,
		NotAfter:     notBefore.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	tlWriteAtomic(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	tlWriteAtomic(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func tlWriteAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// tlTransport is an HTTP/1.1 transport trusting only pool.
func tlTransport(pool *x509.CertPool) *http.Transport {
	return &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		TLSNextProto:    map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
}

// tlServedSerial opens a new TLS connection to addr and returns the serial
// of the certificate the server presents (verified against pool).
func tlServedSerial(t *testing.T, addr string, pool *x509.CertPool) int64 {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatalf("tls.Dial %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// tlSIGHUP signals berth and waits until its log holds one more line
// containing msg than before.
func tlSIGHUP(t *testing.T, b *Berth, msg string) {
	t.Helper()
	before := strings.Count(b.Log(), msg)
	if err := b.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(b.Log(), msg) <= before {
		select {
		case <-b.done:
			t.Fatalf("berth exited after SIGHUP:\n%s", lastLines(b.Log(), 20))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log 10s after SIGHUP:\n%s", msg, lastLines(b.Log(), 20))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTLSAndCertificateRotation: Berth serves the registry over HTTPS too;
// SIGHUP loads a new certificate for new connections while a blob stream
// on an old connection completes; a broken certificate file on SIGHUP
// keeps the previous certificate.
func TestTLSAndCertificateRotation(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	up := testreg.Start(t)
	const bigSize = 24 << 20 // more than loopback socket buffers hold
	img := testreg.Image(t, pushSeed(), 4096, bigSize)
	want := up.Push(t, "library/big", "latest", img).String()
	var bigLayer string
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		if n, _ := l.Size(); n == bigSize {
			d, _ := l.Digest()
			bigLayer = d.String()
		}
	}
	if bigLayer == "" {
		t.Fatal("no big layer in the image")
	}

	ca := tlNewCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	ca.tlIssue(t, 1001, time.Now().Add(-time.Hour), certFile, keyFile)
	tlsAddr := fmt.Sprintf("127.0.0.1:%d", testport.Free(t))
	b := StartBerth(t, "", "upstreams:\n"+upstreamConfig("hub", "", "docker.io", up.URL, true, "")+
		fmt.Sprintf("tls:\n  listen: %q\n  certFile: %q\n  keyFile: %q\n", tlsAddr, certFile, keyFile))

	if got := tlServedSerial(t, tlsAddr, ca.pool); got != 1001 {
		t.Fatalf("served certificate serial %d, want 1001", got)
	}
	// A client that does not trust the CA refuses the listener.
	if _, err := (&http.Client{Timeout: 5 * time.Second}).Get("https://" + tlsAddr + "/v2/"); err == nil {
		t.Error("HTTPS GET without trusting the test CA succeeded")
	}

	// crane pulls the cached image over HTTPS.
	pulled, err := crane.Pull(tlsAddr+"/library/big:latest", crane.WithContext(ctx), crane.WithTransport(tlTransport(ca.pool)))
	if err != nil {
		t.Fatalf("crane pull over HTTPS: %v", err)
	}
	if got := imageDigest(t, pulled); got != want {
		t.Errorf("crane pulled %s over HTTPS, want %s", got, want)
	}
	pushReadImage(t, pulled)

	// A blob stream on a connection made with the first certificate.
	oldClient := &http.Client{Transport: tlTransport(ca.pool)}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+tlsAddr+"/v2/library/big/blobs/"+bigLayer, nil)
	resp, err := oldClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET big blob over HTTPS: %s", resp.Status)
	}
	if s := resp.TLS.PeerCertificates[0].SerialNumber.Int64(); s != 1001 {
		t.Errorf("blob stream connection: serial %d, want 1001", s)
	}
	h := sha256.New()
	if _, err := io.CopyN(h, resp.Body, 1<<20); err != nil {
		t.Fatalf("read the first MiB: %v", err)
	}

	// Rotate: a new certificate from the same CA, then SIGHUP.
	ca.tlIssue(t, 1002, time.Now().Add(-time.Minute), certFile, keyFile)
	tlSIGHUP(t, b, `"msg":"TLS certificate reloaded"`)
	if got := tlServedSerial(t, tlsAddr, ca.pool); got != 1002 {
		t.Errorf("after SIGHUP a new connection sees serial %d, want 1002", got)
	}
	newResp, err := (&http.Client{Transport: tlTransport(ca.pool)}).Get("https://" + tlsAddr + "/v2/")
	if err != nil {
		t.Fatalf("HTTPS GET /v2/ after rotation: %v", err)
	}
	newResp.Body.Close()
	if s := newResp.TLS.PeerCertificates[0].SerialNumber.Int64(); newResp.StatusCode != 200 || s != 1002 {
		t.Errorf("HTTPS GET /v2/ after rotation: %s, serial %d; want 200, 1002", newResp.Status, s)
	}

	// The stream begun before the SIGHUP completes, intact.
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		t.Fatalf("blob stream across the SIGHUP: %v after %d more bytes", err, n)
	}
	if got := tlHexDigest(h); n+1<<20 != bigSize || got != bigLayer {
		t.Errorf("blob stream across the SIGHUP: %d bytes hashing to %s, want %d bytes %s", n+1<<20, got, bigSize, bigLayer)
	}

	// A broken certificate file: the previous certificate stays.
	writeFile(t, certFile, "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
	tlSIGHUP(t, b, `"msg":"TLS certificate not reloaded; keeping the previous one"`)
	if got := tlServedSerial(t, tlsAddr, ca.pool); got != 1002 {
		t.Errorf("after SIGHUP with a broken certificate file, serial %d, want 1002 (the previous one)", got)
	}
	m, err := crane.Digest(tlsAddr+"/library/big:latest", crane.WithContext(ctx), crane.WithTransport(tlTransport(ca.pool)))
	if err != nil || m != want {
		t.Errorf("crane digest over HTTPS after the broken reload: %s %v, want %s", m, err, want)
	}

	// The plain listener serves throughout.
	st, _, body := request(ctx, t, nil, http.MethodGet, b.URL+"/v2/library/big/manifests/latest", cred{}, http.Header{"Accept": {allManifestTypes}}, nil)
	if st != http.StatusOK || pushSha256(body) != want {
		t.Errorf("plain HTTP GET manifest after the reloads: %d, digest %s, want 200 %s", st, pushSha256(body), want)
	}
}

func tlHexDigest(h hash.Hash) string { return "sha256:" + hex.EncodeToString(h.Sum(nil)) }
