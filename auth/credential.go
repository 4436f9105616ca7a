package auth

import (
	"errors"
	"fmt"
	"strings"
)

// Errors of a credential check. ErrTokenRevoked also wraps ErrInvalidToken.
var (
	ErrBadPassword    = errors.New("invalid username or password")
	ErrTokenRevoked   = errors.New("the token's user was removed or changed password since it was issued")
	ErrNotLoginToken  = errors.New("this token is not a login token; get one with `berth get-login-password`")
	ErrTokenForOthers = errors.New("the token was issued to another user")
)

// verifyBound verifies token and checks that its subject still exists with
// the credential the token was issued against, so that removing a user or
// changing their password ends every token they hold. Anonymous tokens
// have no subject to check. users nil knows no user.
func verifyBound(is *Issuer, users Authenticator, token string) (*Claims, error) {
	c, err := is.Verify(token)
	if err != nil {
		return nil, err
	}
	if c.Subject == "" {
		return c, nil
	}
	var b string
	ok := false
	if users != nil {
		b, ok = users.Binding(c.Subject)
	}
	if !ok || b != c.Binding {
		return nil, fmt.Errorf("%w: %w (user %q)", ErrInvalidToken, ErrTokenRevoked, c.Subject)
	}
	return c, nil
}

// TokenAuthenticator checks Basic credentials: a user's password, or a
// login token Berth issued to the user (what `berth get-login-password |
// docker login --password-stdin` stores). It serves the token endpoint,
// the registry and the admin API.
type TokenAuthenticator struct {
	Users  Authenticator
	Issuer *Issuer // nil: passwords only
}

// Login checks user's credentials. When pass is a login token it returns
// the token's claims (a token minted with it must not outlive it), nil for
// a password. A token is tried first: it costs no bcrypt. Any other token
// (a scoped one from the token dance, another user's, a revoked one) is
// refused: a token is never a wider credential than its own scope.
func (t TokenAuthenticator) Login(user, pass string) (*Claims, error) {
	if user == "" {
		return nil, ErrBadPassword
	}
	if t.Issuer != nil && strings.Count(pass, ".") == 2 {
		c, err := verifyBound(t.Issuer, t.Users, pass)
		switch {
		case errors.Is(err, ErrTokenRevoked):
			return nil, err
		case err != nil:
			// Not a token of ours: perhaps a password with two dots.
		case c.Subject != user:
			return nil, ErrTokenForOthers
		case !c.Login:
			return nil, ErrNotLoginToken
		default:
			return c, nil
		}
	}
	if t.Users == nil || !t.Users.Authenticate(user, pass) {
		return nil, ErrBadPassword
	}
	return nil, nil
}

// Authenticate implements Authenticator.
func (t TokenAuthenticator) Authenticate(user, pass string) bool {
	_, err := t.Login(user, pass)
	return err == nil
}

// Groups implements Authenticator.
func (t TokenAuthenticator) Groups(user string) []string {
	if t.Users == nil {
		return nil
	}
	return t.Users.Groups(user)
}

// Binding implements Authenticator.
func (t TokenAuthenticator) Binding(user string) (string, bool) {
	if t.Users == nil {
		return "", false
	}
	return t.Users.Binding(user)
}
