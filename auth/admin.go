package auth

import (
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"berth/registry"
)

// RequireAdmin lets through only members of group, by Basic credentials
// checked by check (a password or a login token). It guards the admin API
// once auth is on; refusals are the registry's JSON errors. Credentials
// are checked only once the login limits admit the request (see
// registry.Logins; DefaultLoginRate per address).
func RequireAdmin(check TokenAuthenticator, group string, next http.Handler) http.Handler {
	logins := registry.NewLogins(registry.NewLimiter(DefaultLoginRate, DefaultLoginBurst))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if ok {
			hold, err := logins.Hold(remoteIP(r).String(), user, time.Now())
			if err != nil {
				registry.WriteError(w, r, err)
				return
			}
			ok = check.Authenticate(user, pass)
			if ok {
				hold.Succeeded(time.Now())
			} else {
				hold.Failed(time.Now())
			}
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="berth admin"`)
			writeAdminError(w, http.StatusUnauthorized, "UNAUTHORIZED", "the admin API needs an admin's credentials (BERTH_USERNAME, BERTH_PASSWORD)")
			return
		}
		if !slices.Contains(check.Groups(user), group) {
			writeAdminError(w, http.StatusForbidden, "DENIED", "user "+user+" is not in the admin group "+group)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeAdminError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	body, _ := json.Marshal(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
	w.Write(body)
}
