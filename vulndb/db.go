// Package vulndb is the node's offline vulnerability database: OSV
// advisories imported from OSV's per-ecosystem zip dumps or directories of
// OSV JSON, indexed in the store by (ecosystem, package) and versioned, and
// matched against installed packages by each ecosystem's version rules.
package vulndb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"berth/store"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// ErrNoDatabase is returned by Match and Describe while no database was
// ever imported.
var ErrNoDatabase = errors.New("no vulnerability database imported: run berth import-vulndb or set scanning.vulnDB")

// Package is one installed package found in an image.
type Package struct {
	// Ecosystem is the OSV ecosystem as the extractor reports it:
	// "Debian:12", "Alpine:v3.20", "Go", "npm", "PyPI", "Maven",
	// "crates.io", "RubyGems", "Red Hat", ... It is matched exactly
	// (case and release suffix).
	Ecosystem string
	Name      string
	Version   string
}

// Vuln is one advisory that affects a package version.
type Vuln struct {
	ID      string   `json:"id"`
	Aliases []string `json:"aliases,omitempty"`
	Summary string   `json:"summary,omitempty"`
	// Severity is one of ECR's levels: CRITICAL, HIGH, MEDIUM, LOW,
	// INFORMATIONAL, UNDEFINED.
	Severity string `json:"severity"`
	// FixedVersion is the lowest fixed version above the installed one,
	// "" if none.
	FixedVersion string `json:"fixedVersion,omitempty"`
	// URI is a link from the record (its ADVISORY reference, else a WEB
	// one), "" if none.
	URI string `json:"uri,omitempty"`
}

// Info describes the database served.
type Info struct {
	// Version counts imports: each one publishes the next.
	Version    uint64    `json:"version"`
	ImportedAt time.Time `json:"importedAt"`
	// ImportSeconds is how long the import took.
	ImportSeconds float64 `json:"importSeconds"`
	// Sources are the names of the files imported (zip dumps, JSON files
	// or the directories that held them).
	Sources []string `json:"sources"`
	// Fingerprint identifies the files of a path import (names, sizes,
	// modification times); empty for an upload.
	Fingerprint string `json:"fingerprint,omitempty"`
	// Records counts the records indexed; Ecosystems counts them per
	// ecosystem (a record affecting packages of two ecosystems counts in
	// both).
	Records    int            `json:"records"`
	Ecosystems map[string]int `json:"ecosystems"`
	// Withdrawn counts records skipped as withdrawn; Duplicates records
	// skipped because a source before them had the same id.
	Withdrawn  int `json:"withdrawn"`
	Duplicates int `json:"duplicates"`
	// Newest is the latest modification time of a record; AgeSeconds is
	// how old that is (set by Describe).
	Newest     time.Time `json:"newest"`
	AgeSeconds float64   `json:"ageSeconds"`
}

// Options configure a DB.
type Options struct {
	Store *store.Store
	// Registerer, when set, takes the database's metrics.
	Registerer prometheus.Registerer
	Logger     *zap.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// TempDir holds uploaded zip dumps while they are read (zip needs
	// random access); default: the store's tmp directory.
	TempDir string
}

// DB is the vulnerability database of a node.
type DB struct {
	o   Options
	log *zap.Logger
	m   *dbMetrics

	// mu guards the version served. Match holds it for reading while it
	// reads a version; publishing a new one takes it for writing, so the
	// old version is dropped only once no Match reads it.
	mu      sync.RWMutex
	version uint64
	info    Info

	// importMu runs one import at a time.
	importMu sync.Mutex

	subMu sync.Mutex
	subs  []chan Info
}

// Open reads the version the store serves, if any. Versions a crash left
// half-written are dropped by the next import.
func Open(ctx context.Context, o Options) (*DB, error) {
	if o.Store == nil {
		return nil, errors.New("vulndb: no store")
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.TempDir == "" {
		o.TempDir = o.Store.Dir() + "/tmp"
	}
	db := &DB{o: o, log: o.Logger}
	version, raw, err := o.Store.CurrentVuln(ctx)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("read the vulnerability database: %w", err)
	default:
		if err := json.Unmarshal(raw, &db.info); err != nil {
			return nil, fmt.Errorf("vulnerability database version %d: corrupt info: %w", version, err)
		}
		db.version = version
	}
	db.m = newMetrics(o.Registerer, db)
	return db, nil
}

// Describe returns what the database served holds, or ErrNoDatabase.
func (db *DB) Describe(ctx context.Context) (Info, error) {
	db.mu.RLock()
	info, version := db.info, db.version
	db.mu.RUnlock()
	if version == 0 {
		return Info{}, ErrNoDatabase
	}
	info.AgeSeconds = db.age(info)
	return info, nil
}

// age is how old the newest record of info is, in seconds.
func (db *DB) age(info Info) float64 {
	if info.Newest.IsZero() {
		return 0
	}
	return db.o.Now().Sub(info.Newest).Seconds()
}

// Subscribe returns a channel that receives the Info of each newly
// published version. Imports never wait for a receiver: a receiver that
// is behind finds only the latest version pending.
func (db *DB) Subscribe() <-chan Info {
	ch := make(chan Info, 1)
	db.subMu.Lock()
	db.subs = append(db.subs, ch)
	db.subMu.Unlock()
	return ch
}

func (db *DB) notify(info Info) {
	db.subMu.Lock()
	defer db.subMu.Unlock()
	for _, ch := range db.subs {
		select {
		case <-ch: // drop the stale pending version
		default:
		}
		select {
		case ch <- info:
		default:
		}
	}
}
