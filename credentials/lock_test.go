package credentials

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Two stores on one file stand for two processes (the proxy and the CLI):
// flock serializes them as it does across processes, so concurrent adds
// from both lose nothing.
func TestConcurrentWritersOfOneFileLoseNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials.yaml")
	a, err := OpenFile(path, FileOptions{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenFile(path, FileOptions{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 40 {
		store := a
		if i%2 == 1 {
			store = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := store.Update(context.Background(), func(s *Set) error {
				s.PutUser(&User{Name: fmt.Sprintf("user_%02d", i), PasswordHash: testArgon})
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	data, _ := os.ReadFile(path)
	set, err := parseFile(data)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(set.Users()); n != 41 {
		t.Fatalf("%d users on disk after 40 concurrent adds and root, want 41", n)
	}
}

// A write goes through the symlinks of a Kubernetes-style layout: the
// links stay, the file they name changes.
func TestWriteGoesThroughSymlinks(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(filepath.Join(dir, "..2026_11_22"), 0o700))
	must(os.WriteFile(filepath.Join(dir, "..2026_11_22", "credentials.yaml"), []byte("version: 1\nusers:\n  - name: root\n    passwordHash: \""+testArgon+"\"\n    roles: [admin]\n"), 0o600))
	must(os.Symlink("..2026_11_22", filepath.Join(dir, "..data")))
	must(os.Symlink("..data/credentials.yaml", filepath.Join(dir, "credentials.yaml")))

	store, err := OpenFile(filepath.Join(dir, "credentials.yaml"), FileOptions{Logger: quiet()})
	must(err)
	must(store.Update(context.Background(), func(s *Set) error { s.PutUser(&User{Name: "alice", PasswordHash: testArgon}); return nil }))

	for _, link := range []string{"credentials.yaml", "..data"} {
		fi, err := os.Lstat(filepath.Join(dir, link))
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("%s is no longer a symlink (%v)", link, err)
		}
	}
	data, _ := os.ReadFile(filepath.Join(dir, "..2026_11_22", "credentials.yaml"))
	if set, err := parseFile(data); err != nil || len(set.Users()) != 2 {
		t.Fatalf("the linked file was not written: %v\n%s", err, data)
	}
}
