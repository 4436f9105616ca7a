// Package testport hands out free TCP ports on 127.0.0.1 to the tests that
// start berth processes, which bind them themselves.
package testport

import (
	"net"
	"sync"
	"testing"
)

// handedOut are the ports Free has returned in this test binary: the
// kernel may offer a port again once its probe listener is closed, before
// the process it was meant for binds it, so two listeners of one test (a
// node's gossip and peer addresses, a registry and an admin listener)
// could be given the same port.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// Free returns a free TCP port on 127.0.0.1, never one it returned before
// in this test binary.
func Free(t testing.TB) int {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 1000 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !handedOut.ports[port] {
			handedOut.ports[port] = true
			return port
		}
	}
	t.Fatalf("no port on 127.0.0.1 that was not handed out already, in 1000 tries (%d handed out)", len(handedOut.ports))
	return 0
}
