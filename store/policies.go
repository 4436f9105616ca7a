package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// Kinds of operator settings kept under the pol/ prefix.
const (
	// PolicyLifecycle is a lifecycle policy; its name is the repository
	// name or pattern it applies to.
	PolicyLifecycle = "lifecycle"
	// PolicyCacheRule is a pull-through cache rule created through the
	// admin API; its name is the rule's name.
	PolicyCacheRule = "cacheRule"
	// PolicyRepository is a repository policy (who may pull, push, delete)
	// set through the admin API; its name is the repository or pattern.
	PolicyRepository = "repositoryPolicy"
	// PolicyRevocation records when a user's tokens were last revoked
	// (berth revoke-tokens), by user name.
	PolicyRevocation = "tokenRevocation"
	// PolicyPin is a cached image pinned through the admin API (never
	// evicted); its name is "<upstream rule> <remote repository>@<digest>".
	PolicyPin = "pin"
)

// PolicyEntry is one stored setting.
type PolicyEntry struct {
	Name  string
	Value []byte
}

func policyKey(kind, name string) []byte { return join(prefixPolicy, kind, name) }

func checkPolicyKey(kind, name string) error {
	if kind == "" || name == "" || strings.ContainsRune(kind, 0) || strings.ContainsRune(name, 0) {
		return fmt.Errorf("invalid setting key %q/%q", kind, name)
	}
	return nil
}

// PutPolicy stores (or replaces) an operator setting of a kind under a name.
// The value is the caller's record, usually JSON. It is synced.
func (s *Store) PutPolicy(ctx context.Context, kind, name string, value []byte) error {
	if err := checkPolicyKey(kind, name); err != nil {
		return err
	}
	return s.db.Set(policyKey(kind, name), value, pebble.Sync)
}

// GetPolicy returns a stored setting, or ErrNotFound.
func (s *Store) GetPolicy(ctx context.Context, kind, name string) ([]byte, error) {
	if err := checkPolicyKey(kind, name); err != nil {
		return nil, err
	}
	return s.get(policyKey(kind, name))
}

// DeletePolicy removes a stored setting; ErrNotFound if there is none.
func (s *Store) DeletePolicy(ctx context.Context, kind, name string) error {
	if _, err := s.GetPolicy(ctx, kind, name); err != nil {
		return err
	}
	return s.db.Delete(policyKey(kind, name), pebble.Sync)
}

// ListPolicies returns the settings of a kind, sorted by name.
func (s *Store) ListPolicies(ctx context.Context, kind string) ([]PolicyEntry, error) {
	return s.ListPoliciesPrefix(ctx, kind, "")
}

// ListPoliciesPrefix returns the settings of a kind whose names begin
// with prefix, sorted by name: a read of those entries only, however many
// others the kind has.
func (s *Store) ListPoliciesPrefix(ctx context.Context, kind, prefix string) ([]PolicyEntry, error) {
	if kind == "" || strings.ContainsRune(kind, 0) {
		return nil, fmt.Errorf("invalid setting kind %q", kind)
	}
	if strings.ContainsRune(prefix, 0) {
		return nil, fmt.Errorf("invalid setting name prefix %q", prefix)
	}
	var out []PolicyEntry
	err := s.scan(ctx, append(append(join(prefixPolicy, kind), 0), prefix...), func(k, v []byte) error {
		out = append(out, PolicyEntry{Name: prefix + string(k), Value: bytes.Clone(v)})
		return nil
	})
	return out, err
}

// PurgeRepository removes a local repository: its record and every image
// record, tag, blob link and referrer entry of it, in one synced batch.
// Manifests and blob bytes stay; garbage collection takes those no other
// repository uses. It is ErrNotFound when the repository has no record.
func (s *Store) PurgeRepository(ctx context.Context, name string) error {
	if name == "" || strings.ContainsRune(name, 0) {
		return errors.New("invalid repository name")
	}
	if _, err := s.get(repoKey(name)); err != nil {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Delete(repoKey(name), nil); err != nil {
		return err
	}
	key := LocalKey(name).Encode()
	images := append(join(prefixImage, key), 0)
	for _, p := range [][]byte{
		images,
		tagPrefix("", name),
		append(join(prefixLink, key), 0),
		append(join(prefixReferrer, key), 0),
	} {
		if err := b.DeleteRange(p, upperBound(p), nil); err != nil {
			return err
		}
	}
	s.imageTypes.forget(images) // and again after the commit (readcache.go)
	s.imageMu.RLock()
	err := b.Commit(pebble.Sync)
	s.imageMu.RUnlock()
	s.imageTypes.forget(images)
	if err != nil {
		return err
	}
	s.tags.forget(tagPrefix("", name))
	return nil
}
