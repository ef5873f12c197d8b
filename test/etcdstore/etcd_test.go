// Package etcdstore tests the etcd credential store against a real etcd,
// embedded on loopback.
package etcdstore

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"

	"github.com/authproxy/authproxy/credentials"
	"github.com/authproxy/authproxy/credentials/storetest"
	"github.com/authproxy/authproxy/test/harness"
)

// startEtcd runs a single-member etcd on loopback and returns its client URL.
func startEtcd(t testing.TB) string {
	t.Helper()
	cfg := embed.NewConfig()
	cfg.Dir = t.TempDir()
	cfg.LogLevel = "error"
	client, _ := url.Parse("http://" + harness.FreeAddr(t))
	peer, _ := url.Parse("http://" + harness.FreeAddr(t))
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	cfg.InitialCluster = cfg.Name + "=" + peer.String()
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		t.Fatal("etcd did not start")
	}
	t.Cleanup(e.Close)
	return client.String()
}

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
