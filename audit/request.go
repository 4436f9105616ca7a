package audit

import (
	"net/http"
	"time"

	"berth/registry"
)

// Action names a registry request with ECR's API action names.
func Action(info registry.RequestInfo) string {
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

// FromRequest turns a finished registry request into an audit event. The
// /v2/ ping is a login (GetAuthorizationToken) when it carried credentials
// and is left out otherwise. A failed login records the user name it
// presented; a request whose backend crashed has result "crashed".
func FromRequest(info registry.RequestInfo, now time.Time) (Event, bool) {
	action := Action(info)
	if info.Kind == registry.KindBase && (info.Principal != "" || info.User != "") {
		action = "GetAuthorizationToken"
	}
	if action == "" {
		return Event{}, false
	}
	result := "success"
	switch {
	case info.Crashed:
		result = "crashed"
	case info.Status >= 400:
		result = "failure"
		if info.Code != "" {
			result = info.Code
		}
	}
	// The canonical name, as policies name the repository; a request
	// that did not resolve (an unknown ns) keeps the name it asked for.
	repo := info.Repo.Target.Name
	if repo == "" {
		repo = info.Repo.String()
	}
	e := Event{
		Time: now.UTC(), Principal: info.Principal, User: info.User, SourceIP: info.Client, Action: action,
		Repository: repo, Reference: info.Reference, Result: result, Status: info.Status, Bytes: info.Bytes,
	}
	if e.Principal == "" {
		e.Principal = "anonymous"
	}
	if registry.IsDigest(info.Reference) {
		e.Digest = info.Reference
	}
	return e, true
}
