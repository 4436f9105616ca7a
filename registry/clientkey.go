package registry

import "context"

// clientKeyCtx is the context key of a request's client key.
type clientKeyCtx struct{}

// clientKey names who makes a request, for per-client limits: "user:<name>"
// for an authenticated user, "ip:<address>" for an anonymous client.
func clientKey(principal, ip string) string {
	if principal != "" {
		return "user:" + principal
	}
	return "ip:" + ip
}

// ClientKey is the client key of the request whose context ctx is, as the
// registry set it before calling the backend: the rate limiter's bucket
// and the owner of the upload sessions the request opens. It is "" for a
// context that did not come through the registry.
func ClientKey(ctx context.Context) string {
	k, _ := ctx.Value(clientKeyCtx{}).(string)
	return k
}

// WithClientKey returns ctx carrying key as its client key; tests and
// callers other than the registry's handler use it to act as a client.
func WithClientKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, clientKeyCtx{}, key)
}
