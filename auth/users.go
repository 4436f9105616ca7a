package auth

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
)

// ErrUnsupportedHash is wrapped by LoadHtpasswd when a line holds a hash that
// is not bcrypt.
var ErrUnsupportedHash = errors.New("unsupported password hash: only bcrypt ($2y$, $2b$, $2a$) is accepted")

// ErrInvalidUsersFile is wrapped by the loaders for any other malformed line
// of an htpasswd or groups file.
var ErrInvalidUsersFile = errors.New("invalid users file")

// Authenticator checks credentials and tells a user's groups. *Users and
// *Reloadable implement it.
type Authenticator interface {
	Authenticate(user, password string) bool
	Groups(user string) []string
	// Binding names user's current credential: it changes when the
	// password does, and is false when the user does not exist. Tokens
	// carry it and are good only while it is current.
	Binding(user string) (string, bool)
}

// UsersSource says where users and groups come from.
type UsersSource struct {
	// HtpasswdPath is the htpasswd file (bcrypt hashes only). Required.
	HtpasswdPath string
	// GroupsPath is an optional groups file: one "group: user1 user2" per
	// line (commas also separate users), '#' starts a comment.
	GroupsPath string
	// Groups maps a group to its users, e.g. from the daemon's config. It
	// is merged with the groups file.
	Groups map[string][]string
}

// Users is an immutable set of users with bcrypt hashes and their groups.
type Users struct {
	hashes map[string][]byte
	groups map[string][]string // user → sorted groups
	// dummy is compared against for unknown users, so that a login with an
	// unknown name costs as much as one with a known name.
	dummy []byte
}

// LoadHtpasswd reads an htpasswd file of bcrypt hashes. Blank lines and lines
// starting with '#' are skipped.
func LoadHtpasswd(path string) (*Users, error) {
	return LoadUsers(UsersSource{HtpasswdPath: path})
}

// LoadUsers reads the htpasswd file and the groups of src.
func LoadUsers(src UsersSource) (*Users, error) {
	if src.HtpasswdPath == "" {
		return nil, fmt.Errorf("%w: no htpasswd file configured", ErrInvalidUsersFile)
	}
	f, err := os.Open(src.HtpasswdPath)
	if err != nil {
		return nil, fmt.Errorf("open htpasswd: %w", err)
	}
	defer f.Close()
	u, err := ParseHtpasswd(f, src.HtpasswdPath)
	if err != nil {
		return nil, err
	}
	groups := map[string][]string{}
	if src.GroupsPath != "" {
		fromFile, err := LoadGroups(src.GroupsPath)
		if err != nil {
			return nil, err
		}
		mergeGroups(groups, fromFile)
	}
	if err := validateGroups(src.Groups); err != nil {
		return nil, err
	}
	mergeGroups(groups, src.Groups)
	return u.WithGroups(groups), nil
}

// ParseHtpasswd reads htpasswd lines from r; name is used in error messages.
func ParseHtpasswd(r io.Reader, name string) (*Users, error) {
	u := &Users{hashes: map[string][]byte{}, groups: map[string][]string{}}
	maxCost := 0
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" || hash == "" {
			return nil, fmt.Errorf("%s:%d: %w: want user:hash", name, n, ErrInvalidUsersFile)
		}
		if strings.ContainsAny(user, " \t") {
			return nil, fmt.Errorf("%s:%d: %w: user name %q has white space", name, n, ErrInvalidUsersFile, user)
		}
		if kind := hashKind(hash); kind != "bcrypt" {
			return nil, fmt.Errorf("%s:%d: user %q: %w (found %s; recreate it with htpasswd -B)", name, n, user, ErrUnsupportedHash, kind)
		}
		cost, err := bcrypt.Cost([]byte(hash))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: user %q: %w: malformed bcrypt hash: %w", name, n, user, ErrUnsupportedHash, err)
		}
		if _, dup := u.hashes[user]; dup {
			return nil, fmt.Errorf("%s:%d: %w: user %q appears twice", name, n, ErrInvalidUsersFile, user)
		}
		u.hashes[user] = []byte(hash)
		maxCost = max(maxCost, cost)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if maxCost == 0 {
		maxCost = bcrypt.DefaultCost
	}
	// The dummy costs as much as the dearest real hash.
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	dummy, err := bcrypt.GenerateFromPassword(secret, maxCost)
	if err != nil {
		return nil, fmt.Errorf("make dummy hash: %w", err)
	}
	u.dummy = dummy
	return u, nil
}

// hashKind names the scheme of an htpasswd hash.
func hashKind(hash string) string {
	switch {
	case strings.HasPrefix(hash, "$2y$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2a$"):
		return "bcrypt"
	case strings.HasPrefix(hash, "$apr1$"):
		return "an MD5 ($apr1$) hash"
	case strings.HasPrefix(hash, "{SHA}"):
		return "a SHA-1 ({SHA}) hash"
	case strings.HasPrefix(hash, "$5$"), strings.HasPrefix(hash, "$6$"):
		return "a SHA-crypt hash"
	case strings.HasPrefix(hash, "$"):
		return "an unknown $-prefixed hash"
	default:
		return "a crypt(3) or plain-text password"
	}
}

// LoadGroups reads a groups file: "group: user1 user2" per line, users
// separated by spaces or commas.
func LoadGroups(path string) (map[string][]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read groups file: %w", err)
	}
	groups := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		group, members, ok := strings.Cut(line, ":")
		group = strings.TrimSpace(group)
		if !ok || group == "" || strings.ContainsAny(group, " \t") {
			return nil, fmt.Errorf("%s:%d: %w: want group: user1 user2", path, n, ErrInvalidUsersFile)
		}
		names := strings.FieldsFunc(members, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' })
		groups[group] = append(groups[group], names...)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return groups, nil
}

func validateGroups(groups map[string][]string) error {
	for g, members := range groups {
		if g == "" || strings.ContainsAny(g, " \t:") {
			return fmt.Errorf("%w: bad group name %q", ErrInvalidUsersFile, g)
		}
		for _, m := range members {
			if m == "" {
				return fmt.Errorf("%w: group %q has an empty user name", ErrInvalidUsersFile, g)
			}
		}
	}
	return nil
}

func mergeGroups(dst, src map[string][]string) {
	for g, members := range src {
		dst[g] = append(dst[g], members...)
	}
}

// WithGroups returns a copy of u whose groups are the given group → users
// map (replacing any groups u had).
func (u *Users) WithGroups(groups map[string][]string) *Users {
	byUser := map[string][]string{}
	for g, members := range groups {
		for _, m := range members {
			if !slices.Contains(byUser[m], g) {
				byUser[m] = append(byUser[m], g)
			}
		}
	}
	for _, gs := range byUser {
		slices.Sort(gs)
	}
	return &Users{hashes: u.hashes, groups: byUser, dummy: u.dummy}
}

// Authenticate reports whether password is user's. An unknown user costs a
// bcrypt comparison too, so timing does not tell which names exist.
func (u *Users) Authenticate(user, password string) bool {
	hash, ok := u.hashes[user]
	if !ok {
		_ = bcrypt.CompareHashAndPassword(u.dummy, []byte(password))
		return false
	}
	return bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
}

// Groups returns the sorted groups user belongs to. The caller must not
// modify the slice.
func (u *Users) Groups(user string) []string { return u.groups[user] }

// Binding implements Authenticator: a digest of user's htpasswd entry.
func (u *Users) Binding(user string) (string, bool) {
	hash, ok := u.hashes[user]
	if !ok {
		return "", false
	}
	h := sha256.New()
	h.Write([]byte("berth credential\x00" + user + "\x00"))
	h.Write(hash)
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:12]), true
}

// Len is the number of users.
func (u *Users) Len() int { return len(u.hashes) }

// Reloadable is a set of users that can be re-read from its source while in
// use. It is safe for concurrent use.
type Reloadable struct {
	src UsersSource
	log *zap.Logger
	mu  sync.Mutex // serializes reloads
	cur atomic.Pointer[Users]
}

// NewReloadable loads src; the first load must succeed.
func NewReloadable(src UsersSource, log *zap.Logger) (*Reloadable, error) {
	if log == nil {
		log = zap.NewNop()
	}
	u, err := LoadUsers(src)
	if err != nil {
		return nil, err
	}
	r := &Reloadable{src: src, log: log}
	r.cur.Store(u)
	return r, nil
}

// Reload re-reads the source. When the new files are broken it keeps the
// users it had and returns the error.
func (r *Reloadable) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	u, err := LoadUsers(r.src)
	if err != nil {
		r.log.Error("reloading users failed; keeping the previous set",
			zap.String("htpasswd", r.src.HtpasswdPath), zap.Error(err))
		return fmt.Errorf("reload users: %w", err)
	}
	old := r.cur.Swap(u)
	r.log.Info("reloaded users", zap.String("htpasswd", r.src.HtpasswdPath),
		zap.Int("users", u.Len()), zap.Int("previous", old.Len()))
	return nil
}

// Users returns the current set.
func (r *Reloadable) Users() *Users { return r.cur.Load() }

// Authenticate checks credentials against the current set.
func (r *Reloadable) Authenticate(user, password string) bool {
	return r.cur.Load().Authenticate(user, password)
}

// Groups returns user's groups in the current set.
func (r *Reloadable) Groups(user string) []string { return r.cur.Load().Groups(user) }

// Binding is user's credential binding in the current set.
func (r *Reloadable) Binding(user string) (string, bool) { return r.cur.Load().Binding(user) }
