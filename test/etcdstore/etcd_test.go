// Package etcdstore tests the etcd credential store against a real etcd,
// embedded on loopback.
package etcdstore

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/authproxy/authproxy/auth"
	"github.com/authproxy/authproxy/credentials"
	"github.com/authproxy/authproxy/credentials/storetest"
	"github.com/authproxy/authproxy/ratelimit"
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
	if err := a.Update(context.Background(), func(s *credentials.Set) error {
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

// cutter is a loopback TCP relay that can cut every connection through it,
// a network partition between one replica and etcd.
type cutter struct {
	lis    net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	cut    bool
}

func newCutter(t *testing.T, target string) *cutter {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{lis: lis, target: strings.TrimPrefix(target, "http://")}
	t.Cleanup(func() { lis.Close(); c.setCut(true) })
	go func() {
		for {
			in, err := lis.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			if c.cut {
				c.mu.Unlock()
				in.Close()
				continue
			}
			out, err := net.Dial("tcp", c.target)
			if err != nil {
				c.mu.Unlock()
				in.Close()
				continue
			}
			c.conns = append(c.conns, in, out)
			c.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
	return c
}

func (c *cutter) url() string { return "http://" + c.lis.Addr().String() }

func (c *cutter) setCut(cut bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = cut
	if cut {
		for _, conn := range c.conns {
			conn.Close()
		}
		c.conns = nil
	}
}

// A replica cut off from etcd while the others write and etcd compacts
// past everything it has seen converges when it is reconnected: it lists
// again rather than resuming a watch from a compacted revision.
func TestCompactionPastAPartitionedReplica(t *testing.T) {
	endpoint := startEtcd(t)
	relay := newCutter(t, endpoint)
	a, b := open(t, endpoint, "/authproxy/"), open(t, relay.url(), "/authproxy/")
	seen, _ := b.Revision()
	relay.setCut(true)
	for i := range 20 {
		if err := a.Update(context.Background(), func(s *credentials.Set) error {
			s.PutUser(&credentials.User{Name: fmt.Sprintf("u%02d", i), PasswordHash: hash})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	head, _ := a.Revision()
	if _, err := cli.Compact(context.Background(), head, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	if rev, _ := b.Revision(); rev != seen || len(b.Current().Users()) != 1 {
		t.Fatalf("the partitioned replica moved: revision %d (was %d), %d users", rev, seen, len(b.Current().Users()))
	}
	relay.setCut(false)
	deadline := time.Now().Add(20 * time.Second)
	for len(b.Current().Users()) != 21 {
		if time.Now().After(deadline) {
			t.Fatalf("after reconnection b has %d users, want 21 (revision seen %d, compacted at %d)", len(b.Current().Users()), seen, head)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if rev, _ := b.Revision(); rev < head {
		t.Fatalf("b at revision %d, below the compaction at %d", rev, head)
	}
}

// The sequence key written before writes named themselves (a bare count)
// still reads; one that is not a count is refused, naming the key, and
// nothing is written.
func TestSequenceKeyFormats(t *testing.T) {
	endpoint := startEtcd(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := open(t, endpoint, "/authproxy/")
	add := func(name string) error {
		return s.Update(ctx, func(set *credentials.Set) error {
			set.PutUser(&credentials.User{Name: name, PasswordHash: hash})
			return nil
		})
	}
	if _, err := cli.Put(ctx, "/authproxy/meta/seq", "7"); err != nil {
		t.Fatal(err)
	}
	if err := add("alice"); err != nil {
		t.Fatalf("a write after a bare count: %v", err)
	}
	got, err := cli.Get(ctx, "/authproxy/meta/seq")
	if err != nil || len(got.Kvs) != 1 || !strings.HasPrefix(string(got.Kvs[0].Value), "8 ") {
		t.Fatalf("the sequence after a bare 7: %v %v", got, err)
	}
	if _, err := cli.Put(ctx, "/authproxy/meta/seq", "seven"); err != nil {
		t.Fatal(err)
	}
	if err := add("bob"); err == nil || !strings.Contains(err.Error(), `key meta/seq: "seven" is not a count of changes`) {
		t.Fatalf("a write after a sequence that is not a count: %v", err)
	}
	if users, _ := cli.Get(ctx, "/authproxy/users/bob"); users.Count != 0 {
		t.Fatal("bob was written although the sequence key is unreadable")
	}
}

// Replicas register under the store's prefix (replicas/) without being
// part of it: a write of the store never deletes their keys, their coming
// and going publishes no new Set, and each sees the others come and go.
func TestReplicaRegistryBesideTheStore(t *testing.T) {
	ep := startEtcd(t)
	s := open(t, ep, "/reg/")
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	var counts [3]atomic.Int64
	var regs [3]*ratelimit.Replicas
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range regs {
		r, err := ratelimit.JoinReplicas(ctx, s.Client(), s.Prefix()+credentials.KeyReplicas, func(n int) { counts[i].Store(int64(n)) }, logger)
		if err != nil {
			t.Fatal(err)
		}
		regs[i] = r
	}
	defer regs[0].Close()
	defer regs[1].Close()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10 s (counts %d %d %d)", what, counts[0].Load(), counts[1].Load(), counts[2].Load())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("three replicas seen by each", func() bool {
		return counts[0].Load() == 3 && counts[1].Load() == 3 && counts[2].Load() == 3
	})
	before := s.Current()
	if err := s.Update(ctx, func(set *credentials.Set) error {
		set.PutUser(&credentials.User{Name: "carol", PasswordHash: hash})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := s.Client().Get(ctx, s.Prefix()+credentials.KeyReplicas, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 3 {
		t.Fatalf("after a write of the store, %d replica keys (%v)", resp.Count, err)
	}
	if s.Current() == before {
		t.Fatal("the write was not published")
	}
	withCarol := s.Current()
	start := time.Now()
	regs[2].Close()
	waitFor("the others count the closed replica out", func() bool { return counts[0].Load() == 2 && counts[1].Load() == 2 })
	t.Logf("a replica that left was counted out in %v", time.Since(start))
	time.Sleep(200 * time.Millisecond)
	if s.Current() != withCarol {
		t.Fatal("a replica leaving published a new Set")
	}
}
