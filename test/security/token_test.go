package security

import (
	"bufio"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The token endpoint is rate limited like the registry (docs/security.md,
// "Password guessing is slow and cheap to refuse"): every token is signed
// and audited, so anonymous requests past the address's burst get 429 and
// no token. And what the audit log keeps of a client's text is bounded
// ("What happened is on record"): a failed login's 64 KiB user name is
// recorded as its first KiB and its length, so a client cannot write the
// log away with long names.
func TestTokenEndpointIsLimitedAndAuditBounded(t *testing.T) {
	dir := t.TempDir()
	users := writeFile(t, "htpasswd", htpasswd(t, "alice:wonderland"))
	n := startBerthIn(t, dir, "rateLimit:\n  requestsPerSecond: 0.001\n  burst: 5\n"+
		fmt.Sprintf("auth:\n  enabled: true\n  htpasswd: %q\n", users))
	// The start's readiness checks spent some of the address's burst.
	var ok, limited int
	for range 10 {
		switch st, tok := n.token(t, "", "", url.Values{}); {
		case st == http.StatusOK && tok != "":
			ok++
		case st == http.StatusTooManyRequests && tok == "":
			limited++
		default:
			t.Fatalf("anonymous token request: %d", st)
		}
	}
	if ok > 5 || limited < 5 {
		t.Errorf("10 anonymous token requests: %d tokens, %d refused; want at most the burst of 5, then 429", ok, limited)
	}
	if st, tok := n.token(t, "alice", "wonderland", url.Values{}); st != http.StatusOK || tok == "" {
		t.Errorf("alice, charged to her own bucket: %d", st)
	}

	long := "mallory" + strings.Repeat("m", 64<<10)
	if st, _ := n.token(t, long, "guess", url.Values{}); st != http.StatusUnauthorized {
		t.Fatalf("a failed login: %d, want 401", st)
	}
	var line string
	eventually(t, 10*time.Second, "the failed login is in the audit log", func() bool {
		f, err := os.Open(filepath.Join(dir, "audit", "audit.log"))
		if err != nil {
			return false
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"attemptedUser":"mallory`) {
				line = sc.Text()
				return true
			}
		}
		return false
	})
	if len(line) > 4<<10 || !strings.Contains(line, "… (65543 bytes)") {
		t.Errorf("the failed login's record takes %d bytes: %.300s…", len(line), line)
	}
}
