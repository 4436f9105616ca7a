package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap/zaptest"
	"golang.org/x/crypto/bcrypt"
)

// bcryptLine returns "user:$2y$..." for password, at the cheapest cost.
func bcryptLine(t *testing.T, user, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return user + ":" + strings.Replace(string(h), "$2a$", "$2y$", 1)
}

func writeFile(t *testing.T, dir, name string, lines ...string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAuthenticate(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "htpasswd",
		"# users",
		bcryptLine(t, "alice", "wonderland"),
		"",
		bcryptLine(t, "bob", "builder"),
	)
	users, err := LoadHtpasswd(path)
	if err != nil {
		t.Fatal(err)
	}
	if users.Len() != 2 {
		t.Fatalf("Len = %d, want 2", users.Len())
	}
	tests := []struct {
		name, user, password string
		want                 bool
	}{
		{name: "bcrypt ok", user: "alice", password: "wonderland", want: true},
		{name: "second user ok", user: "bob", password: "builder", want: true},
		{name: "wrong password", user: "alice", password: "builder"},
		{name: "empty password", user: "alice", password: ""},
		{name: "unknown user", user: "mallory", password: "wonderland"},
		{name: "empty user", user: "", password: ""},
		{name: "user name is case-sensitive", user: "Alice", password: "wonderland"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := users.Authenticate(tt.user, tt.password); got != tt.want {
				t.Errorf("Authenticate(%q, %q) = %v, want %v", tt.user, tt.password, got, tt.want)
			}
		})
	}
}

func TestLoadHtpasswdRefuses(t *testing.T) {
	good := bcryptLine(t, "alice", "pw")
	tests := []struct {
		name    string
		line    string
		wantErr error
		want    []string // substrings of the message
	}{
		{name: "apr1 MD5", line: "bob:$apr1$abc$defghijklmnop", wantErr: ErrUnsupportedHash, want: []string{":2:", `"bob"`, "MD5"}},
		{name: "SHA1", line: "bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", wantErr: ErrUnsupportedHash, want: []string{":2:", "SHA-1"}},
		{name: "crypt", line: "bob:rqXexS6ZhobKA", wantErr: ErrUnsupportedHash, want: []string{":2:", "crypt"}},
		{name: "sha512-crypt", line: "bob:$6$salt$hash", wantErr: ErrUnsupportedHash, want: []string{":2:", "SHA-crypt"}},
		{name: "truncated bcrypt", line: "bob:$2y$05$tooshort", wantErr: ErrUnsupportedHash, want: []string{":2:", "malformed"}},
		{name: "no colon", line: "bob", wantErr: ErrInvalidUsersFile, want: []string{":2:"}},
		{name: "empty hash", line: "bob:", wantErr: ErrInvalidUsersFile, want: []string{":2:"}},
		{name: "duplicate user", line: good, wantErr: ErrInvalidUsersFile, want: []string{":2:", "twice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "htpasswd", good, tt.line)
			_, err := LoadHtpasswd(path)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			for _, s := range append(tt.want, path) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		_, err := LoadHtpasswd(filepath.Join(t.TempDir(), "nope"))
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("err = %v, want ErrNotExist", err)
		}
	})
}

func TestGroups(t *testing.T) {
	dir := t.TempDir()
	src := UsersSource{
		HtpasswdPath: writeFile(t, dir, "htpasswd", bcryptLine(t, "alice", "a"), bcryptLine(t, "bob", "b")),
		GroupsPath:   writeFile(t, dir, "groups", "# groups", "dev: alice bob", "ops:bob,carol"),
		Groups:       map[string][]string{"admins": {"alice"}, "dev": {"alice"}},
	}
	users, err := LoadUsers(src)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, user string
		want       []string
	}{
		{name: "file and map merged", user: "alice", want: []string{"admins", "dev"}},
		{name: "comma separated", user: "bob", want: []string{"dev", "ops"}},
		{name: "group member without password", user: "carol", want: []string{"ops"}},
		{name: "no groups", user: "dave", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := users.Groups(tt.user); strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("Groups(%q) = %v, want %v", tt.user, got, tt.want)
			}
		})
	}
	t.Run("bad groups file line", func(t *testing.T) {
		bad := src
		bad.GroupsPath = writeFile(t, dir, "groups-bad", "dev alice")
		if _, err := LoadUsers(bad); !errors.Is(err, ErrInvalidUsersFile) || !strings.Contains(err.Error(), ":1:") {
			t.Fatalf("err = %v, want ErrInvalidUsersFile naming line 1", err)
		}
	})
	t.Run("bad group name in map", func(t *testing.T) {
		bad := src
		bad.Groups = map[string][]string{"a b": {"alice"}}
		if _, err := LoadUsers(bad); !errors.Is(err, ErrInvalidUsersFile) {
			t.Fatalf("err = %v, want ErrInvalidUsersFile", err)
		}
	})
}

func TestReloadable(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "htpasswd", bcryptLine(t, "alice", "old"))
	groups := writeFile(t, dir, "groups", "dev: alice")
	r, err := NewReloadable(UsersSource{HtpasswdPath: path, GroupsPath: groups}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if !r.Authenticate("alice", "old") || r.Groups("alice")[0] != "dev" {
		t.Fatal("initial set not loaded")
	}

	// A good new file replaces the set.
	writeFile(t, dir, "htpasswd", bcryptLine(t, "alice", "new"), bcryptLine(t, "bob", "b"))
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if r.Authenticate("alice", "old") || !r.Authenticate("alice", "new") || !r.Authenticate("bob", "b") {
		t.Fatal("reload did not take the new file")
	}

	// A broken file keeps the old set, and says why.
	writeFile(t, dir, "htpasswd", bcryptLine(t, "alice", "newer"), "bob:$apr1$x$y")
	err = r.Reload()
	if !errors.Is(err, ErrUnsupportedHash) || !strings.Contains(err.Error(), ":2:") {
		t.Fatalf("Reload err = %v, want ErrUnsupportedHash naming line 2", err)
	}
	if !r.Authenticate("alice", "new") || r.Authenticate("alice", "newer") || r.Users().Len() != 2 {
		t.Fatal("broken reload replaced the users")
	}

	// A broken groups file also keeps the old set.
	writeFile(t, dir, "htpasswd", bcryptLine(t, "alice", "newer"))
	writeFile(t, dir, "groups", "no colon here")
	if err := r.Reload(); !errors.Is(err, ErrInvalidUsersFile) {
		t.Fatalf("Reload err = %v, want ErrInvalidUsersFile", err)
	}
	if !r.Authenticate("alice", "new") {
		t.Fatal("broken groups file replaced the users")
	}

	// The first load must succeed.
	if _, err := NewReloadable(UsersSource{HtpasswdPath: filepath.Join(dir, "nope")}, nil); err == nil {
		t.Fatal("NewReloadable of a missing file succeeded")
	}
}

func TestReloadableConcurrent(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "htpasswd", bcryptLine(t, "alice", "pw"))
	r, err := NewReloadable(UsersSource{HtpasswdPath: path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				if !r.Authenticate("alice", "pw") {
					t.Error("alice refused during reloads")
				}
			}
		}()
	}
	for range 5 {
		if err := r.Reload(); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
}
