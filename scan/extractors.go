package scan

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	cpb "github.com/google/osv-scalibr/binary/proto/config_go_proto"
	"github.com/google/osv-scalibr/extractor"
	"github.com/google/osv-scalibr/extractor/filesystem"
	"github.com/google/osv-scalibr/extractor/filesystem/language/golang/gobinary"
	"github.com/google/osv-scalibr/extractor/filesystem/language/java/pomxml"
	"github.com/google/osv-scalibr/extractor/filesystem/language/javascript/packagelockjson"
	"github.com/google/osv-scalibr/extractor/filesystem/language/python/requirements"
	"github.com/google/osv-scalibr/extractor/filesystem/language/python/wheelegg"
	"github.com/google/osv-scalibr/extractor/filesystem/language/ruby/gemfilelock"
	"github.com/google/osv-scalibr/extractor/filesystem/language/ruby/gemspec"
	"github.com/google/osv-scalibr/extractor/filesystem/language/rust/cargolock"
	"github.com/google/osv-scalibr/extractor/filesystem/os/apk"
	apkmeta "github.com/google/osv-scalibr/extractor/filesystem/os/apk/metadata"
	"github.com/google/osv-scalibr/extractor/filesystem/os/dpkg"
	dpkgmeta "github.com/google/osv-scalibr/extractor/filesystem/os/dpkg/metadata"
	"github.com/google/osv-scalibr/extractor/filesystem/os/rpm"
	rpmmeta "github.com/google/osv-scalibr/extractor/filesystem/os/rpm/metadata"
)

// newExtractors builds osv-scalibr's extractors Berth scans with: OS
// package databases (dpkg, apk, rpm), Go binaries' build info, and the
// lock and metadata files of npm, PyPI, Maven, Cargo and RubyGems. Their
// own file size limits are lifted: the unpacker applies
// scanning.maxFileBytes itself, and counts what it skips.
func newExtractors() ([]filesystem.Extractor, error) {
	cfg := &cpb.PluginConfig{MaxFileSizeBytes: 1 << 62}
	news := []func(*cpb.PluginConfig) (filesystem.Extractor, error){
		dpkg.New, apk.New, rpm.New, gobinary.New, packagelockjson.New,
		wheelegg.New, requirements.New, pomxml.New, cargolock.New,
		gemfilelock.New, gemspec.New,
	}
	out := make([]filesystem.Extractor, 0, len(news))
	for _, n := range news {
		ex, err := n(cfg)
		if err != nil {
			return nil, fmt.Errorf("osv-scalibr extractor: %w", err)
		}
		out = append(out, ex)
	}
	return out, nil
}

// Package is one package found in an image, named as the OSV database
// names it.
type Package struct {
	// Ecosystem is OSV's ("Debian:12", "Alpine:v3.20", "Go", "npm").
	Ecosystem string `json:"ecosystem"`
	Name      string `json:"name"`
	Version   string `json:"version"`
	// Path is the file it was found in.
	Path string `json:"path,omitempty"`
}

var pythonName = regexp.MustCompile(`[-_.]+`)

// epochEcosystems are the rpm ecosystems whose OSV advisories write
// versions with the package's epoch.
var epochEcosystems = map[string]bool{"Red Hat": true, "AlmaLinux": true, "Rocky Linux": true}

// osvPackage names a package as OSV does: a dpkg or apk package by its
// source package, an rpm of the Red Hat family with its epoch, a Python
// one normalized, Go's toolchain as "stdlib".
func osvPackage(p *extractor.Package) Package {
	eco := p.Ecosystem()
	name := p.Name
	switch m := p.Metadata.(type) {
	case *dpkgmeta.Metadata:
		if m.SourceName != "" {
			name = m.SourceName
		}
	case *apkmeta.Metadata:
		if m.OriginName != "" {
			name = m.OriginName
		}
	}
	version := p.Version
	if dm, ok := p.Metadata.(*dpkgmeta.Metadata); ok && dm.SourceVersion != "" {
		version = dm.SourceVersion
	}
	// The extractor gives an rpm's version-release without its epoch; the
	// advisories of the Red Hat family write fixed versions with it
	// ("1:3.0.7-16.el9_2"), so a version without it would compare as
	// epoch 0, before every fix: each such package would be reported
	// vulnerable however new.
	if rm, ok := p.Metadata.(*rpmmeta.Metadata); ok && rm.Epoch > 0 && epochEcosystems[string(eco.Ecosystem)] {
		version = strconv.Itoa(rm.Epoch) + ":" + version
	}
	switch eco.Ecosystem {
	case "Go":
		if name == "go" {
			name = "stdlib"
		}
	case "PyPI":
		name = strings.ToLower(pythonName.ReplaceAllLiteralString(name, "-"))
	}
	return Package{Ecosystem: eco.String(), Name: name, Version: version, Path: packagePath(p)}
}
