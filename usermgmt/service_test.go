package usermgmt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/authproxy/authproxy/credentials"
	"github.com/authproxy/authproxy/rbac"
)

func newService(t *testing.T, superUsers ...string) (*Service, *credentials.FileStore, *bytes.Buffer) {
	t.Helper()
	store, err := credentials.OpenFile(filepath.Join(t.TempDir(), "credentials.yaml"), credentials.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	return NewService(Options{Store: store, Logger: logger, SuperUsers: superUsers, Authorizer: authorizer(t, store)}), store, &logs
}

// authorizer is the proxy's decision point over store.
func authorizer(t *testing.T, store credentials.Store) *rbac.Authorizer {
	t.Helper()
	table, err := rbac.NewTable()
	if err != nil {
		t.Fatal(err)
	}
	return rbac.NewAuthorizer(store, table, rbac.Options{EnablePublicPrivilege: true}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
}

var root = Caller{Principal: rbac.Principal{User: "root"}, Authenticated: true}

func kindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return -1
}

func TestRulesAndPermissions(t *testing.T) {
	s, _, logs := newService(t)
	if err := s.CreateUser(bg, root, "user_1", "P@ssw0rd", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(bg, root, "user_1", "P@ssw0rd", ""); kindOf(err) != KindExists || err.Error() != "user already exists: user_1" {
		t.Fatalf("duplicate: %v", err)
	}
	for _, c := range []struct{ name, pw, want string }{
		{"", "P@ssw0rd", "username must be not empty"},
		{strings.Repeat("a", 33), "P@ssw0rd", "the length of username must be less than 32"},
		{"1user", "P@ssw0rd", "the first character must be a letter"},
		{"user-1", "P@ssw0rd", "username must contain only numbers, letters and underscores"},
		{"user_2", "12345", "invalid password length: invalid parameter[5 out of range 6 <= value <= 256]"},
		{"user_2", strings.Repeat("p", 257), "257 out of range 6 <= value <= 256"},
	} {
		err := s.CreateUser(bg, root, c.name, c.pw, "")
		var e *Error
		if !errors.As(err, &e) || e.Kind != KindInvalidParameter || e.Code() != 1100 || !strings.Contains(e.Reason, c.want) {
			t.Errorf("CreateUser(%q): %v, want code 1100 and %q", c.name, err, c.want)
		}
	}
	user1 := Caller{Principal: rbac.Principal{User: "user_1"}, Authenticated: true, Database: "db1"}
	err := s.CreateUser(bg, user1, "user_3", "P@ssw0rd", "")
	if kindOf(err) != KindPermissionDenied || err.Error() != "PrivilegeCreateOwnership: permission deny to user_1 in the `db1` database" {
		t.Fatalf("non-admin create: %v", err)
	}
	if _, err := s.ListUsers(user1); kindOf(err) != KindPermissionDenied {
		t.Fatalf("non-admin list: %v", err)
	}
	if _, found, err := s.DescribeUser(user1, "user_1"); err != nil || !found {
		t.Fatalf("describe self: %v %v", found, err)
	}
	if _, _, err := s.DescribeUser(user1, "root"); kindOf(err) != KindPermissionDenied {
		t.Fatalf("describe other: %v", err)
	}
	if err := s.UpdatePassword(bg, user1, "root", "Milvus", "NewPassw0rd"); kindOf(err) != KindPermissionDenied {
		t.Fatalf("update other's password: %v", err)
	}
	if err := s.UpdatePassword(bg, user1, "user_1", "wrong-old", "P@ssw0rd123"); kindOf(err) != KindWrongOldPassword {
		t.Fatalf("wrong old password: %v", err)
	}
	if err := s.UpdatePassword(bg, user1, "user_1", "P@ssw0rd", "P@ssw0rd123"); err != nil {
		t.Fatal(err)
	}
	if err := s.DropUser(bg, root, "root"); kindOf(err) != KindRootUndeletable {
		t.Fatalf("drop root: %v", err)
	}
	if err := s.GrantRole(bg, root, "user_1", "custom"); kindOf(err) != KindNotFound || !strings.Contains(err.Error(), "not found the role") {
		t.Fatalf("a role that does not exist: %v", err)
	}
	if err := s.GrantRole(bg, root, "user_1", "admin"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(bg, user1, "user_3", "P@ssw0rd", ""); err != nil {
		t.Fatalf("a user granted admin may create users: %v", err)
	}
	for _, secret := range []string{"P@ssw0rd", "P@ssw0rd123", "wrong-old", "Milvus"} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("the audit log contains a password")
		}
	}
	if n := strings.Count(logs.String(), "audit: user changed"); n != 4 {
		t.Fatalf("%d audit lines for 4 changes:\n%s", n, logs.String())
	}
}

func TestSuperUserSkipsOldPasswordOnly(t *testing.T) {
	s, _, _ := newService(t, "root", "foo")
	if err := s.CreateUser(bg, root, "user_1", "P@ssw0rd", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(bg, root, "foo", "P@ssw0rd", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdatePassword(bg, root, "user_1", "not-the-old-one", "P@ssw0rd9"); err != nil {
		t.Fatalf("superuser root without the old password: %v", err)
	}
	foo := Caller{Principal: rbac.Principal{User: "foo"}, Authenticated: true}
	if err := s.UpdatePassword(bg, foo, "user_1", "x", "P@ssw0rd10"); kindOf(err) != KindPermissionDenied {
		t.Fatalf("superuser foo is no admin: %v", err)
	}
	if err := s.CreateUser(bg, foo, "bar", "P@ssw0rd", ""); kindOf(err) != KindPermissionDenied {
		t.Fatalf("superuser grants nothing else: %v", err)
	}
}

// readOnlyStore is a store whose storage refuses writes, like a read-only
// Kubernetes Secret mount.
type readOnlyStore struct{ credentials.Store }

func (readOnlyStore) Update(context.Context, func(*credentials.Set) error) error {
	return fmt.Errorf("write /etc/authproxy/credentials.yaml: %w", credentials.ErrReadOnly)
}

func TestReadOnlyStoreRefusesWithClearMessage(t *testing.T) {
	_, store, _ := newService(t)
	var logs bytes.Buffer
	s := NewService(Options{Store: readOnlyStore{store}, Logger: slog.New(slog.NewTextHandler(&logs, nil)), Authorizer: authorizer(t, store)})
	err := s.CreateUser(bg, root, "user_1", "P@ssw0rd", "")
	if kindOf(err) != KindReadOnly || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("read-only store: %v", err)
	}
	// The client's message names no file; the log has the cause.
	if strings.Contains(err.Error(), "/etc/authproxy") {
		t.Fatalf("client-visible error names the credential file: %v", err)
	}
	if !strings.Contains(logs.String(), "/etc/authproxy/credentials.yaml") {
		t.Fatalf("the log lacks the cause: %s", logs.String())
	}
	if _, ok := store.Current().User("user_1"); ok {
		t.Fatal("memory changed although the write was refused")
	}
}

// bg is the context of calls that never wait.
var bg = context.Background()
