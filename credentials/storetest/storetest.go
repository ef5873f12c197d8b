// Package storetest is the conformance suite of credentials.Store: the same
// test functions run against every implementation (the file store here, a
// shared store later), so that they keep one behaviour.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/authproxy/authproxy/credentials"
)

// Factory returns a new, empty store (root only, as a fresh file has it)
// and a second handle on the same storage, as another process or replica
// would open it.
type Factory func(t *testing.T) (store, other credentials.Store)

// Run runs every conformance test against stores from f.
func Run(t *testing.T, f Factory) {
	t.Run("users and keys", func(t *testing.T) { usersAndKeys(t, f) })
	t.Run("roles, grants and groups", func(t *testing.T) { rbac(t, f) })
	t.Run("a failed update changes nothing", func(t *testing.T) { failedUpdate(t, f) })
	t.Run("a canceled update changes nothing", func(t *testing.T) { canceledUpdate(t, f) })
	t.Run("concurrent updates lose nothing", func(t *testing.T) { concurrent(t, f) })
	t.Run("snapshots are immutable and replaced", func(t *testing.T) { snapshots(t, f) })
}

// hash is a valid argon2id hash with tiny parameters: no test hashes.
const hash = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"

func update(t *testing.T, s credentials.Store, mutate func(*credentials.Set) error) {
	t.Helper()
	if err := s.Update(context.Background(), mutate); err != nil {
		t.Fatal(err)
	}
}

// fresh reloads other and returns its view.
func fresh(t *testing.T, other credentials.Store) *credentials.Set {
	t.Helper()
	if _, err := other.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	return other.Current()
}

func usersAndKeys(t *testing.T, f Factory) {
	s, other := f(t)
	if _, ok := s.Current().User(credentials.RootUser); !ok {
		t.Fatal("a new store has no root")
	}
	digest := credentials.APIKeyDigest("ap_conformance")
	expires := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	update(t, s, func(set *credentials.Set) error {
		set.PutUser(&credentials.User{Name: "alice", PasswordHash: hash, Description: "reads"})
		return set.PutAPIKey(&credentials.APIKey{Name: "ci", User: "alice", Digest: digest, Expires: expires})
	})
	for _, view := range []*credentials.Set{s.Current(), fresh(t, other)} {
		u, ok := view.User("alice")
		k, kok := view.APIKeyByDigest(digest)
		if !ok || u.Description != "reads" || !kok || k.User != "alice" || !k.Expires.Equal(expires) {
			t.Fatalf("alice or her key missing: %+v %+v", u, k)
		}
	}
	update(t, s, func(set *credentials.Set) error { set.DeleteUser("alice"); return nil })
	if _, ok := fresh(t, other).APIKeyByDigest(digest); ok {
		t.Fatal("a deleted user's key survives")
	}
}

func rbac(t *testing.T, f Factory) {
	s, other := f(t)
	update(t, s, func(set *credentials.Set) error {
		set.PutRole(&credentials.Role{Name: "reader"})
		set.PutPrivilegeGroup(&credentials.PrivilegeGroup{Name: "querying", Privileges: []string{"Query", "Search"}})
		set.PutUser(&credentials.User{Name: "alice", PasswordHash: hash, Roles: []string{"reader"}})
		set.PutGrant(&credentials.Grant{Role: "reader", Object: "Collection", ObjectName: "books", DB: "default", Privilege: "Search", Grantor: "root"})
		set.PutGrant(&credentials.Grant{Role: "reader", Object: "Global", ObjectName: "*", DB: "*", Privilege: "querying", Grantor: "root"})
		return nil
	})
	view := fresh(t, other)
	if _, ok := view.Role("reader"); !ok || len(view.GrantsOf("reader")) != 2 || len(view.UsersOf("reader")) != 1 {
		t.Fatalf("role, grants or binding missing: %d grants, users %v", len(view.GrantsOf("reader")), view.UsersOf("reader"))
	}
	if g, ok := view.PrivilegeGroup("querying"); !ok || len(g.Privileges) != 2 {
		t.Fatal("privilege group missing")
	}
	// Rules hold in every store: a binding to a missing role is refused.
	err := s.Update(context.Background(), func(set *credentials.Set) error {
		u, _ := set.User("alice")
		u.Roles = append(u.Roles, "writer")
		return nil
	})
	if err == nil {
		t.Fatal("a binding to a role that does not exist was stored")
	}
	update(t, s, func(set *credentials.Set) error { set.DeleteRole("reader"); return nil })
	view = fresh(t, other)
	if len(view.GrantsOf("reader")) != 0 || len(view.UsersOf("reader")) != 0 {
		t.Fatal("dropping a role left its grants or bindings")
	}
}

func failedUpdate(t *testing.T, f Factory) {
	s, other := f(t)
	before := s.Current()
	refused := errors.New("refused by mutate")
	err := s.Update(context.Background(), func(set *credentials.Set) error {
		set.PutUser(&credentials.User{Name: "ghost", PasswordHash: hash})
		return refused
	})
	if !errors.Is(err, refused) {
		t.Fatalf("mutate's error: %v", err)
	}
	if s.Current() != before {
		t.Fatal("a refused update published a new snapshot")
	}
	if _, ok := fresh(t, other).User("ghost"); ok {
		t.Fatal("a refused update reached the storage")
	}
}

func canceledUpdate(t *testing.T, f Factory) {
	s, other := f(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Update(ctx, func(set *credentials.Set) error {
		set.PutUser(&credentials.User{Name: "late", PasswordHash: hash})
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("an update with a canceled context: %v, want context.Canceled", err)
	}
	if _, ok := fresh(t, other).User("late"); ok {
		t.Fatal("a canceled update reached the storage")
	}
}

// Writers through two handles (two processes, two replicas) lose nothing.
func concurrent(t *testing.T, f Factory) {
	s, other := f(t)
	var wg sync.WaitGroup
	for i := range 20 {
		h := s
		if i%2 == 1 {
			h = other
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := h.Update(context.Background(), func(set *credentials.Set) error {
				set.PutUser(&credentials.User{Name: fmt.Sprintf("user_%02d", i), PasswordHash: hash})
				return nil
			}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := len(fresh(t, s).Users()); n != 21 {
		t.Fatalf("%d users after 20 concurrent creates and root, want 21", n)
	}
}

// A snapshot never changes once published; an update publishes a new one,
// which is how caches (verifications, decisions) know to look again.
func snapshots(t *testing.T, f Factory) {
	s, _ := f(t)
	first := s.Current()
	update(t, s, func(set *credentials.Set) error {
		set.PutUser(&credentials.User{Name: "alice", PasswordHash: hash})
		return nil
	})
	if _, ok := first.User("alice"); ok {
		t.Fatal("an update changed a published snapshot")
	}
	if s.Current() == first {
		t.Fatal("an update did not publish a new snapshot")
	}
}
