package vulndb

import (
	"context"
	"errors"

	"go.uber.org/zap"
)

// SyncPath imports path (scanning.vulnDB: a file or a directory) when it
// is not what the database serves: when nothing was imported yet, or when
// its files changed (names, sizes, modification times) and the newest of
// them is newer than the import served, so a database an operator
// uploaded later is not replaced by an older file at the next start.
// It reports whether it imported.
func (db *DB) SyncPath(ctx context.Context, path string) (bool, Info, error) {
	fp, newest, err := fingerprint([]string{path})
	if err != nil {
		return false, Info{}, err
	}
	cur, err := db.Describe(ctx)
	switch {
	case errors.Is(err, ErrNoDatabase):
	case err != nil:
		return false, Info{}, err
	case cur.Fingerprint == fp:
		return false, cur, nil
	case !newest.After(cur.ImportedAt):
		db.log.Info("scanning.vulnDB is older than the vulnerability database served; not imported (touch it to import it)",
			zap.String("path", path), zap.Time("modified", newest), zap.Time("served", cur.ImportedAt))
		return false, cur, nil
	}
	info, err := db.ImportPaths(ctx, path)
	if err != nil {
		return false, Info{}, err
	}
	return true, info, nil
}
