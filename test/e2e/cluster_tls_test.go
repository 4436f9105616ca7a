package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/test/testreg"
)

// ctIssuePeer writes a certificate for a node's peer address, usable as
// server and client certificate, signed by ca.
func ctIssuePeer(t *testing.T, ca *tlCA, ip string, serial int64, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "berth node " + ip},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.ParseIP(ip)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, ip+".crt"), filepath.Join(dir, ip+".key")
	writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})))
	return certFile, keyFile
}

// TestClusterPeerMutualTLS: with cluster.tls, peers talk HTTPS with client
// certificates from the cluster CA; B pulls from A's store over it, and a
// client without a certificate from the CA is refused at the handshake.
func TestClusterPeerMutualTLS(t *testing.T) {
	ca := tlNewCA(t)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.crt")
	writeFile(t, caFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})))
	up := testreg.Start(t)
	want := up.Push(t, "team/mtls", "v1", twentyLayers(t, 71))
	nodes := startClusterWith(t, 2, up.URL, "", func(i int) string {
		cert, key := ctIssuePeer(t, ca, fmt.Sprintf("127.0.0.%d", i+1), int64(100+i), dir)
		return fmt.Sprintf("  tls:\n    caFile: %q\n    certFile: %q\n    keyFile: %q\n", caFile, cert, key)
	})
	if d, err := testreg.PullAll(nodes[0].Addr + "/team/mtls:v1"); err != nil || d != want {
		t.Fatalf("pull on A: %v %v", d, err)
	}
	up.Reset()
	if d, err := testreg.PullAll(nodes[1].Addr + "/team/mtls:v1"); err != nil || d != want {
		t.Fatalf("pull on B: %v %v", d, err)
	}
	if n := up.Count("total"); n != 0 {
		t.Fatalf("B reached the upstream %d times; peers over mutual TLS should have served it", n)
	}
	// No client certificate: the handshake fails.
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}}
	_, err := c.Get("https://" + nodes[0].peer + "/v2/")
	if err == nil || !strings.Contains(err.Error(), "certificate") && !strings.Contains(err.Error(), "tls") {
		t.Fatalf("a client without a certificate got through: %v", err)
	}
	// Plain HTTP to the peer port is refused too.
	if resp, err := http.Get("http://" + nodes[0].peer + "/v2/"); err == nil && resp.StatusCode < 400 {
		t.Fatalf("plain HTTP to the peer port answered %d", resp.StatusCode)
	}
}
