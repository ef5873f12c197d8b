package credentials_test

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/authproxy/authproxy/credentials"
	"github.com/authproxy/authproxy/credentials/storetest"
)

// The file store passes the conformance suite every store must pass.
func TestFileStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (credentials.Store, credentials.Store) {
		path := filepath.Join(t.TempDir(), "credentials.yaml")
		opts := credentials.FileOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		a, err := credentials.OpenFile(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		b, err := credentials.OpenFile(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	})
}
