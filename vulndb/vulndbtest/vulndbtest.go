// Package vulndbtest writes small OSV databases for the tests of the
// packages above vulndb (the node, the admin API, the client, scanning).
package vulndbtest

import (
	"archive/zip"
	"bytes"
	"fmt"
)

// Record is an OSV record of one package: versions from introduced "0" up
// to fixed are affected, in a range of rangeType (SEMVER or ECOSYSTEM).
func Record(id, ecosystem, name, rangeType, fixed string) string {
	return fmt.Sprintf(`{"id": %q, "modified": "2024-01-01T00:00:00Z",
  "affected": [{"package": {"ecosystem": %q, "name": %q},
    "ranges": [{"type": %q, "events": [{"introduced": "0"}, {"fixed": %q}]}]}]}`, id, ecosystem, name, rangeType, fixed)
}

// Zip is a zip dump, as OSV publishes one per ecosystem: each record as
// <id>.json (files maps ids to records).
func Zip(records map[string]string) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for id, rec := range records {
		w, err := zw.Create(id + ".json")
		if err != nil {
			panic(err) // writes to memory do not fail
		}
		w.Write([]byte(rec))
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}
