package integration

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/milvus-io/milvus/client/v2/milvusclient"

	"github.com/authproxy/authproxy/test/harness"
)

// The RBAC walk through REST with curl: the role routes answered by the
// proxy, the data routes decided as their gRPC methods are, and
// collections/list filtered.
func TestRBACWalkWithCurl(t *testing.T) {
	fake, p := startRESTPair(t, harness.Options{})
	ctx := testCtx(t, 60*time.Second)
	sdk := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "root", Password: "Milvus"})
	for _, name := range []string{"books", "films", "secret"} {
		createVectors(t, ctx, sdk, name, 8)
	}
	base := "http://" + p.Addr + "/v2/vectordb/"
	root := "Bearer root:Milvus"
	ok := okCall(t, base)
	denied := func(path, auth, body, privilege, db string) {
		t.Helper()
		r := curl(t, base+path, auth, body)
		code, _, msg := envelope(t, r)
		want := "rpc error: code = PermissionDenied desc = " + deny(privilege, "alice", db)
		if r.status != 403 || code != 65535 || msg != want {
			t.Errorf("%s %s: HTTP %d code %d %q, want 403 65535 %q", path, body, r.status, code, msg, want)
		}
	}

	ok("roles/create", root, `{"roleName":"reader"}`)
	ok("roles/grant_privilege", root, `{"roleName":"reader","objectType":"Collection","objectName":"books","privilege":"Search"}`)
	ok("roles/grant_privilege", root, `{"roleName":"reader","objectType":"Collection","objectName":"books","privilege":"Query"}`)
	ok("roles/grant_privilege_v2", root, `{"roleName":"reader","privilege":"CollectionReadOnly","collectionName":"films"}`)
	harness.Password("alice", "Alice-pw-1")
	ok("users/create", root, `{"userName":"alice","password":"Alice-pw-1"}`)
	ok("users/grant_role", root, `{"userName":"alice","roleName":"reader"}`)
	if roles := fmt.Sprint(ok("users/describe", root, `{"userName":"alice"}`)); roles != "[reader]" {
		t.Errorf("users/describe alice: %s", roles)
	}
	grants := ok("roles/describe", root, `{"roleName":"reader"}`).([]any)
	if len(grants) != 3 {
		t.Errorf("roles/describe reader: %v", grants)
	}

	alice := "Bearer alice:Alice-pw-1"
	searches := len(fake.Recorder().CallsTo("entities/search"))
	ok("entities/search", alice, `{"collectionName":"books","data":[[0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1]],"limit":3}`)
	ok("entities/query", alice, `{"collectionName":"films","filter":"id in [1]"}`)
	denied("entities/insert", alice, `{"collectionName":"books","data":[{"id":1}]}`, "PrivilegeInsert", "default")
	denied("entities/search", alice, `{"collectionName":"secret","data":[[0.1]]}`, "PrivilegeSearch", "default")
	denied("collections/drop", alice, `{"collectionName":"books"}`, "PrivilegeDropCollection", "default")
	denied("entities/search", alice, `{"collectionName":"books","dbName":"db2","data":[[0.1]]}`, "PrivilegeSearch", "db2")
	// The last of two keys wins, as in the backend's decoder.
	denied("entities/search", alice, `{"collectionName":"books","collectionName":"secret"}`, "PrivilegeSearch", "default")
	if n := len(fake.Recorder().CallsTo("entities/search")) - searches; n != 1 {
		t.Errorf("the backend saw %d searches, want alice's one allowed search", n)
	}
	var names []string
	for _, n := range ok("collections/list", alice, `{}`).([]any) {
		names = append(names, n.(string))
	}
	if !slices.Equal(names, []string{"books", "films"}) {
		t.Errorf("alice's collections/list: %v", names)
	}
	// A collection alice may not see: the backend is asked (it exists),
	// then Milvus's REST answer to a 1401 status: HTTP 200, code and reason.
	describes := len(fake.Recorder().CallsTo("collections/describe"))
	r := curl(t, base+"collections/describe", alice, `{"collectionName":"secret"}`)
	if code, _, msg := envelope(t, r); r.status != 200 || code != 1401 || msg != "not allowed to access collection, collection name: secret: privilege not permitted" {
		t.Errorf("collections/describe secret: HTTP %d code %d %q", r.status, code, msg)
	}
	ok("collections/describe", alice, `{"collectionName":"films"}`)
	if n := len(fake.Recorder().CallsTo("collections/describe")) - describes; n != 2 {
		t.Errorf("the backend saw %d describes, want 2", n)
	}

	ok("roles/revoke_privilege", root, `{"roleName":"reader","objectType":"Collection","objectName":"books","privilege":"Search"}`)
	denied("entities/search", alice, `{"collectionName":"books"}`, "PrivilegeSearch", "default")
	r = curl(t, base+"roles/drop", root, `{"roleName":"reader"}`)
	if code, _, msg := envelope(t, r); code == 0 {
		t.Errorf("dropping a role with grants: %d %s", code, msg)
	}
}
