package usermgmt

import (
	"reflect"
	"testing"
)

// What BackupRBAC returns, RestoreRBAC puts back, into an empty store with
// the same users: roles, bindings, grants and custom groups.
func TestBackupRestoreRoundTrip(t *testing.T) {
	s, _, _ := newService(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.CreateUser(bg, root, "alice", "P@ssw0rd", ""))
	must(s.CreateRole(bg, root, "reader"))
	must(s.GrantRole(bg, root, "alice", "reader"))
	must(s.CreatePrivilegeGroup(bg, root, "querying"))
	must(s.OperatePrivilegeGroup(bg, root, "querying", []string{"Query", "Search"}, true))
	must(s.GrantPrivilege(bg, root, Privilege{Role: "reader", Object: "Collection", ObjectName: "books", Privilege: "Load"}, true))
	must(s.GrantPrivilege(bg, root, Privilege{Role: "reader", ObjectName: "films", Privilege: "querying", V2: true}, true))
	backup, err := s.BackupRBAC(root)
	must(err)
	if len(backup.Grants) != 4 { // Load brings GetLoadState and GetLoadingProgress
		t.Fatalf("backup grants: %+v", backup.Grants)
	}

	t2, _, _ := newService(t)
	must(t2.CreateUser(bg, root, "alice", "P@ssw0rd", ""))
	must(t2.RestoreRBAC(bg, root, backup))
	again, err := t2.BackupRBAC(root)
	must(err)
	if !reflect.DeepEqual(again, backup) {
		t.Fatalf("restored:\n%+v\nwant\n%+v", again, backup)
	}
	// A backup naming a user the store lacks is refused whole.
	t3, store3, _ := newService(t)
	if err := t3.RestoreRBAC(bg, root, backup); err == nil {
		t.Fatal("restore with an unknown user succeeded")
	}
	if _, ok := store3.Current().Role("reader"); ok {
		t.Fatal("a refused restore left a role behind")
	}
}
