package store

// Key layout of the pebble database. Every key starts with a short prefix
// naming its kind; integers are big-endian so that keys and values sort and
// compare as bytes. Strings inside keys are separated by 0x00, which cannot
// occur in repository names, tags or digests.
//
//	tag/<namespace>\x00<repo>\x00<tag>   -> fetchedAt (8, unix ns) | digest [| 0x00 | policy]
//	    A tag of a repository. namespace and repo are a RepoKey's Upstream
//	    ("" for a local repository) and Name. fetchedAt is when the upstream
//	    last confirmed the mapping (the TTL counts from it); policy, for a
//	    cached tag, names the rule's freshness policy it was confirmed
//	    under ("tagPolicies[1]", "ttl"; absent in older records).
//	man/<digest>                        -> len(mediaType) (2) | mediaType | body
//	                                       or 0xff 0xff 0x01 | wrapped data key | nonce | sealed record
//	    A verified manifest, stored whole (manifests are at most a few MiB);
//	    encrypted (the second form, crypt_manifest.go) when encryption at
//	    rest covers a repository it was stored for, and from then on.
//	    The media type is the first writer's; a repository reads its own
//	    from its img/ record (records of older versions have none: then
//	    this one is used). Rewriting the record never changes the type.
//	blb/<digest>                        -> size (8) | createdAt (8, unix ns) | flags (1)
//	                                           [| 0x01 | file id (16) | wrapped data key (68)]
//	    A committed blob; the tail is there when it is encrypted: the id
//	    in its file's header and its data key wrapped by the master key
//	    (key fingerprint (8) | nonce (12) | sealed key (48), crypt.go).
//	    An encrypted blob's bytes live in <hex>.enc instead of <hex>.
//	    It is visible only where lnk/ or org/ says so
//	    (Store.Visible); the flags byte is unused (older versions marked
//	    pulled-through blobs public there, which is now ignored). Its bytes
//	    live in blobs/<alg>/<2 hex>/<hex> under the data directory; the key
//	    is written only after the file is renamed into place (see
//	    docs/design.md).
//	org/<digest>\x00<upstream rule>      -> at (8)
//	    The blob was fetched from a rule without credentials: every cached
//	    repository of that rule sees it. Content a rule fetches with
//	    credentials gets no such record and stays visible only to the
//	    cached repository it was fetched for (its lnk/ record). Keyed by
//	    digest first, so deleting a blob drops its records in one range.
//	acc/<digest>                        -> lastAccess (8, unix ns)
//	    When a blob or manifest was last served; written without sync, as
//	    losing the newest access times in a crash is harmless.
//	rep/<repo>                          -> JSON Repository
//	    A local (pushed-to) repository: created-at, tag mutability.
//	img/<repo>\x00<digest>               -> pushedAt (8) | lastPulledAt (8) | mediaType
//	    A manifest that belongs to a repository, with the media type that
//	    repository stored it under (missing in records of older versions).
//	    lastPulledAt is the last pull of this manifest by tag or digest
//	    (not synced, at most once a minute); eviction and lifecycle read a
//	    family's latest (an index's includes its children's, see
//	    reclaim/use.go), so a digest pull counts for every tag and index.
//	    A repository sees a manifest only through this record. <repo>
//	    here, in lnk/ and in ref/ is a RepoKey's encoding: a local
//	    repository's name, or for a cached one 0x01 <upstream rule name>
//	    "/" <name at the upstream>. Names never start with 0x01, so the
//	    two never collide.
//	    Whether a record exists, and its media type, are cached in memory
//	    for manifest GETs (Store.imageType, readcache.go). So every writer
//	    of img/ keys drops the cached copies before its write and again
//	    after its commit: Batch.PutImage and Batch.DeleteImage (pushes,
//	    pulls, deletes of images, eviction, lifecycle expiry) and
//	    PurgeRepository's range delete. The access flusher's rewrites of
//	    lastPulledAt need not: it rewrites only records it finds, under
//	    imageMu, keeping their media type. A writer that skipped it would
//	    leave a deleted image servable.
//	lnk/<repo>\x00<digest>               -> state (1: 1 linked, 0 deleted) | at (8)
//	    A blob of a repository: for a local one uploaded, mounted or
//	    referenced by one of its manifests; for a cached one fetched for it
//	    (a fill or a peer's copy) or confirmed by its upstream. A deleted
//	    link hides a blob that other repositories keep.
//	ref/<repo>\x00<subject>\x00<digest>  -> JSON descriptor
//	    A manifest of repo whose subject is <subject> (the referrers API).
//	upl/<id>                            -> JSON Upload
//	    An open upload session; its bytes are in uploads/<id>.
//	enc/check                           -> JSON {key, file, at}
//	    The fingerprint of the master key the store is encrypted with (and
//	    the file it was read from): a node with another key refuses to
//	    start (encrypt.go).
//	enc/rotation                        -> JSON {key, file, from, fromFile, at}
//	    A key rotation in progress (rotate.go): the next start finishes it.
//	pol/<kind>\x00<name>                -> the caller's record (JSON)
//	    An operator setting made through the admin API (policies.go): kind
//	    "lifecycle" is a lifecycle policy named by the repository or pattern
//	    it applies to; "cacheRule" a pull-through cache rule by its name;
//	    "scanningConfiguration" a repository's image scanning
//	    configuration (put-image-scanning-configuration) by its name.
//	vul/<version (8)><ecosystem>\x00<package>\x00<id> -> JSON entry (package vulndb)
//	    One OSV advisory as it affects one package of one ecosystem, in one
//	    version of the vulnerability database (VulnKey, vulns.go). An import
//	    writes a new version beside the one served, in unsynced batches;
//	    the old version is dropped once the new one is published.
//	vdb/current                          -> version (8)
//	vdb/info/<version (8)>               -> JSON (package vulndb's Info)
//	    The version of the vulnerability database served, and what its
//	    import recorded (sources, counts, times). Both are written in one
//	    synced batch, which publishes a version: a crash before it leaves
//	    the old version served, and the next import drops the half-written
//	    one.
//	scn/<digest>                        -> JSON scan record (package scan), sealed as man/ when encrypted
//	    The latest vulnerability scan of a manifest: its status, the
//	    database version it was matched against, the packages found and
//	    the findings, and the digest of its SBOM. Keyed by digest only:
//	    content is the same in every repository, which reads it through
//	    its own image record (scans.go).

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"time"
)

var (
	prefixTag      = []byte("tag/")
	prefixManifest = []byte("man/")
	prefixBlob     = []byte("blb/")
	prefixAccess   = []byte("acc/")
	prefixRepo     = []byte("rep/")
	prefixImage    = []byte("img/")
	prefixLink     = []byte("lnk/")
	prefixReferrer = []byte("ref/")
	prefixUpload   = []byte("upl/")
	prefixPolicy   = []byte("pol/")
	prefixOrigin   = []byte("org/")
	prefixVuln     = []byte("vul/")
	prefixVulnMeta = []byte("vdb/")
	prefixEnc      = []byte("enc/")
)

func join(prefix []byte, parts ...string) []byte {
	n := len(prefix)
	for _, p := range parts {
		n += len(p) + 1
	}
	k := make([]byte, 0, n)
	k = append(k, prefix...)
	for i, p := range parts {
		if i > 0 {
			k = append(k, 0)
		}
		k = append(k, p...)
	}
	return k
}

func tagKey(ns, repo, tag string) []byte { return join(prefixTag, ns, repo, tag) }

// tagPrefix is the prefix of all tag keys of one repository.
func tagPrefix(ns, repo string) []byte { return append(join(prefixTag, ns, repo), 0) }

func manifestKey(digest string) []byte { return join(prefixManifest, digest) }
func blobKey(digest string) []byte     { return join(prefixBlob, digest) }
func accessKey(digest string) []byte   { return join(prefixAccess, digest) }
func repoKey(name string) []byte       { return join(prefixRepo, name) }
func imageKey(repo RepoKey, digest string) []byte {
	n := len(prefixImage) + len(cachedMark) + len(repo.Upstream) + 1 + len(repo.Name) + 1 + len(digest)
	return appendImageKey(make([]byte, 0, n), repo, digest)
}

// appendImageKey appends imageKey(repo, digest) to dst, allocating
// nothing when dst has room.
func appendImageKey(dst []byte, repo RepoKey, digest string) []byte {
	dst = append(dst, prefixImage...)
	if repo.Cached() {
		dst = append(append(append(dst, cachedMark...), repo.Upstream...), '/')
	}
	dst = append(append(dst, repo.Name...), 0)
	return append(dst, digest...)
}
func linkKey(repo RepoKey, digest string) []byte { return join(prefixLink, repo.Encode(), digest) }
func referrerKey(repo RepoKey, subject, digest string) []byte {
	return join(prefixReferrer, repo.Encode(), subject, digest)
}
func uploadKey(id string) []byte { return join(prefixUpload, id) }
func originKey(digest, rule string) []byte {
	return join(prefixOrigin, digest, rule)
}

// keyCheckKey and rotationKey are the encryption records.
var (
	keyCheckKey = join(prefixEnc, "check")
	rotationKey = join(prefixEnc, "rotation")
)

// originPrefix is the prefix of every origin record of a digest.
func originPrefix(digest string) []byte { return append(join(prefixOrigin, digest), 0) }

// RepoKey names a repository in image, link and referrer records.
type RepoKey struct {
	// Upstream is the upstream rule's name of a cached (pulled-through)
	// repository; empty for a local repository.
	Upstream string
	// Name is the local repository's name, or the repository's name at
	// the upstream ("library/alpine").
	Name string
}

// LocalKey is the key of a local repository.
func LocalKey(name string) RepoKey { return RepoKey{Name: name} }

// CachedKey is the key of a cached repository of an upstream.
func CachedKey(upstream, name string) RepoKey { return RepoKey{Upstream: upstream, Name: name} }

// Cached reports whether k is a cached repository.
func (k RepoKey) Cached() bool { return k.Upstream != "" }

// cachedMark starts the encoding of a cached repository's key.
const cachedMark = "\x01"

// Encode is the key's form inside store keys (see the layout above).
func (k RepoKey) Encode() string {
	if k.Cached() {
		return cachedMark + k.Upstream + "/" + k.Name
	}
	return k.Name
}

// String is the key for people: the name, or upstream:name.
func (k RepoKey) String() string {
	if k.Cached() {
		return k.Upstream + ":" + k.Name
	}
	return k.Name
}

// ParseRepoKey reads what Encode wrote.
func ParseRepoKey(s string) (RepoKey, error) {
	rest, cached := strings.CutPrefix(s, cachedMark)
	if !cached {
		if s == "" {
			return RepoKey{}, fmt.Errorf("repository key is empty")
		}
		return RepoKey{Name: s}, nil
	}
	up, name, ok := strings.Cut(rest, "/")
	if !ok || up == "" || name == "" {
		return RepoKey{}, fmt.Errorf("cached repository key %q is not <upstream>/<name>", rest)
	}
	return RepoKey{Upstream: up, Name: name}, nil
}

// upperBound returns the smallest key greater than every key with prefix p.
func upperBound(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

// zeroTime stands for the zero time.Time, whose UnixNano overflows; it is
// the earliest representable instant, which no real record carries.
const zeroTime = math.MinInt64

// putTime appends t as big-endian unix nanoseconds.
func putTime(b []byte, t time.Time) []byte {
	v := int64(zeroTime)
	if !t.IsZero() {
		v = t.UnixNano()
	}
	return binary.BigEndian.AppendUint64(b, uint64(v))
}

// getTime reads what putTime wrote.
func getTime(b []byte) time.Time {
	v := int64(binary.BigEndian.Uint64(b))
	if v == zeroTime {
		return time.Time{}
	}
	return time.Unix(0, v)
}
