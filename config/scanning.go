package config

import (
	"errors"
	"strings"
)

// Scanning configures image scanning against an offline vulnerability
// database (issue #16).
type Scanning struct {
	// VulnDB is an OSV vulnerability database the node imports: an OSV
	// zip dump (all.zip of an ecosystem), an OSV JSON file, or a
	// directory of them (read recursively). It is imported at start when
	// it is newer than the database the store holds, and on a reload
	// (SIGHUP) when it changed. "" imports nothing (berth import-vulndb
	// still can).
	VulnDB string `yaml:"vulnDB"`
}

func (s Scanning) validate() []error {
	var errs []error
	if s.VulnDB != "" && strings.TrimSpace(s.VulnDB) != s.VulnDB {
		errs = append(errs, errors.New("scanning.vulnDB: the path has leading or trailing spaces"))
	}
	return errs
}
