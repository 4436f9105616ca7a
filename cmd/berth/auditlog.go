package main

import (
	"net/http"
	"path/filepath"
	"time"

	"berth/audit"
	"berth/registry"
)

// AuditConfig configures the audit log.
type AuditConfig struct {
	// Path of the JSON-lines file; empty means <dataDir>/audit/audit.log.
	Path string `yaml:"path"`
	// Disabled turns the audit log off.
	Disabled bool `yaml:"disabled"`
	// MaxBytes rotates the file past this size; Keep rotated files are kept.
	MaxBytes int64 `yaml:"maxBytes"`
	Keep     int   `yaml:"keep"`
}

func (c AuditConfig) path(dataDir string) string {
	if c.Path != "" {
		return c.Path
	}
	return filepath.Join(dataDir, "audit", "audit.log")
}

// auditAction names a registry request with ECR's API action names.
func auditAction(info registry.RequestInfo) string {
	head := info.Method == http.MethodHead
	switch info.Kind {
	case registry.KindManifest:
		switch info.Method {
		case http.MethodPut:
			return "PutImage"
		case http.MethodDelete:
			return "BatchDeleteImage"
		}
		return "BatchGetImage"
	case registry.KindBlob:
		switch {
		case info.Method == http.MethodDelete:
			return "DeleteLayer"
		case head:
			return "BatchCheckLayerAvailability"
		}
		return "GetDownloadUrlForLayer"
	case registry.KindBlobUpload:
		switch {
		case info.Method == http.MethodPost:
			return "InitiateLayerUpload"
		case info.Method == http.MethodPatch:
			return "UploadLayerPart"
		case info.Method == http.MethodPut:
			return "CompleteLayerUpload"
		case info.Method == http.MethodDelete:
			return "AbortLayerUpload"
		}
		return "DescribeLayerUpload"
	case registry.KindTags:
		return "ListImages"
	case registry.KindCatalog:
		return "DescribeRepositories"
	case registry.KindReferrers:
		return "ListReferrers"
	}
	return ""
}

// auditEvent turns a finished request into an audit event; requests that
// touch no content (the /v2/ ping) give ok=false.
func auditEvent(info registry.RequestInfo, now time.Time) (audit.Event, bool) {
	action := auditAction(info)
	if action == "" {
		return audit.Event{}, false
	}
	result := "success"
	if info.Status >= 400 {
		result = "failure"
		if info.Code != "" {
			result = info.Code
		}
	}
	e := audit.Event{
		Time: now.UTC(), Principal: info.Principal, SourceIP: info.Client, Action: action,
		Repository: info.Repo.String(), Reference: info.Reference, Result: result, Status: info.Status, Bytes: info.Bytes,
	}
	if e.Principal == "" {
		e.Principal = "anonymous"
	}
	if registry.IsDigest(info.Reference) {
		e.Digest = info.Reference
	}
	return e, true
}
