package upstream

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// loadAuth reads the rule's credentials: a username with a password file,
// or the entry for host in a Docker config.json. No credentials is
// anonymous access.
func loadAuth(r Rule, host string) (authn.Authenticator, error) {
	switch {
	case r.PasswordFile != "":
		b, err := os.ReadFile(r.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("read password file: %w", err)
		}
		return &authn.Basic{Username: r.Username, Password: strings.TrimRight(string(b), "\r\n")}, nil
	case r.DockerConfig != "":
		return dockerConfigAuth(r.DockerConfig, host, r.IsDockerHub())
	}
	return authn.Anonymous, nil
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
	return nil, fmt.Errorf("docker config %s has no credentials for %s", path, host)
}
