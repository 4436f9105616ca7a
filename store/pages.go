package store

import (
	"bytes"
	"context"

	"github.com/cockroachdb/pebble/v2"
)

// This file reads listings a page at a time: each call seeks to where the
// last page ended and reads only the keys of its page, so a page costs
// the same in a store of a thousand repositories as in one of a million.

// seekPage calls fn for up to n keys with prefix p after the key p+after
// (from the first when after is ""); fn gets the key without the prefix.
// more reports whether another key follows.
func (s *Store) seekPage(ctx context.Context, p []byte, after string, n int, fn func(k []byte)) (more bool, err error) {
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: p, UpperBound: upperBound(p)})
	if err != nil {
		return false, err
	}
	defer it.Close()
	ok := it.First()
	if after != "" {
		// The smallest key after p+after: p+after+0x00.
		ok = it.SeekGE(append(append(append([]byte(nil), p...), after...), 0))
	}
	for i := 0; ok; ok = it.Next() {
		if i == n {
			return true, it.Error()
		}
		fn(it.Key()[len(p):])
		i++
	}
	return false, it.Error()
}

// RepositoriesPage returns up to n local repository names after after
// (exclusive; "" for the first page), sorted, and whether more follow.
func (s *Store) RepositoriesPage(ctx context.Context, after string, n int) ([]string, bool, error) {
	var out []string
	more, err := s.seekPage(ctx, prefixRepo, after, n, func(k []byte) { out = append(out, string(k)) })
	return out, more, err
}

// TagsPage returns up to n tags of repo in namespace ns after after
// (exclusive; "" for the first page), sorted, and whether more follow.
func (s *Store) TagsPage(ctx context.Context, ns, repo, after string, n int) ([]string, bool, error) {
	var out []string
	more, err := s.seekPage(ctx, tagPrefix(ns, repo), after, n, func(k []byte) { out = append(out, string(k)) })
	return out, more, err
}

// ImageRepositoriesPage returns up to n repositories holding image records,
// after after (exclusive; the zero key for the first page), in the order
// of their encoding (every cached repository before every local one), and
// whether more follow. cached limits it to cached repositories. It seeks
// once per repository, past that repository's records, so its cost is the
// page's, not the store's.
func (s *Store) ImageRepositoriesPage(ctx context.Context, after RepoKey, cached bool, n int) ([]RepoKey, bool, error) {
	lower, upper := prefixImage, upperBound(prefixImage)
	if cached {
		lower = join(prefixImage, cachedMark)
		upper = upperBound(lower)
	}
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, false, err
	}
	defer it.Close()
	ok := it.First()
	if after != (RepoKey{}) {
		// Past every record of after: its keys are img/<enc>\x00<digest>.
		ok = it.SeekGE(append(join(prefixImage, after.Encode()), 1))
	}
	var out []RepoKey
	for ok {
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		enc, _, found := bytes.Cut(it.Key()[len(prefixImage):], []byte{0})
		if !found {
			ok = it.Next() // not an image record
			continue
		}
		if len(out) == n {
			return out, true, it.Error()
		}
		rk, err := ParseRepoKey(string(enc))
		if err != nil {
			return nil, false, err
		}
		out = append(out, rk)
		ok = it.SeekGE(append(join(prefixImage, string(enc)), 1))
	}
	return out, false, it.Error()
}

// CountImages returns how many image records repo has.
func (s *Store) CountImages(ctx context.Context, repo RepoKey) (int, error) {
	n := 0
	err := s.scan(ctx, append(join(prefixImage, repo.Encode()), 0), func(_, _ []byte) error {
		n++
		return nil
	})
	return n, err
}

// CachedUpstreams returns the upstream rules that have cached repositories
// holding image records, sorted; it seeks once per rule.
func (s *Store) CachedUpstreams(ctx context.Context) ([]string, error) {
	lower := join(prefixImage, cachedMark)
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: upperBound(lower)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []string
	for ok := it.First(); ok; {
		up, _, found := bytes.Cut(it.Key()[len(lower):], []byte("/"))
		if !found {
			ok = it.Next()
			continue
		}
		out = append(out, string(up))
		// Past every key of this rule: img/\x01<up>/ ... < img/\x01<up>0.
		ok = it.SeekGE(append(join(prefixImage, cachedMark+string(up)), '/'+1))
	}
	return out, it.Error()
}
