package admin

import "berth/upstream"

// endpointHealth is the wire form of a rule's endpoints' health.
func endpointHealth(eps []upstream.EndpointStatus) []EndpointHealth {
	out := make([]EndpointHealth, 0, len(eps))
	for _, e := range eps {
		out = append(out, EndpointHealth{URL: e.URL, Healthy: e.Healthy, SetAsideUntil: timePtr(e.Down),
			ConsecutiveFailures: e.Failures, LastError: e.LastError, LastFailureAt: timePtr(e.LastFail),
			LastSuccessAt: timePtr(e.LastOK), BackoffUntil: timePtr(e.Backoff), Requests: e.Requests})
	}
	return out
}
