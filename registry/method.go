package registry

import "net/http"

// MethodOther names, in logs, metrics and the audit log, a method the
// registry API does not serve.
const MethodOther = "OTHER"

// MethodName is how a request's method is kept where it outlives the
// request (RequestInfo, the request log, metric labels): one of the
// methods the API serves, or MethodOther. The client picks the method,
// and any token up to the header limit (1 MB) is valid HTTP, so a method
// kept as sent would let one client grow a metric series or a log line
// per request. The constants returned hold no part of the request.
func MethodName(m string) string {
	switch m {
	case http.MethodGet:
		return http.MethodGet
	case http.MethodHead:
		return http.MethodHead
	case http.MethodPut:
		return http.MethodPut
	case http.MethodPost:
		return http.MethodPost
	case http.MethodPatch:
		return http.MethodPatch
	case http.MethodDelete:
		return http.MethodDelete
	case http.MethodOptions:
		return http.MethodOptions
	}
	return MethodOther
}
