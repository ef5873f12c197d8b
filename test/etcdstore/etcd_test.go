// Package etcdstore tests the etcd credential store against a real etcd,
// embedded on loopback.
package etcdstore

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/authproxy/authproxy/credentials"
	"github.com/authproxy/authproxy/credentials/storetest"
	"github.com/authproxy/authproxy/test/harness"
)

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
	const hash = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"
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
