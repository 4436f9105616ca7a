package admin

import (
	"encoding/base64"
	"strings"
)

// Paged listings (describe-repositories, list-images) answer as ECR does:
// maxResults (1 to 1000) bounds a page, and an answer with more to come
// carries a nextToken, which the next request sends back. A token is
// opaque to clients: it names the listing it came from and the last entry
// of its page, and the next page starts right after that entry, so
// entries added or removed meanwhile never make a page repeat or skip
// the others. A request with neither maxResults nor nextToken gets the
// whole listing of one repository's images (list-images), and the first
// defaultPage repositories (describe-repositories, with a nextToken when
// there are more, as ECR answers): no request reads every repository of
// the store.

const (
	// defaultPage is a page's size without maxResults (ECR's).
	defaultPage = 100
	tokenMagic  = "berth-page-1"
)

// MaxPage is the largest maxResults a paged listing accepts.
const MaxPage = 1000

// pageSize checks maxResults; paged is false when the request gives
// neither maxResults nor nextToken.
func pageSize(maxResults *int, token string) (n int, paged bool, err error) {
	switch {
	case maxResults != nil && (*maxResults < 1 || *maxResults > MaxPage):
		return 0, false, invalidf("maxResults", "must be between 1 and %d, got %d", MaxPage, *maxResults)
	case maxResults != nil:
		return *maxResults, true, nil
	case token != "":
		return defaultPage, true, nil
	}
	return 0, false, nil
}

// encodeToken is the token of a page of listing kind that ended at the
// entry named by pos.
func encodeToken(kind string, pos ...string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strings.Join(append([]string{tokenMagic, kind}, pos...), "\x00")))
}

// decodeToken returns the position a token of listing kind holds (nil
// for no token): want parts. A token of another listing, or not one this
// API returned, is refused with the reason and what to do.
func decodeToken(kind, token string, want int) ([]string, error) {
	if token == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	parts := strings.Split(string(b), "\x00")
	switch {
	case err != nil || len(parts) < 2 || parts[0] != tokenMagic:
		return nil, invalidf("nextToken", "not a token this API returned; send the nextToken of the previous answer unchanged, or none for the first page")
	case parts[1] != kind || len(parts) != 2+want:
		return nil, invalidf("nextToken", "the token belongs to another listing (another repository, filter or includeCached); send it with the request that returned it, or start again without nextToken")
	}
	return parts[2:], nil
}
