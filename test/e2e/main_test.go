// Package e2e runs the berth binary against a real upstream registry and
// real clients (crane, skopeo, ctr, dockerd). The whole package runs inside
// a network namespace it creates, with only loopback up, so no client can
// fall back to a public registry.
package e2e

import (
	"testing"

	"berth/test/clients"
)

// TestMain runs the tests in the namespace and removes the berth binary
// they built.
func TestMain(m *testing.M) { clients.MainInNetns(m, removeBinary) }
