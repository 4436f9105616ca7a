package upstream

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// errNoDockerAuth means a Docker config has no entry for the host.
var errNoDockerAuth = errors.New("has no credentials")

// loadCredentials reads the rule's credentials: the pool of credentials,
// a username with a password file, or the entry for host in a Docker
// config.json. No credentials is a pool of one anonymous credential.
func loadCredentials(r Rule, host string) ([]*credential, error) {
	if len(r.Credentials) > 0 {
		creds := make([]*credential, 0, len(r.Credentials))
		for i, c := range r.Credentials {
			a, err := basicAuth(c.Username, c.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("credentials[%d] (%s): %w", i, c.Username, err)
			}
			creds = append(creds, &credential{user: c.Username, auth: a})
		}
		return creds, nil
	}
	a, err := loadAuth(r, host)
	if err != nil {
		return nil, err
	}
	return []*credential{{user: r.Username, auth: a}}, nil
}

// loadAuth reads the rule's single credential: a username with a password
// file, or the entry for host in a Docker config.json. No credentials is
// anonymous access.
func loadAuth(r Rule, host string) (authn.Authenticator, error) {
	switch {
	case r.PasswordFile != "":
		return basicAuth(r.Username, r.PasswordFile)
	case r.DockerConfig != "":
		return dockerConfigAuth(r.DockerConfig, host, r.IsDockerHub())
	}
	return authn.Anonymous, nil
}

func basicAuth(user, passwordFile string) (authn.Authenticator, error) {
	b, err := os.ReadFile(passwordFile)
	if err != nil {
		return nil, fmt.Errorf("read password file: %w", err)
	}
	return &authn.Basic{Username: user, Password: strings.TrimRight(string(b), "\r\n")}, nil
}

func dockerConfigAuth(path, host string, hub bool) (authn.Authenticator, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read docker config: %w", err)
	}
	var cfg struct {
		Auths map[string]struct {
			Auth          string `json:"auth"`
			Username      string `json:"username"`
			Password      string `json:"password"`
			IdentityToken string `json:"identitytoken"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("parse docker config %s: %w", path, err)
	}
	keys := []string{host, "https://" + host, "http://" + host}
	if hub {
		keys = append(keys, "https://index.docker.io/v1/", "index.docker.io", "docker.io")
	}
	for _, k := range keys {
		e, ok := cfg.Auths[k]
		if !ok {
			continue
		}
		ac := authn.AuthConfig{Username: e.Username, Password: e.Password, IdentityToken: e.IdentityToken}
		if e.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(e.Auth)
			if err != nil {
				return nil, fmt.Errorf("docker config %s: auth for %s is not base64", path, k)
			}
			user, pass, _ := strings.Cut(string(raw), ":")
			ac.Username, ac.Password = user, pass
		}
		return authn.FromConfig(ac), nil
	}
	return nil, fmt.Errorf("docker config %s %w for %s", path, errNoDockerAuth, host)
}
