// Package integration runs the real authproxy binary between real clients
// (the Milvus Go SDK, raw gRPC, curl) and the fake Milvus backend.
package integration

import (
	"fmt"
	"os"
	"testing"

	"github.com/authproxy/authproxy/test/harness"
)

// TestMain fails the run if any proxy of any test logged a password, a
// token or a hash (every proxy's logs and credential hashes are collected).
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := harness.CheckLogs(); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL:", err)
			code = 1
		}
	}
	os.Exit(code)
}
