package credentials

import (
	"strings"
	"testing"
)

func TestSetOperations(t *testing.T) {
	s := NewSet()
	s.PutUser(&User{Name: "root", PasswordHash: testArgon})
	s.PutUser(&User{Name: "bob", PasswordHash: testArgon, Roles: []string{RoleAdmin}})
	s.PutUser(&User{Name: "alice", PasswordHash: testArgon, Roles: []string{RolePublic}})
	if err := s.PutAPIKey(&APIKey{Name: "k1", User: "alice", Digest: APIKeyDigest("a")}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAPIKey(&APIKey{Name: "k2", User: "ghost", Digest: APIKeyDigest("b")}); err == nil {
		t.Fatal("PutAPIKey accepted a key of an unknown user")
	}
	if err := s.PutAPIKey(&APIKey{Name: "k3", User: "bob", Digest: APIKeyDigest("a")}); err == nil {
		t.Fatal("PutAPIKey accepted a duplicate digest")
	}
	if err := s.PutAPIKey(&APIKey{Name: "k4", User: "bob", Digest: "sha256:zz"}); err == nil {
		t.Fatal("PutAPIKey accepted a bad digest")
	}
	var names []string
	for _, u := range s.Users() {
		names = append(names, u.Name)
	}
	if strings.Join(names, ",") != "alice,bob,root" {
		t.Fatalf("Users() = %v, want sorted", names)
	}

	c := s.Clone()
	u, _ := c.User("alice")
	u.Roles[0] = RoleAdmin
	c.DeleteUser("alice")
	if orig, _ := s.User("alice"); orig.Roles[0] != RolePublic {
		t.Fatal("Clone shares Roles with the original")
	}
	if _, ok := s.APIKeyByDigest(APIKeyDigest("a")); !ok {
		t.Fatal("deleting from the clone changed the original")
	}
	if _, ok := c.APIKeyByDigest(APIKeyDigest("a")); ok || len(c.APIKeys()) != 0 {
		t.Fatal("DeleteUser kept the user's API keys")
	}
	if !s.DeleteAPIKey("k1") || s.DeleteAPIKey("k1") {
		t.Fatal("DeleteAPIKey")
	}
	if _, ok := s.APIKeyByDigest(APIKeyDigest("a")); ok {
		t.Fatal("deleted key still found by digest")
	}
}

func TestSetValidate(t *testing.T) {
	s := NewSet()
	s.PutUser(&User{Name: "root", PasswordHash: "plain"})
	if err := s.validate(); err == nil || strings.Contains(err.Error(), "plain") {
		t.Fatalf("validate = %v, want hash format error without the hash", err)
	}
	s.PutUser(&User{Name: "root", PasswordHash: testArgon, Roles: []string{"boss"}})
	if err := s.validate(); err == nil || !strings.Contains(err.Error(), `unknown role "boss"`) {
		t.Fatalf("validate = %v, want unknown role", err)
	}
}

func TestAPIKeys(t *testing.T) {
	k1, err := NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := NewAPIKey()
	if !strings.HasPrefix(k1, "ap_") || len(k1) != 3+43 || strings.Contains(k1, ":") || k1 == k2 {
		t.Fatalf("NewAPIKey = %q, %q", k1, k2)
	}
	d := APIKeyDigest("abc")
	if d != "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" || checkDigest(d) != nil {
		t.Fatalf("APIKeyDigest = %q", d)
	}
}
