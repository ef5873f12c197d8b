package usermgmt

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authproxy/authproxy/auth"
	"github.com/authproxy/authproxy/credentials"
	"github.com/authproxy/authproxy/rbac"
)

// fakeLocks stands for the verifier's limiter.
type fakeLocks struct{ locks []auth.Lockout }

func (f *fakeLocks) Lockouts() []auth.Lockout { return f.locks }
func (f *fakeLocks) Unlock(user, addr string) bool {
	for i, l := range f.locks {
		if l.User == user && l.Address == addr {
			f.locks = slices.Delete(f.locks, i, i+1)
			return true
		}
	}
	return false
}

// API keys follow the password's rule: a user's own, or UpdateUser on
// that user; a key the caller may not manage reads as one that does not
// exist; the secret is returned once and the store holds its digest.
func TestAPIKeysFollowThePasswordsRule(t *testing.T) {
	s, store, logs := newService(t)
	for _, u := range []string{"alice", "bob"} {
		if err := s.CreateUser(bg, root, u, "P@ssw0rd-"+u, ""); err != nil {
			t.Fatal(err)
		}
	}
	alice := Caller{Principal: rbac.Principal{User: "alice"}, Authenticated: true}
	secret, err := s.CreateAPIKey(bg, alice, "mine", "alice", 24*time.Hour)
	if err != nil || !strings.HasPrefix(secret, "ap_") {
		t.Fatalf("alice's own key: %q %v", secret, err)
	}
	k, ok := store.Current().APIKey("mine")
	if !ok || k.Digest != credentials.APIKeyDigest(secret) || k.Expires.Sub(k.Created) != 24*time.Hour {
		t.Fatalf("stored key: %+v", k)
	}
	if _, err := s.CreateAPIKey(bg, alice, "theirs", "bob", 0); kindOf(err) != KindPermissionDenied {
		t.Fatalf("alice making a key for bob: %v", err)
	}
	if _, err := s.CreateAPIKey(bg, root, "bobs", "bob", 0); err != nil {
		t.Fatalf("root making a key for bob: %v", err)
	}
	if _, err := s.CreateAPIKey(bg, root, "bobs", "bob", 0); kindOf(err) != KindExists {
		t.Fatalf("a second key named bobs: %v", err)
	}
	if got := s.ListAPIKeys(alice); len(got) != 1 || got[0].Name != "mine" {
		t.Fatalf("alice lists %+v, want her key only", got)
	}
	if got := s.ListAPIKeys(root); len(got) != 2 {
		t.Fatalf("root lists %+v, want both", got)
	}
	if _, err := s.RotateAPIKey(bg, alice, "bobs"); kindOf(err) != KindNotFound {
		t.Fatalf("alice rotating bob's key: %v", err)
	}
	if err := s.RevokeAPIKey(bg, alice, "bobs"); kindOf(err) != KindNotFound {
		t.Fatalf("alice revoking bob's key: %v", err)
	}
	rotated, err := s.RotateAPIKey(bg, alice, "mine")
	if err != nil || rotated == secret {
		t.Fatalf("rotate: %v", err)
	}
	if _, ok := store.Current().APIKeyByDigest(credentials.APIKeyDigest(secret)); ok {
		t.Fatal("the old secret is still in the store after a rotation")
	}
	if err := s.RevokeAPIKey(bg, alice, "mine"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), secret) || strings.Contains(logs.String(), rotated) {
		t.Fatal("a key's secret reached the log")
	}
}

func TestLockoutsFollowThePasswordsRule(t *testing.T) {
	s, _, _ := newService(t)
	locks := &fakeLocks{locks: []auth.Lockout{{User: "alice", Address: "10.0.0.1"}, {User: "bob", Address: "10.0.0.2"}, {Address: "10.0.0.3"}}}
	s.locks = locks
	for _, u := range []string{"alice", "bob"} {
		if err := s.CreateUser(bg, root, u, "P@ssw0rd-"+u, ""); err != nil {
			t.Fatal(err)
		}
	}
	alice := Caller{Principal: rbac.Principal{User: "alice"}, Authenticated: true}
	if got := s.Lockouts(alice); len(got) != 1 || got[0].User != "alice" {
		t.Fatalf("alice sees %+v, want her own lockout only", got)
	}
	if got := s.Lockouts(root); len(got) != 3 {
		t.Fatalf("root sees %+v, want all three", got)
	}
	if err := s.Unlock(alice, "bob", "10.0.0.2"); kindOf(err) != KindPermissionDenied {
		t.Fatalf("alice lifting bob's lockout: %v", err)
	}
	if err := s.Unlock(alice, "", "10.0.0.3"); kindOf(err) != KindPermissionDenied {
		t.Fatalf("alice lifting an address's lockout: %v", err)
	}
	if err := s.Unlock(alice, "alice", "10.0.0.1"); err != nil {
		t.Fatalf("alice lifting her own: %v", err)
	}
	if err := s.Unlock(root, "", "10.0.0.3"); err != nil {
		t.Fatalf("root lifting an address's lockout: %v", err)
	}
	if err := s.Unlock(root, "", "10.0.0.3"); kindOf(err) != KindNotFound {
		t.Fatalf("a lockout lifted twice: %v", err)
	}
	if s.SeesEveryUser(alice) || !s.SeesEveryUser(root) {
		t.Fatal("SeesEveryUser: alice may not list users, root may")
	}
}
