package reclaim

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"strings"
)

// This file is how the passes hold digests: a pass over a large store
// meets every digest of it, so each is a fixed-size key, and the store's
// blobs and manifests are sorted tables of keys that a digest's id
// indexes, not maps of strings.

// dkey is a digest as a fixed-size key: a sha256 digest's 32 bytes, or for
// any other text (a sha512 digest, whatever a manifest lists) the sha256 of
// the whole text, whose spelling digests keeps.
type dkey [32]byte

// digests turns digests into keys and back.
type digests struct {
	other map[dkey]string // the texts that are not a sha256 digest
}

// key is d's key.
func (ds *digests) key(d string) dkey {
	if k, ok := sha256Key(d); ok {
		return k
	}
	k := dkey(sha256.Sum256([]byte(d)))
	if ds.other == nil {
		ds.other = map[dkey]string{}
	}
	ds.other[k] = d
	return k
}

// sha256Key decodes a sha256 digest in lower-case hex.
func sha256Key(d string) (k dkey, ok bool) {
	if len(d) != len("sha256:")+64 || d[:7] != "sha256:" {
		return k, false
	}
	var bad byte
	for i := range k {
		hi, lo := unhex[d[7+2*i]], unhex[d[8+2*i]]
		bad |= hi | lo
		k[i] = hi<<4 | lo&0xf
	}
	return k, bad&0x10 == 0
}

// unhex is the value of a lower-case hex digit, 0x10 for any other byte.
var unhex = func() (t [256]byte) {
	for i := range t {
		switch {
		case i >= '0' && i <= '9':
			t[i] = byte(i - '0')
		case i >= 'a' && i <= 'f':
			t[i] = byte(i - 'a' + 10)
		default:
			t[i] = 0x10
		}
	}
	return t
}()

// digest is k's digest.
func (ds *digests) digest(k dkey) string {
	if d, ok := ds.other[k]; ok {
		return d
	}
	return "sha256:" + hex.EncodeToString(k[:])
}

// compare orders a and b as their digests' texts order.
func (ds *digests) compare(a, b dkey) int {
	_, ao := ds.other[a]
	_, bo := ds.other[b]
	if !ao && !bo {
		return cmpKey(a, b) // the same order as their hex
	}
	return strings.Compare(ds.digest(a), ds.digest(b))
}

func cmpKey(a, b dkey) int {
	for i := 0; i < len(a); i += 8 {
		x, y := binary.BigEndian.Uint64(a[i:]), binary.BigEndian.Uint64(b[i:])
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// table numbers digests: the ones stored (listed once, sorted) are
// 0..len(sorted)-1, found by binary search; any other met later (a
// digest listed but not stored, or stored after the listing) gets the
// next number.
type table struct {
	sorted []dkey
	extra  map[dkey]int32
	extras []dkey
}

// newTable makes a table of the listed keys.
func newTable(listed []dkey) table {
	if !slices.IsSortedFunc(listed, cmpKey) { // only when other digests than sha256 are stored
		slices.SortFunc(listed, cmpKey)
	}
	return table{sorted: slices.CompactFunc(listed, func(a, b dkey) bool { return a == b })}
}

// find returns k's id, and whether it has one.
func (t *table) find(k dkey) (int32, bool) {
	if i, ok := slices.BinarySearchFunc(t.sorted, k, cmpKey); ok {
		return int32(i), true
	}
	i, ok := t.extra[k]
	return i, ok
}

// id returns k's id, numbering it if it has none.
func (t *table) id(k dkey) int32 {
	if i, ok := t.find(k); ok {
		return i
	}
	if t.extra == nil {
		t.extra = map[dkey]int32{}
	}
	i := int32(len(t.sorted) + len(t.extras))
	t.extra[k] = i
	t.extras = append(t.extras, k)
	return i
}

// listed reports whether id is one of the listed keys.
func (t *table) listed(id int32) bool { return int(id) < len(t.sorted) }

func (t *table) key(id int32) dkey {
	if t.listed(id) {
		return t.sorted[id]
	}
	return t.extras[int(id)-len(t.sorted)]
}

func (t *table) len() int { return len(t.sorted) + len(t.extras) }
