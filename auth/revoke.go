package auth

import "sync"

// Revocable is an Authenticator whose tokens an operator can end per user
// (berth revoke-tokens): a user's binding carries the mark of their last
// revocation, so every token issued before it stops matching, on every
// route that checks bindings. Passwords are not affected.
type Revocable struct {
	Authenticator
	mu    sync.RWMutex
	marks map[string]string
}

// NewRevocable wraps a with the revocation marks already recorded (by
// user).
func NewRevocable(a Authenticator, marks map[string]string) *Revocable {
	m := map[string]string{}
	for u, v := range marks {
		m[u] = v
	}
	return &Revocable{Authenticator: a, marks: m}
}

// Binding is the wrapped binding with user's revocation mark.
func (r *Revocable) Binding(user string) (string, bool) {
	b, ok := r.Authenticator.Binding(user)
	if !ok {
		return "", false
	}
	r.mu.RLock()
	mark := r.marks[user]
	r.mu.RUnlock()
	if mark != "" {
		b += "/" + mark
	}
	return b, true
}

// Revoke ends every token user holds now; mark must differ from the last.
func (r *Revocable) Revoke(user, mark string) {
	r.mu.Lock()
	r.marks[user] = mark
	r.mu.Unlock()
}
