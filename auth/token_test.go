package auth

import (
	"berth/internal/testclock"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap/zaptest"
)

func ed25519PEM(t *testing.T) []byte {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func ecdsaPEM(t *testing.T, curve elliptic.Curve, sec1 bool) []byte {
	t.Helper()
	priv, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if sec1 {
		der, err := x509.MarshalECPrivateKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func pemFile(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func secret(b byte) []byte { return []byte(strings.Repeat(string(rune('a'+b%26)), MinSecretLen)) }

func newIssuer(t testing.TB, clk *testclock.Clock, keys ...KeyConfig) *Issuer {
	t.Helper()
	is, err := NewIssuer(IssuerConfig{Keys: keys, Now: clk.Now}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return is
}

func TestIssueVerifyRoundTrip(t *testing.T) {
	access := []Access{{Type: TypeRepository, Name: "private/app", Actions: []string{"pull", "push"}}}
	tests := []struct {
		name    string
		key     KeyConfig
		wantAlg string
	}{
		{name: "ed25519 file", key: KeyConfig{PEMFile: pemFile(t, ed25519PEM(t))}, wantAlg: "EdDSA"},
		{name: "ecdsa p256 sec1", key: KeyConfig{PEM: ecdsaPEM(t, elliptic.P256(), true)}, wantAlg: "ES256"},
		{name: "ecdsa p384 pkcs8", key: KeyConfig{PEM: ecdsaPEM(t, elliptic.P384(), false)}, wantAlg: "ES384"},
		{name: "hmac", key: KeyConfig{Secret: secret(0)}, wantAlg: "HS256"},
		{name: "explicit kid", key: KeyConfig{ID: "2026-03", Secret: secret(1)}, wantAlg: "HS256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := testclock.New()
			is := newIssuer(t, clk, tt.key)
			tok, exp, err := is.Issue("alice", access, 0)
			if err != nil {
				t.Fatal(err)
			}
			if want := clk.Now().Add(12 * time.Hour); !exp.Equal(want) {
				t.Errorf("expiresAt = %v, want %v (12h default)", exp, want)
			}
			hdr := tokenHeader(t, tok)
			if hdr["alg"] != tt.wantAlg || hdr["kid"] == "" {
				t.Errorf("header = %v, want alg %s and a kid", hdr, tt.wantAlg)
			}
			if tt.key.ID != "" && hdr["kid"] != tt.key.ID {
				t.Errorf("kid = %v, want %s", hdr["kid"], tt.key.ID)
			}
			clk.Advance(11 * time.Hour)
			c, err := is.Verify(tok)
			if err != nil {
				t.Fatal(err)
			}
			if c.Subject != "alice" || c.Issuer != "berth" || len(c.Audience) != 1 || c.Audience[0] != "berth" ||
				!c.ExpiresAt.Equal(exp) || c.ID == "" || c.KeyID != hdr["kid"] {
				t.Errorf("claims = %+v", c)
			}
			if !c.Allows(TypeRepository, "private/app", "push") || c.Allows(TypeRepository, "private/app", "delete") ||
				c.Allows(TypeRepository, "private/other", "pull") {
				t.Errorf("Allows wrong for access %v", c.Access)
			}
			if p := c.Principal(); p.Name != "alice" || p.Anonymous {
				t.Errorf("Principal = %+v", p)
			}
		})
	}
}

func tokenHeader(t *testing.T, tok string) map[string]string {
	t.Helper()
	seg, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]string
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestVerifyRefuses(t *testing.T) {
	edKey := KeyConfig{PEM: ed25519PEM(t)}
	clk := testclock.New()
	is := newIssuer(t, clk, edKey)
	access := []Access{{Type: TypeRepository, Name: "private/app", Actions: []string{"pull"}}}
	good, _, err := is.Issue("alice", access, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, ".")

	otherAud, err := NewIssuer(IssuerConfig{Keys: []KeyConfig{edKey}, Service: "other", Now: clk.Now}, nil)
	if err != nil {
		t.Fatal(err)
	}
	otherAudTok, _, _ := otherAud.Issue("alice", access, time.Hour)
	otherIss, err := NewIssuer(IssuerConfig{Keys: []KeyConfig{edKey}, Issuer: "evil", Now: clk.Now}, nil)
	if err != nil {
		t.Fatal(err)
	}
	otherIssTok, _, _ := otherIss.Issue("alice", access, time.Hour)
	stranger := newIssuer(t, clk, KeyConfig{PEM: ed25519PEM(t)})
	strangerTok, _, _ := stranger.Issue("alice", access, time.Hour)

	// A payload granting push, glued to the original signature.
	var payload map[string]any
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	_ = json.Unmarshal(b, &payload)
	payload["access"] = []Access{{Type: TypeRepository, Name: "private/app", Actions: []string{"pull", "push"}}}
	b, _ = json.Marshal(payload)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
	badSig := []byte(parts[2])
	if badSig[5] = 'A'; parts[2][5] == 'A' {
		badSig[5] = 'B'
	}

	// alg confusion: HS256 keyed with the public key, under the EdDSA kid.
	kid := tokenHeader(t, good)["kid"]
	pub := is.keys[0].verify.(ed25519.PublicKey)
	confused := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": "berth", "aud": "berth", "sub": "alice",
		"exp": clk.Now().Add(time.Hour).Unix(), "iat": clk.Now().Unix()})
	confused.Header["kid"] = kid
	confusedTok, _ := confused.SignedString([]byte(pub))
	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"iss": "berth", "aud": "berth", "exp": clk.Now().Add(time.Hour).Unix()})
	none.Header["kid"] = kid
	noneTok, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	noKid := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"iss": "berth", "aud": "berth", "exp": clk.Now().Add(time.Hour).Unix()})
	noKidTok, _ := noKid.SignedString(is.keys[0].sign)

	tests := []struct {
		name    string
		token   string
		advance time.Duration
		wantErr error
	}{
		{name: "expired", token: good, advance: time.Hour + DefaultLeeway + time.Second, wantErr: jwt.ErrTokenExpired},
		{name: "wrong audience", token: otherAudTok, wantErr: jwt.ErrTokenInvalidAudience},
		{name: "wrong issuer", token: otherIssTok, wantErr: jwt.ErrTokenInvalidIssuer},
		{name: "tampered payload", token: tampered, wantErr: jwt.ErrTokenSignatureInvalid},
		{name: "tampered signature", token: parts[0] + "." + parts[1] + "." + string(badSig), wantErr: jwt.ErrTokenSignatureInvalid},
		{name: "unknown kid", token: strangerTok, wantErr: ErrUnknownKey},
		{name: "no kid", token: noKidTok, wantErr: ErrUnknownKey},
		{name: "alg confusion", token: confusedTok, wantErr: ErrInvalidToken},
		{name: "alg none", token: noneTok, wantErr: ErrInvalidToken},
		{name: "garbage", token: "not.a.token", wantErr: jwt.ErrTokenMalformed},
		{name: "issued in the future", token: good, advance: -2 * time.Minute, wantErr: jwt.ErrTokenUsedBeforeIssued},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testclock.New()
			c.Advance(tt.advance)
			v := newIssuer(t, c, edKey)
			_, err := v.Verify(tt.token)
			if !errors.Is(err, tt.wantErr) || !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Verify err = %v, want %v and ErrInvalidToken", err, tt.wantErr)
			}
		})
	}
	t.Run("within leeway", func(t *testing.T) {
		c := testclock.New()
		c.Advance(time.Hour + DefaultLeeway/2)
		v := newIssuer(t, c, edKey)
		if _, err := v.Verify(good); err != nil {
			t.Fatalf("Verify within leeway: %v", err)
		}
	})
}

func TestKeyRotation(t *testing.T) {
	clk := testclock.New()
	oldKey := KeyConfig{PEM: ed25519PEM(t)}
	newKey := KeyConfig{PEM: ecdsaPEM(t, elliptic.P256(), false)}
	hmacKey := KeyConfig{ID: "shared", Secret: secret(2)}

	before := newIssuer(t, clk, oldKey)
	oldTok, _, err := before.Issue("alice", nil, 0)
	if err != nil {
		t.Fatal(err)
	}

	// The new key goes first; the old one still verifies.
	during := newIssuer(t, clk, newKey, oldKey, hmacKey)
	if _, err := during.Verify(oldTok); err != nil {
		t.Fatalf("token of the old key refused after rotation: %v", err)
	}
	newTok, _, err := during.Issue("alice", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if tokenHeader(t, newTok)["kid"] == tokenHeader(t, oldTok)["kid"] || tokenHeader(t, newTok)["alg"] != "ES256" {
		t.Fatal("the new first key did not sign")
	}
	if _, err := before.Verify(newTok); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("old issuer on new token: err = %v, want ErrUnknownKey", err)
	}

	// Once the old key is dropped its tokens are refused.
	after := newIssuer(t, clk, newKey)
	if _, err := after.Verify(newTok); err != nil {
		t.Fatal(err)
	}
	if _, err := after.Verify(oldTok); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("dropped key: err = %v, want ErrUnknownKey", err)
	}
}

func TestNewIssuerRefuses(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	ed := ed25519PEM(t)
	tests := []struct {
		name string
		keys []KeyConfig
	}{
		{name: "no keys"},
		{name: "short secret", keys: []KeyConfig{{Secret: []byte("short")}}},
		{name: "two sources", keys: []KeyConfig{{Secret: secret(0), PEM: ed}}},
		{name: "empty key", keys: []KeyConfig{{ID: "x"}}},
		{name: "rsa", keys: []KeyConfig{{PEM: rsaPEM}}},
		{name: "not pem", keys: []KeyConfig{{PEM: []byte("hello")}}},
		{name: "public key pem", keys: []KeyConfig{{PEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1}})}}},
		{name: "missing file", keys: []KeyConfig{{PEMFile: filepath.Join(t.TempDir(), "nope.pem")}}},
		{name: "duplicate kid", keys: []KeyConfig{{ID: "k", Secret: secret(0)}, {ID: "k", PEM: ed}}},
		{name: "same key twice", keys: []KeyConfig{{PEM: ed}, {PEM: ed}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewIssuer(IssuerConfig{Keys: tt.keys}, nil); !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("err = %v, want ErrInvalidKey", err)
			}
		})
	}
}

func TestParseScope(t *testing.T) {
	tests := []struct {
		name    string
		scope   string
		want    []Access
		wantErr bool
	}{
		{name: "empty", scope: "", want: nil},
		{name: "pull push", scope: "repository:private/app:pull,push",
			want: []Access{{"repository", "private/app", []string{"pull", "push"}}}},
		{name: "two scopes", scope: "repository:a:pull repository:b/c:push",
			want: []Access{{"repository", "a", []string{"pull"}}, {"repository", "b/c", []string{"push"}}}},
		{name: "same repo merged", scope: "repository:a:pull repository:a:push,pull",
			want: []Access{{"repository", "a", []string{"pull", "push"}}}},
		{name: "duplicate actions", scope: "repository:a:pull,pull",
			want: []Access{{"repository", "a", []string{"pull"}}}},
		{name: "catalog", scope: "registry:catalog:*",
			want: []Access{{"registry", "catalog", []string{"*"}}}},
		{name: "delete star", scope: "repository:a:*",
			want: []Access{{"repository", "a", []string{"*"}}}},
		{name: "name with port", scope: "repository:localhost:5000/app:pull",
			want: []Access{{"repository", "localhost:5000/app", []string{"pull"}}}},
		{name: "type with class", scope: "repository(plugin):vieux/sshfs:pull",
			want: []Access{{"repository(plugin)", "vieux/sshfs", []string{"pull"}}}},
		{name: "extra spaces", scope: "  repository:a:pull  ", want: []Access{{"repository", "a", []string{"pull"}}}},
		{name: "two parts", scope: "repository:pull", wantErr: true},
		{name: "one part", scope: "repository", wantErr: true},
		{name: "empty name", scope: "repository::pull", wantErr: true},
		{name: "no actions", scope: "repository:a:", wantErr: true},
		{name: "empty action", scope: "repository:a:pull,", wantErr: true},
		{name: "bad action", scope: "repository:a:PULL", wantErr: true},
		{name: "empty type", scope: ":a:pull", wantErr: true},
		{name: "bad class", scope: "repository(:a:pull", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseScope(tt.scope)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidScope) {
					t.Fatalf("err = %v, want ErrInvalidScope", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g, w := mustJSON(t, got), mustJSON(t, tt.want); g != w {
				t.Errorf("ParseScope(%q) = %s, want %s", tt.scope, g, w)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestChallenge(t *testing.T) {
	tests := []struct {
		name, realm, service string
		scope                []Access
		want                 string
	}{
		{name: "one scope", realm: "https://berth.example/token", service: "berth",
			scope: []Access{{"repository", "private/app", []string{"pull", "push"}}},
			want:  `Bearer realm="https://berth.example/token",service="berth",scope="repository:private/app:pull,push"`},
		{name: "no scope", realm: "https://b/token", service: "berth",
			want: `Bearer realm="https://b/token",service="berth"`},
		{name: "two scopes", realm: "https://b/token", service: "berth",
			scope: []Access{{"repository", "a", []string{"pull"}}, {"registry", "catalog", []string{"*"}}},
			want:  `Bearer realm="https://b/token",service="berth",scope="repository:a:pull registry:catalog:*"`},
		{name: "quotes escaped", realm: `https://b/t"x`, want: `Bearer realm="https://b/t\"x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Challenge(tt.realm, tt.service, tt.scope); got != tt.want {
				t.Errorf("Challenge = %s\nwant        %s", got, tt.want)
			}
		})
	}
}
