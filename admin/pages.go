package admin

import (
	"context"
	"strconv"

	"berth/reclaim"
	"berth/store"
)

// This file answers the paged forms of describe-repositories and
// list-images (see paging.go).

// repositoriesPage is a page of describe-repositories: the local
// repositories by name, then with includeCached the cached ones in the
// store's order. Each page reads only its own repositories' records.
func (s *Service) repositoriesPage(ctx context.Context, req *DescribeRepositoriesRequest, n int) (*DescribeRepositoriesResponse, error) {
	kind := "repositories"
	if req.IncludeCached {
		kind += "+cached"
	}
	pos, err := decodeToken(kind, req.NextToken, 2)
	if err != nil {
		return nil, err
	}
	phase, after := "local", ""
	if pos != nil {
		phase, after = pos[0], pos[1]
	}
	out := &DescribeRepositoriesResponse{Repositories: []Repository{}}
	if phase == "local" {
		names, more, err := s.o.Store.RepositoriesPage(ctx, after, n)
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			if err := s.addLocal(ctx, out, name, req.IncludeCached); err != nil {
				return nil, err
			}
		}
		if more || (req.IncludeCached && len(names) == n) {
			if more {
				out.NextToken = encodeToken(kind, phase, names[len(names)-1])
			} else if _, any, err := s.o.Store.ImageRepositoriesPage(ctx, store.RepoKey{}, true, 0); err != nil {
				return nil, err
			} else if any {
				out.NextToken = encodeToken(kind, "cached", "")
			}
			return out, nil
		}
		if !req.IncludeCached {
			return out, nil
		}
		phase, after, n = "cached", "", n-len(names)
	}
	if phase != "cached" || !req.IncludeCached {
		return nil, invalidf("nextToken", "not a token this API returned; send the nextToken of the previous answer unchanged, or none for the first page")
	}
	return s.cachedPage(ctx, out, kind, after, n)
}

// addLocal adds local repository name to a page (one deleted meanwhile is
// left out), with its image count when counts is set.
func (s *Service) addLocal(ctx context.Context, out *DescribeRepositoriesResponse, name string, counts bool) error {
	rec, err := s.o.Repos.Repository(ctx, name)
	if isNameUnknown(err) {
		return nil
	}
	if err != nil {
		return err
	}
	r := toRepository(rec)
	if counts {
		c, err := s.o.Store.CountImages(ctx, store.LocalKey(name))
		if err != nil {
			return err
		}
		r.ImageCount = &c
	}
	out.Repositories = append(out.Repositories, r)
	return nil
}

// cachedPage adds up to n cached repositories after the encoded key after.
func (s *Service) cachedPage(ctx context.Context, out *DescribeRepositoriesResponse, kind, after string, n int) (*DescribeRepositoriesResponse, error) {
	var from store.RepoKey
	if after != "" {
		var err error
		if from, err = store.ParseRepoKey(after); err != nil || !from.Cached() {
			return nil, invalidf("nextToken", "not a token this API returned; send the nextToken of the previous answer unchanged, or none for the first page")
		}
	}
	keys, more, err := s.o.Store.ImageRepositoriesPage(ctx, from, true, n)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		c, err := s.o.Store.CountImages(ctx, k)
		if err != nil {
			return nil, err
		}
		out.Repositories = append(out.Repositories, Repository{RepositoryName: s.cachedName(k.Upstream, k.Name),
			SourceUpstream: k.Upstream, ImageCount: &c})
	}
	if more {
		out.NextToken = encodeToken(kind, "cached", keys[len(keys)-1].Encode())
	}
	return out, nil
}

// imagesPage cuts a page of list-images out of its entries (newest push
// first, then by digest, then by tag): the entries after the token's
// position, which names the last entry of the previous page by its push
// time, digest and tag, so images pushed or deleted meanwhile never move
// a page.
func imagesPage(ids []ImageID, pushed []int64, kind, token string, n int) ([]ImageID, string, error) {
	pos, err := decodeToken(kind, token, 3)
	if err != nil {
		return nil, "", err
	}
	i := 0
	if pos != nil {
		at, err := strconv.ParseInt(pos[0], 10, 64)
		if err != nil {
			return nil, "", invalidf("nextToken", "not a token this API returned; send the nextToken of the previous answer unchanged, or none for the first page")
		}
		for i < len(ids) && imageEntryCmp(pushed[i], ids[i], at, ImageID{ImageDigest: pos[1], ImageTag: pos[2]}) <= 0 {
			i++
		}
	}
	page := ids[i:min(i+n, len(ids))]
	next := ""
	if i+n < len(ids) {
		last := i + n - 1
		next = encodeToken(kind, strconv.FormatInt(pushed[last], 10), ids[last].ImageDigest, ids[last].ImageTag)
	}
	return page, next, nil
}

// imageEntryCmp orders list-images' entries: newest push first, then by
// digest, then by tag (an untagged image's one entry first).
func imageEntryCmp(atA int64, a ImageID, atB int64, b ImageID) int {
	switch {
	case atA != atB:
		if atA > atB {
			return -1
		}
		return 1
	case a.ImageDigest != b.ImageDigest:
		if a.ImageDigest < b.ImageDigest {
			return -1
		}
		return 1
	case a.ImageTag != b.ImageTag:
		if a.ImageTag < b.ImageTag {
			return -1
		}
		return 1
	}
	return 0
}

// imageIDs are list-images' entries of images kept by keep, in order,
// with each entry's image's push time.
func imageIDs(images []reclaim.ImageInfo, keep func(reclaim.ImageInfo) bool) ([]ImageID, []int64) {
	ids := []ImageID{}
	var pushed []int64
	for _, im := range images {
		if !keep(im) {
			continue
		}
		at := im.PushedAt.UnixNano()
		if len(im.Tags) == 0 {
			ids, pushed = append(ids, ImageID{ImageDigest: im.Digest}), append(pushed, at)
		}
		for _, t := range im.Tags {
			ids, pushed = append(ids, ImageID{ImageDigest: im.Digest, ImageTag: t}), append(pushed, at)
		}
	}
	return ids, pushed
}
