// Package clients is an end-to-end test harness that drives REAL container
// clients (containerd via `ctr`, and dockerd via the `docker` CLI) against an
// OCI distribution registry.
//
// Everything runs inside a private network (and mount) namespace that the
// test binary creates for itself (see MainInNetns): only loopback exists
// there, so no client can ever reach another host, and any fallback to a
// public registry fails immediately.
//
// Typical use from another package:
//
//	func TestMain(m *testing.M) { clients.MainInNetns(m) }
//
//	func TestPull(t *testing.T) {
//		clients.RequireIsolatedNetns(t)
//		srv := httptest.NewServer(handler) // listens on 127.0.0.1
//		hosts := clients.WriteHostsDir(t, srv.URL, "docker.io")
//		ctrd := clients.StartContainerd(t)
//		dgst, err := clients.CtrPull(t, ctrd.Address, hosts, "docker.io/library/alpine:latest")
//		...
//		d := clients.StartDockerd(t, clients.DockerdOptions{Mirrors: []string{srv.URL}})
//		dgst, err = clients.DockerPull(t, d.Socket, "alpine:latest")
//	}
//
// The helpers refuse to start any daemon outside the isolated namespace.
package clients
