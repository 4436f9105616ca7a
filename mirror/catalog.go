package mirror

import (
	"context"
	"strings"

	"berth/store"
	"berth/upstream"
)

// CatalogPage lists up to n repositories after last, as Catalog names and
// orders them, reading only what the page needs: the local repositories
// after last, and for each upstream rule with cached repositories, its
// repositories after last (a rule's canonical names share its prefix, so
// each rule's are in the store's order). The sorted streams are merged.
func (m *Mirror) CatalogPage(ctx context.Context, last string, n int) ([]string, bool, error) {
	locals, more, err := m.store.RepositoriesPage(ctx, last, n)
	if err != nil {
		return nil, false, err
	}
	streams := [][]string{locals}
	ups, err := m.store.CachedUpstreams(ctx)
	if err != nil {
		return nil, false, err
	}
	for _, up := range ups {
		names, upMore, err := m.cachedAfter(ctx, up, last, n)
		if err != nil {
			return nil, false, err
		}
		streams = append(streams, names)
		more = more || upMore
	}
	page, left := mergeSorted(streams, n)
	return page, more || left, nil
}

// cachedAfter lists up to n cached repositories of rule up whose
// canonical names come after last.
func (m *Mirror) cachedAfter(ctx context.Context, up, last string, n int) ([]string, bool, error) {
	rule := upstream.Rule{Name: up}
	if u := m.proxy.Router().Upstream(up); u != nil {
		rule = u.Rule
	}
	prefix := upstream.CanonicalName(rule, "")
	from := store.CachedKey(up, "") // from the rule's first repository
	switch {
	case strings.HasPrefix(last, prefix):
		from = store.CachedKey(up, last[len(prefix):])
	case last > prefix:
		return nil, false, nil // every name of the rule is before last
	}
	keys, more, err := m.store.ImageRepositoriesPage(ctx, from, true, n)
	if err != nil {
		return nil, false, err
	}
	var out []string
	for _, k := range keys {
		if k.Upstream != up {
			return out, false, nil // past the rule's repositories
		}
		out = append(out, prefix+k.Name)
	}
	return out, more, nil
}

// mergeSorted merges sorted lists into their first n distinct entries;
// left reports whether entries remain after them.
func mergeSorted(lists [][]string, n int) (out []string, left bool) {
	out = []string{}
	for len(out) < n {
		best := -1
		for i, l := range lists {
			if len(l) > 0 && (best < 0 || l[0] < lists[best][0]) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		v := lists[best][0]
		for i := range lists {
			for len(lists[i]) > 0 && lists[i][0] == v {
				lists[i] = lists[i][1:]
			}
		}
		out = append(out, v)
	}
	for _, l := range lists {
		left = left || len(l) > 0
	}
	return out, left
}
