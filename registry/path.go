package registry

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"berth/internal/reponame"
)

// Kind says which endpoint of the API a request addresses.
type Kind int

const (
	KindBase       Kind = iota // /v2/
	KindCatalog                // /v2/_catalog
	KindManifest               // /v2/<name>/manifests/<reference>
	KindBlob                   // /v2/<name>/blobs/<digest>
	KindBlobUpload             // /v2/<name>/blobs/uploads/[<id>]
	KindTags                   // /v2/<name>/tags/list
	KindReferrers              // /v2/<name>/referrers/<digest>
)

var kindNames = [...]string{"base", "catalog", "manifest", "blob", "upload", "tags", "referrers"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Repo names a repository the way the client addressed it, and what that
// name resolved to.
type Repo struct {
	// Name is the repository name from the path, validated.
	Name string
	// NS is containerd's ?ns= registry host, empty when absent.
	NS string
	// Target is what Name and NS resolve to. The Server resolves it once
	// per request, before the guard runs, and everything after it (the
	// guard, the backend, the observer) reads it instead of routing again.
	Target Target
}

// Target is what a repository name resolves to: a local repository, or a
// repository of one upstream rule.
type Target struct {
	// Name is the repository's canonical name, the one name it has
	// whichever way a client reached it: policies, tokens, the catalog,
	// pinning, lifecycle and audit all use it. A local repository's is its
	// name; a cached one's is "<rule prefix, or rule name>/<Remote>".
	Name string
	// Upstream is the pull-through rule's name; empty for a local
	// repository.
	Upstream string
	// Remote is the repository's name at the upstream (cached only).
	Remote string
}

// Local says whether the target is a local (pushed-to) repository.
func (t Target) Local() bool { return t.Upstream == "" }

// Resolver resolves repository names. A backend that has this ability
// decides routing; without it every name is a local repository under its
// own name. Resolve returns an *Error (such as 404 NAME_UNKNOWN for an ns
// that nothing mirrors) for a name that cannot be served.
type Resolver interface {
	Resolve(repo Repo) (Target, error)
}

func (r Repo) String() string {
	if r.NS != "" {
		return r.NS + "/" + r.Name
	}
	return r.Name
}

// Route is a parsed request path.
type Route struct {
	Kind      Kind
	Repo      Repo
	Reference string // manifests: tag or digest as sent
	Digest    Digest // blobs, referrers, and manifests by digest
	UploadID  string // uploads with an id
	// MountFrom is the source of a cross-repository mount (POST
	// .../blobs/uploads/?mount=<digest>&from=<name>), resolved with the
	// request's ns; its Name is empty when there is none.
	MountFrom Repo
}

// MaxNameLength bounds a repository name, as distribution does.
const MaxNameLength = reponame.MaxLength

var (
	hostRE     = regexp.MustCompile(`^[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::[0-9]{1,5})?$`)
	uploadIDRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,128}$`)
)

// ValidName reports whether name matches the spec's repository name
// grammar (see reponame.Valid).
func ValidName(name string) bool { return reponame.Valid(name) }

// ValidTag reports whether tag matches the spec's tag grammar,
// [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.
func ValidTag(tag string) bool {
	if len(tag) == 0 || len(tag) > 128 || tag[0] == '.' || tag[0] == '-' {
		return false
	}
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// errInvalidTag marks a manifest reference that is neither a tag nor a digest.
var errInvalidTag = errors.New("reference is neither a valid tag nor a digest")

// ParseRequest is ParsePath for a request. A GET or HEAD of a manifest whose
// reference is neither a valid tag nor a digest asks for something that
// cannot exist, so it is answered 404 MANIFEST_UNKNOWN, as the spec's "not
// found" and the released conformance suite expect; a PUT of such a tag is
// still refused with 400 MANIFEST_INVALID.
func ParseRequest(r *http.Request) (Route, error) {
	rt, err := ParsePath(r.URL)
	if errors.Is(err, errInvalidTag) && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		return Route{}, Errorf(http.StatusNotFound, CodeManifestUnknown,
			"manifest %s is unknown: it is neither a valid tag nor a digest", quoteTrunc(lastSegment(r.URL.Path)))
	}
	return rt, err
}

func lastSegment(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

// ParsePath parses a request URL into a Route. It is the one place where
// names, references, digests and the ns parameter are validated.
func ParsePath(u *url.URL) (Route, error) {
	p := u.Path
	if p == "/v2" || p == "/v2/" {
		return Route{Kind: KindBase}, nil
	}
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return Route{}, Errorf(404, CodeNameUnknown, "path %s is not part of the registry API", quoteTrunc(p))
	}
	if rest == "_catalog" {
		return Route{Kind: KindCatalog}, nil
	}
	ns, err := parseNS(u)
	if err != nil {
		return Route{}, err
	}
	parts := strings.Split(rest, "/")
	n := len(parts)
	var rt Route
	var nameParts []string
	switch {
	case n >= 3 && parts[n-2] == "tags" && parts[n-1] == "list":
		rt.Kind, nameParts = KindTags, parts[:n-2]
	case n >= 4 && parts[n-3] == "blobs" && parts[n-2] == "uploads":
		rt.Kind, nameParts = KindBlobUpload, parts[:n-3]
		if id := parts[n-1]; id != "" {
			if !uploadIDRE.MatchString(id) {
				return Route{}, Errorf(404, CodeBlobUploadUnknown, "upload %s is unknown", quoteTrunc(id))
			}
			rt.UploadID = id
		}
	case n >= 3 && parts[n-2] == "blobs" && parts[n-1] == "uploads":
		rt.Kind, nameParts = KindBlobUpload, parts[:n-2]
	case n >= 3 && parts[n-2] == "manifests":
		rt.Kind, nameParts = KindManifest, parts[:n-2]
		rt.Reference = parts[n-1]
	case n >= 3 && parts[n-2] == "blobs":
		rt.Kind, nameParts = KindBlob, parts[:n-2]
		rt.Reference = parts[n-1]
	case n >= 3 && parts[n-2] == "referrers":
		rt.Kind, nameParts = KindReferrers, parts[:n-2]
		rt.Reference = parts[n-1]
	default:
		return Route{}, Errorf(404, CodeNameUnknown, "path %s is not part of the registry API", quoteTrunc(p))
	}
	name := strings.Join(nameParts, "/")
	if !ValidName(name) {
		return Route{}, ErrNameInvalid("invalid repository name " + quoteTrunc(name))
	}
	rt.Repo = Repo{Name: name, NS: ns}
	switch rt.Kind {
	case KindManifest:
		if IsDigest(rt.Reference) {
			d, err := ParseDigest(rt.Reference)
			if err != nil {
				return Route{}, err
			}
			rt.Digest = d
		} else if !ValidTag(rt.Reference) {
			e := Errorf(http.StatusBadRequest, CodeManifestInvalid, "invalid tag %s", quoteTrunc(rt.Reference))
			e.Err = errInvalidTag
			return Route{}, e
		}
	case KindBlob, KindReferrers:
		d, err := ParseDigest(rt.Reference)
		if err != nil {
			return Route{}, err
		}
		rt.Digest = d
	}
	return rt, nil
}

func parseNS(u *url.URL) (string, error) {
	if u.RawQuery == "" {
		return "", nil
	}
	ns := u.Query().Get("ns")
	if ns == "" {
		return "", nil
	}
	if len(ns) > 255 || !hostRE.MatchString(ns) {
		return "", ErrNameInvalid("invalid ns parameter " + quoteTrunc(ns))
	}
	return strings.ToLower(ns), nil
}
