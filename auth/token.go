package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
)

// Token defaults.
const (
	// DefaultIssuer is the "iss" of Berth's tokens.
	DefaultIssuer = "berth"
	// DefaultService is the audience when none is configured.
	DefaultService = "berth"
	// DefaultTokenTTL is how long a token lives, as an ECR authorization
	// token does.
	DefaultTokenTTL = 12 * time.Hour
	// DefaultLeeway is the clock skew tolerated on exp, nbf and iat.
	DefaultLeeway = 30 * time.Second
	// MinSecretLen is the shortest HMAC secret accepted (HS256).
	MinSecretLen = 32
)

// Errors of token issue and verification. Verify wraps ErrInvalidToken and,
// where there is one, the more precise cause below or one of jwt's
// (jwt.ErrTokenExpired, jwt.ErrTokenInvalidAudience, ...).
var (
	ErrInvalidToken = errors.New("invalid token")
	ErrUnknownKey   = errors.New("token signed by an unknown key")
	ErrInvalidKey   = errors.New("invalid signing key")
)

// KeyConfig is one signing key. Exactly one of Secret, PEMFile and PEM is set.
type KeyConfig struct {
	// ID is the "kid" header. When empty it is derived from the key (a
	// hash of the public key, or an HMAC of a fixed label for a secret).
	ID string
	// Secret is an HMAC-SHA256 secret of at least MinSecretLen bytes.
	Secret []byte
	// PEMFile is a file holding an Ed25519 or ECDSA (P-256, P-384, P-521)
	// private key, as PKCS#8 "PRIVATE KEY" or SEC 1 "EC PRIVATE KEY".
	PEMFile string
	// PEM is the same as PEMFile's content, given inline.
	PEM []byte
}

// IssuerConfig configures an Issuer.
type IssuerConfig struct {
	// Keys: the first signs, all verify. At least one.
	Keys []KeyConfig
	// Service is the token audience, the "service" of the challenge.
	// Default DefaultService.
	Service string
	// Issuer is the "iss" claim. Default DefaultIssuer.
	Issuer string
	// TTL is used when Issue is given none. Default DefaultTokenTTL.
	TTL time.Duration
	// Leeway is the clock skew tolerated. Default DefaultLeeway.
	Leeway time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Claims is what a verified token says.
type Claims struct {
	Subject   string // user name; empty for an anonymous token
	Issuer    string
	Audience  []string
	ID        string
	KeyID     string
	IssuedAt  time.Time
	NotBefore time.Time
	ExpiresAt time.Time
	Access    []Access
	// Login marks a token from `berth get-login-password`: the only kind
	// accepted in place of a password.
	Login bool
	// Binding names the credential the token came from (see
	// Authenticator.Binding); the token is good only while it is current.
	Binding string
}

// Principal is who the token was issued to. Groups are not carried in
// tokens: the access claim already holds what they granted.
func (c *Claims) Principal() Principal {
	return Principal{Name: c.Subject, Anonymous: c.Subject == ""}
}

// Allows reports whether the token grants action on the resource; a "*"
// action in the token grants every action.
func (c *Claims) Allows(typ, name, action string) bool {
	for _, a := range c.Access {
		if a.Type == typ && a.Name == name && (slices.Contains(a.Actions, action) || slices.Contains(a.Actions, "*")) {
			return true
		}
	}
	return false
}

// jwtClaims is the wire form of a token's claims.
type jwtClaims struct {
	jwt.RegisteredClaims
	Access  []Access `json:"access"`
	Login   bool     `json:"login,omitempty"`
	Binding string   `json:"cred,omitempty"`
}

// TokenSpec is a token to issue.
type TokenSpec struct {
	Subject string // user name; empty for an anonymous token
	Access  []Access
	// TTL is the lifetime; zero or less means the configured default.
	TTL time.Duration
	// NotAfter, when set, caps the expiry: a token minted with another
	// token never outlives it.
	NotAfter time.Time
	Login    bool
	Binding  string
}

type signingKey struct {
	id     string
	method jwt.SigningMethod
	sign   any // []byte or crypto.Signer
	verify any // []byte or public key
}

// Issuer signs and verifies tokens. It is safe for concurrent use.
type Issuer struct {
	keys    []signingKey
	byID    map[string]*signingKey
	service string
	issuer  string
	ttl     time.Duration
	leeway  time.Duration
	now     func() time.Time
	log     *zap.Logger
}

// NewIssuer loads the keys of cfg.
func NewIssuer(cfg IssuerConfig, log *zap.Logger) (*Issuer, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if len(cfg.Keys) == 0 {
		return nil, fmt.Errorf("%w: no signing keys configured", ErrInvalidKey)
	}
	is := &Issuer{
		byID:    map[string]*signingKey{},
		service: cmpOr(cfg.Service, DefaultService),
		issuer:  cmpOr(cfg.Issuer, DefaultIssuer),
		ttl:     cfg.TTL,
		leeway:  cfg.Leeway,
		now:     cfg.Now,
		log:     log,
	}
	if is.ttl <= 0 {
		is.ttl = DefaultTokenTTL
	}
	if is.leeway <= 0 {
		is.leeway = DefaultLeeway
	}
	if is.now == nil {
		is.now = time.Now
	}
	for i, kc := range cfg.Keys {
		k, err := loadKey(kc, log)
		if err != nil {
			return nil, fmt.Errorf("keys[%d]: %w", i, err)
		}
		if slices.ContainsFunc(is.keys, func(x signingKey) bool { return x.id == k.id }) {
			return nil, fmt.Errorf("keys[%d]: %w: duplicate key id %q", i, ErrInvalidKey, k.id)
		}
		is.keys = append(is.keys, k)
	}
	for i := range is.keys {
		is.byID[is.keys[i].id] = &is.keys[i]
	}
	log.Info("token issuer ready", zap.String("signing_kid", is.keys[0].id),
		zap.String("alg", is.keys[0].method.Alg()), zap.Int("keys", len(is.keys)))
	return is, nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Service is the audience of the tokens.
func (is *Issuer) Service() string { return is.service }

// TTL is the default token lifetime.
func (is *Issuer) TTL() time.Duration { return is.ttl }

// Issue signs a token for sub (empty for anonymous) granting access. A ttl
// of zero or less means the configured default.
func (is *Issuer) Issue(sub string, access []Access, ttl time.Duration) (string, time.Time, error) {
	return is.Sign(TokenSpec{Subject: sub, Access: access, TTL: ttl})
}

// ErrTokenExpired is returned by Sign when the spec's NotAfter has passed.
var ErrTokenExpired = errors.New("the token it would be minted with has expired")

// Sign signs the token spec describes and returns it with its expiry.
func (is *Issuer) Sign(spec TokenSpec) (string, time.Time, error) {
	ttl := spec.TTL
	if ttl <= 0 {
		ttl = is.ttl
	}
	now := is.now().Truncate(time.Second)
	exp := now.Add(ttl)
	if !spec.NotAfter.IsZero() && spec.NotAfter.Before(exp) {
		exp = spec.NotAfter.Truncate(time.Second)
	}
	if !exp.After(now) {
		return "", time.Time{}, ErrTokenExpired
	}
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	access := spec.Access
	if access == nil {
		access = []Access{}
	}
	claims := jwtClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    is.issuer,
			Subject:   spec.Subject,
			Audience:  jwt.ClaimStrings{is.service},
			ExpiresAt: jwt.NewNumericDate(exp),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        hex.EncodeToString(jti),
		},
		Access:  access,
		Login:   spec.Login,
		Binding: spec.Binding,
	}
	k := &is.keys[0]
	tok := jwt.NewWithClaims(k.method, claims)
	tok.Header["kid"] = k.id
	s, err := tok.SignedString(k.sign)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	return s, exp, nil
}

// Verify checks a token's signature (with the key its kid names), its
// expiry, not-before and issued-at times (with the configured leeway), its
// issuer and its audience.
func (is *Issuer) Verify(token string) (*Claims, error) {
	var kid string
	keyfunc := func(t *jwt.Token) (any, error) {
		id, _ := t.Header["kid"].(string)
		if id == "" {
			return nil, fmt.Errorf("%w: no kid header", ErrUnknownKey)
		}
		k, ok := is.byID[id]
		if !ok {
			return nil, fmt.Errorf("%w: kid %q", ErrUnknownKey, id)
		}
		// The key's own algorithm, never the one the token claims (this
		// also refuses "none").
		if t.Method.Alg() != k.method.Alg() {
			return nil, fmt.Errorf("%w: kid %q is %s, token says %s", ErrInvalidToken, id, k.method.Alg(), t.Method.Alg())
		}
		kid = id
		return k.verify, nil
	}
	var c jwtClaims
	_, err := jwt.ParseWithClaims(token, &c, keyfunc,
		jwt.WithIssuer(is.issuer),
		jwt.WithAudience(is.service),
		jwt.WithLeeway(is.leeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(is.now),
	)
	if err != nil {
		if errors.Is(err, ErrInvalidToken) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	return &Claims{
		Subject:   c.Subject,
		Issuer:    c.Issuer,
		Audience:  c.Audience,
		ID:        c.ID,
		KeyID:     kid,
		IssuedAt:  numericTime(c.IssuedAt),
		NotBefore: numericTime(c.NotBefore),
		ExpiresAt: numericTime(c.ExpiresAt),
		Access:    c.Access,
		Login:     c.Login,
		Binding:   c.Binding,
	}, nil
}

func numericTime(d *jwt.NumericDate) time.Time {
	if d == nil {
		return time.Time{}
	}
	return d.Time
}

// loadKey turns a KeyConfig into a signing key.
func loadKey(kc KeyConfig, log *zap.Logger) (signingKey, error) {
	set := 0
	for _, b := range []bool{len(kc.Secret) > 0, kc.PEMFile != "", len(kc.PEM) > 0} {
		if b {
			set++
		}
	}
	if set != 1 {
		return signingKey{}, fmt.Errorf("%w: set exactly one of secret, PEM file and PEM", ErrInvalidKey)
	}
	if len(kc.Secret) > 0 {
		if len(kc.Secret) < MinSecretLen {
			return signingKey{}, fmt.Errorf("%w: HMAC secret is %d bytes, want at least %d", ErrInvalidKey, len(kc.Secret), MinSecretLen)
		}
		id := kc.ID
		if id == "" {
			m := hmac.New(sha256.New, kc.Secret)
			m.Write([]byte("berth token key id"))
			id = "hs-" + base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:12])
		}
		secret := slices.Clone(kc.Secret)
		return signingKey{id: id, method: jwt.SigningMethodHS256, sign: secret, verify: secret}, nil
	}
	data, where := kc.PEM, "inline PEM"
	if kc.PEMFile != "" {
		where = kc.PEMFile
		var err error
		if data, err = os.ReadFile(kc.PEMFile); err != nil {
			return signingKey{}, fmt.Errorf("%w: %w", ErrInvalidKey, err)
		}
		if fi, err := os.Stat(kc.PEMFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
			log.Warn("token signing key is readable by others", zap.String("file", kc.PEMFile),
				zap.Stringer("mode", fi.Mode().Perm()))
		}
	}
	signer, err := ParsePrivateKeyPEM(data)
	if err != nil {
		return signingKey{}, fmt.Errorf("%s: %w", where, err)
	}
	k := signingKey{sign: signer, verify: signer.Public()}
	switch pk := signer.(type) {
	case ed25519.PrivateKey:
		k.method = jwt.SigningMethodEdDSA
	case *ecdsa.PrivateKey:
		switch pk.Curve {
		case elliptic.P256():
			k.method = jwt.SigningMethodES256
		case elliptic.P384():
			k.method = jwt.SigningMethodES384
		case elliptic.P521():
			k.method = jwt.SigningMethodES512
		default:
			return signingKey{}, fmt.Errorf("%s: %w: unsupported ECDSA curve", where, ErrInvalidKey)
		}
	}
	k.id = kc.ID
	if k.id == "" {
		der, err := x509.MarshalPKIXPublicKey(signer.Public())
		if err != nil {
			return signingKey{}, fmt.Errorf("%s: %w: %w", where, ErrInvalidKey, err)
		}
		sum := sha256.Sum256(der)
		k.id = base64.RawURLEncoding.EncodeToString(sum[:12])
	}
	return k, nil
}

// ParsePrivateKeyPEM parses an Ed25519 or ECDSA private key from PEM:
// PKCS#8 ("PRIVATE KEY") or SEC 1 ("EC PRIVATE KEY"). Encrypted keys and
// RSA keys are refused.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrInvalidKey)
	}
	switch block.Type {
	case "PRIVATE KEY":
		key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
		}
		switch k := key.(type) {
		case ed25519.PrivateKey:
			return k, nil
		case *ecdsa.PrivateKey:
			return k, nil
		default:
			return nil, fmt.Errorf("%w: %T keys are not supported; use Ed25519 or ECDSA", ErrInvalidKey, key)
		}
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("%w: PEM block %q is not supported; use an Ed25519 or ECDSA key in PKCS#8", ErrInvalidKey, block.Type)
	}
}
