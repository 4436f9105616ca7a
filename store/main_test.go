package store

import (
	"bytes"
	"flag"
	"testing"

	"go.uber.org/goleak"
)

// encryptFlag runs the store's tests with encryption at rest on ("local"
// or "all"): make test runs the package once more with -encrypt=all.
var encryptFlag = flag.String("encrypt", "", "run the store tests with encryption at rest: local or all")

// testKey is the master key of the tests (-encrypt and crypt_test.go).
var testKey = bytes.Repeat([]byte{0x42}, KeySize)

// testOptions are the Options stOpen opens with.
func testOptions() Options {
	if *encryptFlag == "" {
		return Options{}
	}
	return Options{Encryption: &Encryption{Key: testKey, KeyFile: "test.key", All: *encryptFlag == "all"}}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
