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
	t.Run("row policies and user tags", func(t *testing.T) { rowPolicies(t, f) })
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

func rowPolicies(t *testing.T, f Factory) {
	s, other := f(t)
	policy := &credentials.RowPolicy{DB: "default", Collection: "docs", Name: "tenant_rows", Actions: []string{"Query", "Search", "Insert"},
		Roles: []string{"tenant"}, UsingExpr: `tenant == $current_user_tags['tenant']`, CheckExpr: `tenant == $current_user_tags['tenant']`,
		Description: "each tenant its rows"}
	update(t, s, func(set *credentials.Set) error {
		set.PutRole(&credentials.Role{Name: "tenant"})
		set.PutUser(&credentials.User{Name: "alice", PasswordHash: hash, Roles: []string{"tenant"}, Tags: map[string]string{"tenant": "acme", "region": "eu"}})
		set.PutUser(&credentials.User{Name: "bob", PasswordHash: hash, Tags: map[string]string{"tenant": "globex"}})
		set.PutRowPolicy(policy)
		return nil
	})
	view := fresh(t, other)
	got, ok := view.RowPolicy(policy.Key())
	if !ok || got.UsingExpr != policy.UsingExpr || got.CheckExpr != policy.CheckExpr || len(got.Actions) != 3 || got.Roles[0] != "tenant" || got.Description != policy.Description {
		t.Fatalf("the policy did not come back whole: %+v", got)
	}
	if u, _ := view.User("alice"); u.Tags["tenant"] != "acme" || u.Tags["region"] != "eu" {
		t.Fatalf("alice's tags: %v", u.Tags)
	}
	if users := view.UsersWithTag("tenant", "acme"); len(users) != 1 || users[0] != "alice" {
		t.Fatalf("users with tenant=acme: %v", users)
	}
	// The rules hold in every store: a policy naming a role that does not
	// exist, and a tag key a policy could not name, are refused.
	for name, bad := range map[string]func(*credentials.Set) error{
		"unknown role": func(set *credentials.Set) error {
			p := *policy
			p.Name, p.Roles = "other", []string{"nobody"}
			set.PutRowPolicy(&p)
			return nil
		},
		"tag key with a quote": func(set *credentials.Set) error {
			u, _ := set.User("bob")
			u.Tags["it's"] = "x"
			return nil
		},
	} {
		if err := s.Update(context.Background(), bad); err == nil {
			t.Fatalf("%s: stored", name)
		}
	}
	// Dropping the role takes it out of the policy, which then applies to
	// nobody; dropping the policy removes it.
	update(t, s, func(set *credentials.Set) error { set.DeleteRole("tenant"); return nil })
	if got, _ := fresh(t, other).RowPolicy(policy.Key()); got == nil || len(got.Roles) != 0 {
		t.Fatalf("after dropping its role the policy is %+v", got)
	}
	update(t, s, func(set *credentials.Set) error {
		set.DeleteRowPolicy(policy.Key())
		u, _ := set.User("alice")
		delete(u.Tags, "region")
		return nil
	})
	view = fresh(t, other)
	if _, ok := view.RowPolicy(policy.Key()); ok {
		t.Fatal("the dropped policy is still there")
	}
	if u, _ := view.User("alice"); len(u.Tags) != 1 {
		t.Fatalf("alice's tags after deleting one: %v", u.Tags)
	}
}
