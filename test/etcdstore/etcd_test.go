// Package etcdstore tests the etcd credential store against a real etcd,
// embedded on loopback.
package etcdstore

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/authproxy/authproxy/auth"
	"github.com/authproxy/authproxy/credentials"
	"github.com/authproxy/authproxy/credentials/storetest"
	"github.com/authproxy/authproxy/test/harness"
)

// hash is a valid argon2id hash with tiny parameters: no test hashes.
const hash = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"

func startEtcd(t testing.TB) string { return harness.StartEtcd(t).URL }

func open(t testing.TB, endpoint, prefix string) *credentials.EtcdStore {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := credentials.OpenEtcd(ctx, credentials.EtcdOptions{
		Endpoints: []string{endpoint}, Prefix: prefix,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The etcd store passes the suite the file store passes.
func TestEtcdStoreConformance(t *testing.T) {
	endpoint := startEtcd(t)
	n := 0
	storetest.Run(t, func(t *testing.T) (credentials.Store, credentials.Store) {
		n++
		prefix := fmt.Sprintf("/authproxy-conformance-%d/", n)
		return open(t, endpoint, prefix), open(t, endpoint, prefix)
	})
}

// A change made through one replica reaches another through its watch,
// without a reload.
func TestChangesReachOtherReplicasByWatch(t *testing.T) {
	endpoint := startEtcd(t)
	a, b := open(t, endpoint, "/authproxy/"), open(t, endpoint, "/authproxy/")
	start := time.Now()
	if err := a.Update(func(s *credentials.Set) error {
		s.PutUser(&credentials.User{Name: "alice", PasswordHash: hash})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Current().User("alice"); !ok {
		t.Fatal("the writer does not read its own write")
	}
	for {
		if _, ok := b.Current().User("alice"); ok {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatal("the other replica did not see the change within 1 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("replicated in %v", time.Since(start))
}

// Compactions in the middle of a stream of changes leave a following
// replica converged, and a list after them works. (The resume path itself,
// a watch restarted from a compacted revision, lists again by design: the
// follow loop always lists before it watches; this test does not force a
// watch onto a compacted revision.)
func TestConvergesAcrossCompactions(t *testing.T) {
	endpoint := startEtcd(t)
	a, b := open(t, endpoint, "/authproxy/"), open(t, endpoint, "/authproxy/")
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	for i := range 20 {
		if err := a.Update(func(s *credentials.Set) error {
			s.PutUser(&credentials.User{Name: fmt.Sprintf("u%02d", i), PasswordHash: hash})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if i == 10 {
			rev, _ := a.Revision()
			if _, err := cli.Compact(context.Background(), rev, clientv3.WithCompactPhysical()); err != nil {
				t.Fatal(err)
			}
		}
	}
	rev, _ := a.Revision()
	if _, err := cli.Compact(context.Background(), rev); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(b.Current().Users()) != 21 {
		if time.Now().After(deadline) {
			t.Fatalf("b has %d users after the compactions, want 21", len(b.Current().Users()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := b.Reload(); err != nil {
		t.Fatalf("a list after the compaction: %v", err)
	}
}

// The cost of a cached check does not depend on the store: the verifier
// reads the store's current snapshot, a pointer load, either way.
func BenchmarkCachedCheckEtcdVersusFile(b *testing.B) {
	endpoint := startEtcd(b)
	file, err := credentials.OpenFile(filepath.Join(b.TempDir(), "credentials.yaml"), credentials.FileOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	for name, store := range map[string]credentials.Store{"file": file, "etcd": open(b, endpoint, "/authproxy-bench/")} {
		b.Run(name, func(b *testing.B) {
			v, err := auth.NewVerifier(auth.VerifierOptions{Store: store, CacheSize: 100, CacheTTL: time.Hour, MaxConcurrentHashes: 1})
			if err != nil {
				b.Fatal(err)
			}
			root := auth.Credential{User: "root", Password: "Milvus"}
			if _, err := v.Verify(context.Background(), root, "127.0.0.1"); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(context.Background(), root, "127.0.0.1"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
