package config

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// Auth turns on logins, tokens and repository policies.
type Auth struct {
	// Enabled: without it every request is allowed (an edge mirror in a
	// trusted subnet).
	Enabled bool `yaml:"enabled"`
	// Htpasswd is the users file (bcrypt); reloaded on SIGHUP.
	Htpasswd string `yaml:"htpasswd"`
	// GroupsFile holds "group: user1 user2" lines; Groups adds more.
	GroupsFile string              `yaml:"groupsFile"`
	Groups     map[string][]string `yaml:"groups"`
	// TokenKeys are PEM files of Ed25519/ECDSA keys: the first signs, all
	// verify (rotation). Empty: a key generated once in <dataDir>/auth.
	TokenKeys []string `yaml:"tokenKeys"`
	// TokenTTL is how long a token is valid (12h, as ECR's).
	TokenTTL time.Duration `yaml:"tokenTTL"`
	// Realm is the token endpoint's public URL; empty derives it from
	// each request's host.
	Realm string `yaml:"realm"`
	// Anonymous and Authenticated are the default grants where no policy
	// statement applies: actions (pull, push, delete, list) on cached and
	// local repositories.
	Anonymous     Grant `yaml:"anonymous"`
	Authenticated Grant `yaml:"authenticated"`
	// Policies are repository policies in ECR's JSON, per repository or
	// per namespace pattern.
	Policies []Policy `yaml:"policies"`
	// AdminGroup's members may use the admin API (and nobody else, once
	// auth is on).
	AdminGroup string `yaml:"adminGroup"`
}

// Grant lists default actions.
type Grant struct {
	Cached  []string `yaml:"cached"`
	Local   []string `yaml:"local"`
	Catalog bool     `yaml:"catalog"`
}

// Policy attaches a policy to a repository or a name pattern.
type Policy struct {
	Repository string `yaml:"repository"`
	Namespace  string `yaml:"namespace"` // e.g. "private/*"
	File       string `yaml:"file"`
	Policy     string `yaml:"policy"` // inline JSON
}

// Text is the policy document: the inline policy or the file's content.
func (p Policy) Text() ([]byte, error) {
	if p.File == "" {
		return []byte(p.Policy), nil
	}
	data, err := os.ReadFile(p.File)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	return data, nil
}

// defaultAuth: anonymous clients may pull cached repositories;
// authenticated users may pull and list cached repositories, pull, push and
// list local ones, and read the catalog. Delete is granted only by policy.
func defaultAuth() Auth {
	return Auth{
		TokenTTL:   12 * time.Hour,
		AdminGroup: "admins",
		Anonymous:  Grant{Cached: []string{"pull"}},
		Authenticated: Grant{
			Cached:  []string{"pull", "list"},
			Local:   []string{"pull", "push", "list"},
			Catalog: true,
		},
	}
}

func (c Auth) validate() []error {
	var errs []error
	if !c.Enabled {
		return nil
	}
	if c.Htpasswd == "" {
		errs = append(errs, errors.New("auth.htpasswd: required when auth is enabled"))
	}
	if c.TokenTTL <= 0 {
		errs = append(errs, errors.New("auth.tokenTTL: must be positive"))
	}
	for i, p := range c.Policies {
		at := fmt.Sprintf("auth.policies[%d]", i)
		if (p.Repository == "") == (p.Namespace == "") {
			errs = append(errs, fmt.Errorf("%s: give repository or namespace, not both or neither", at))
		}
		if (p.File == "") == (p.Policy == "") {
			errs = append(errs, fmt.Errorf("%s: give file or policy, not both or neither", at))
		}
	}
	return errs
}
