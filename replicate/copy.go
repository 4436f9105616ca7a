package replicate

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path"
	"strings"

	"berth/config"
	"berth/internal/oci"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// copy sends one image to its destination: an index's children held here
// by digest first, then the manifest under its tag (or digest).
func (r *Replicator) copy(ctx context.Context, it item) error {
	d, err := r.destination(it)
	if err != nil {
		return err
	}
	u, err := url.Parse(d.URL)
	if err != nil {
		return err
	}
	var nopts []name.Option
	if u.Scheme == "http" {
		nopts = append(nopts, name.Insecure)
	}
	repo, err := name.NewRepository(u.Host+"/"+strings.Trim(path.Join(d.Prefix, it.Repo), "/"), nopts...)
	if err != nil {
		return fmt.Errorf("destination repository: %w", err)
	}
	auth, err := credentials(d, u.Host)
	if err != nil {
		return err
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuth(auth)}
	var ref name.Reference = repo.Digest(it.Digest)
	if it.Tag != "" {
		ref = repo.Tag(it.Tag)
	}
	return r.send(ctx, repo, ref, it.Digest, opts)
}

// send puts manifest digest (and what it needs) at ref.
func (r *Replicator) send(ctx context.Context, repo name.Repository, ref name.Reference, digest string, opts []remote.Option) error {
	m, err := r.o.Store.GetManifest(ctx, digest)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", digest, err)
	}
	mt := types.MediaType(m.MediaType)
	if !oci.IsIndex(m.MediaType) {
		img, err := partial.CompressedToImage(&storeImage{ctx: ctx, st: r.o.Store, raw: m.Body, mt: mt})
		if err != nil {
			return err
		}
		return remote.Write(ref, img, opts...)
	}
	var idx oci.Manifest
	if err := json.Unmarshal(m.Body, &idx); err != nil {
		return fmt.Errorf("index %s: %w", digest, err)
	}
	for _, c := range idx.Manifests {
		if err := r.send(ctx, repo, repo.Digest(c.Digest), c.Digest, opts); err != nil {
			return err
		}
	}
	return remote.Put(ref, rawManifest{raw: m.Body, mt: mt}, opts...)
}

// credentials are a destination's login: username and password file, a
// Docker config's entry for host, or none.
func credentials(d config.Destination, host string) (authn.Authenticator, error) {
	user, pwFile, dockerConfig := d.Username, d.PasswordFile, d.DockerConfig
	switch {
	case pwFile != "":
		b, err := os.ReadFile(pwFile)
		if err != nil {
			return nil, fmt.Errorf("destination password: %w", err)
		}
		return &authn.Basic{Username: user, Password: strings.TrimRight(string(b), "\r\n")}, nil
	case dockerConfig != "":
		b, err := os.ReadFile(dockerConfig)
		if err != nil {
			return nil, fmt.Errorf("destination dockerConfig: %w", err)
		}
		var cf struct {
			Auths map[string]struct{ Auth string } `json:"auths"`
		}
		if err := json.Unmarshal(b, &cf); err != nil {
			return nil, fmt.Errorf("destination dockerConfig %s: %w", dockerConfig, err)
		}
		a, ok := cf.Auths[host]
		if !ok {
			return nil, fmt.Errorf("destination dockerConfig %s has no auths entry for %s", dockerConfig, host)
		}
		raw, err := base64.StdEncoding.DecodeString(a.Auth)
		u, p, found := strings.Cut(string(raw), ":")
		if err != nil || !found {
			return nil, fmt.Errorf("destination dockerConfig %s: the auth of %s is not base64 user:password", dockerConfig, host)
		}
		return &authn.Basic{Username: u, Password: p}, nil
	}
	return authn.Anonymous, nil
}
