package upstream

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	ggcr "github.com/google/go-containerregistry/pkg/registry"

	"berth/test/testreg"
)

// tlsWritePEM writes one PEM block to dir/name and returns the path.
func tlsWritePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tlsClientCert makes a CA and a client certificate it signed; it returns
// the CA pool and the PEM files of the certificate and its key.
func tlsClientCert(t *testing.T, dir string) (*x509.CertPool, string, string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "berth"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, tlsWritePEM(t, dir, "client.pem", "CERTIFICATE", der), tlsWritePEM(t, dir, "client-key.pem", "EC PRIVATE KEY", keyDER)
}

// TestUpstreamTLS pulls a manifest from an in-house registry over HTTPS
// with a certificate the system does not trust: refused without the rule's
// caFile, accepted with it or with insecureSkipVerify; and from one that
// asks for a client certificate, accepted only with certFile and keyFile.
func TestUpstreamTLS(t *testing.T) {
	dir := t.TempDir()
	h := ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0)))
	plain := httptest.NewServer(h) // the same registry, to push to
	t.Cleanup(plain.Close)
	img := testreg.Image(t, 7, 512)
	if err := crane.Push(img, strings.TrimPrefix(plain.URL, "http://")+"/team/app:v1"); err != nil {
		t.Fatal(err)
	}
	quiet := log.New(io.Discard, "", 0) // refused handshakes are expected
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = quiet
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile := tlsWritePEM(t, dir, "ca.pem", "CERTIFICATE", srv.Certificate().Raw)
	clientCAs, certFile, keyFile := tlsClientCert(t, dir)
	mtls := httptest.NewUnstartedServer(h)
	mtls.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCAs}
	mtls.Config.ErrorLog = quiet
	mtls.StartTLS()
	t.Cleanup(mtls.Close)

	tests := []struct {
		name    string
		url     string
		edit    func(*Rule)
		wantErr string // "" for success
	}{
		{name: "untrusted certificate", url: srv.URL, wantErr: "certificate"},
		{name: "caFile", url: srv.URL, edit: func(r *Rule) { r.CAFile = caFile }},
		{name: "insecureSkipVerify", url: srv.URL, edit: func(r *Rule) { r.InsecureSkipVerify = true }},
		{name: "client certificate required", url: mtls.URL, edit: func(r *Rule) { r.CAFile = caFile }, wantErr: "certificate"},
		{name: "mutual TLS", url: mtls.URL, edit: func(r *Rule) { r.CAFile, r.CertFile, r.KeyFile = caFile, certFile, keyFile }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := ctUpstream(t, tt.url, tt.edit)
			_, err := u.HeadManifest(context.Background(), "team/app", "v1")
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("HeadManifest: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(Cause(err), tt.wantErr)):
				t.Fatalf("HeadManifest: %v (cause %q); want a failure naming %q", err, Cause(err), tt.wantErr)
			}
		})
	}
}

func TestUpstreamTLSFilesUnreadable(t *testing.T) {
	for _, edit := range []func(*Rule){
		func(r *Rule) { r.CAFile = "/nonexistent/ca.pem" },
		func(r *Rule) { r.CertFile, r.KeyFile = "/nonexistent/c.pem", "/nonexistent/k.pem" },
	} {
		r := Rule{Name: "in-house", Prefix: "h", URL: "https://registry.example"}
		edit(&r)
		if _, err := New(r, nil, nil); err == nil || !strings.Contains(err.Error(), "upstream in-house: ") || !strings.Contains(err.Error(), "/nonexistent/") {
			t.Errorf("New with %+v: %v; want an error naming the rule and the file", r, err)
		}
	}
}
