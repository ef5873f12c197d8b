package credentials

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func rbacSet(t *testing.T) *Set {
	t.Helper()
	ts := time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)
	s := NewSet()
	s.PutRole(&Role{Name: "reader", Created: ts})
	s.PutPrivilegeGroup(&PrivilegeGroup{Name: "querying", Privileges: []string{"Query", "Search"}, Created: ts})
	s.PutUser(&User{Name: "root", PasswordHash: testArgon, Roles: []string{RoleAdmin}})
	s.PutUser(&User{Name: "alice", PasswordHash: testArgon, Roles: []string{"reader"}, Description: "reads books"})
	s.PutGrant(&Grant{Role: "reader", Object: "Collection", ObjectName: "books", DB: "default", Privilege: "Search", Grantor: "root", Created: ts})
	s.PutGrant(&Grant{Role: "reader", Object: "Global", ObjectName: "films", DB: "default", Privilege: "CollectionReadOnly", Grantor: "root", V2: true, Created: ts})
	s.PutGrant(&Grant{Role: "reader", Object: "Global", ObjectName: "*", DB: "*", Privilege: "querying", Grantor: "root", V2: true, Created: ts})
	if err := s.validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRBACRoundTrip(t *testing.T) {
	s := rbacSet(t)
	data, err := encodeFile(s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseFile(data)
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, data)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip differs:\n%s", data)
	}
}

func TestRBACRules(t *testing.T) {
	for name, c := range map[string]struct {
		mutate func(*Set)
		want   string
	}{
		"binding to a missing role": {func(s *Set) { u, _ := s.User("alice"); u.Roles = append(u.Roles, "writer") }, `unknown role "writer"`},
		"grant to a missing role": {func(s *Set) {
			s.PutGrant(&Grant{Role: "writer", Object: "Collection", ObjectName: "x", DB: "default", Privilege: "Insert"})
		}, "the role does not exist"},
		"unknown privilege": {func(s *Set) {
			s.PutGrant(&Grant{Role: "reader", Object: "Collection", ObjectName: "x", DB: "default", Privilege: "Fly"})
		}, `unknown privilege "Fly"`},
		"unknown object type": {func(s *Set) {
			s.PutGrant(&Grant{Role: "reader", Object: "Partition", ObjectName: "x", DB: "default", Privilege: "Insert"})
		}, `unknown object type "Partition"`},
		"group named like a privilege": {func(s *Set) {
			s.PutPrivilegeGroup(&PrivilegeGroup{Name: "Search", Privileges: []string{"Query"}})
		}, "the name of a built-in privilege"},
		"group holding a group": {func(s *Set) {
			s.PutPrivilegeGroup(&PrivilegeGroup{Name: "nested", Privileges: []string{"ReadOnly"}})
		}, `"ReadOnly" is not a privilege`},
		"role name": {func(s *Set) { s.PutRole(&Role{Name: "9lives"}) }, "first character"},
	} {
		s := rbacSet(t).Clone()
		c.mutate(s)
		if err := s.validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
	s := rbacSet(t).Clone()
	if !s.DeleteRole("reader") || len(s.GrantsOf("reader")) != 0 || len(s.UsersOf("reader")) != 0 {
		t.Fatal("dropping a role must take its grants and bindings")
	}
}

// A version 1 file is read as it is and upgraded on its first write, with
// every user and API key intact.
func TestVersion1FileIsUpgradedOnFirstWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials.yaml")
	v1 := "version: 1\nusers:\n" +
		"  - name: root\n    passwordHash: \"" + testArgon + "\"\n    roles: [admin]\n" +
		"  - name: alice\n    passwordHash: \"" + testBcrypt + "\"\n" +
		"apiKeys:\n  - name: ci\n    user: alice\n    digest: \"" + testDigest + "\"\n"
	if err := os.WriteFile(path, []byte(v1), 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := OpenFile(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before := store.Current()
	if err := store.Update(context.Background(), func(s *Set) error { s.PutRole(&Role{Name: "reader"}); return nil }); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), "version: 2\n") || !strings.Contains(string(data), "roles:\n  - name: reader") {
		t.Fatalf("not upgraded:\n%s", data)
	}
	after, err := parseFile(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(after.Users(), before.Users()) || !reflect.DeepEqual(after.APIKeys(), before.APIKeys()) {
		t.Fatalf("users or keys changed in the upgrade:\n%s", data)
	}
}
