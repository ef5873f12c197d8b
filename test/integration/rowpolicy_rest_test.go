package integration

import (
	"fmt"
	"testing"

	"github.com/authproxy/authproxy/test/harness"
)

// The row-security walk through REST with curl: policies and tags answered
// by the proxy, alice refused her own tags (HTTP 403 as every REST
// denial), nothing reaching the backend.
func TestRowPolicyAndTagWalkWithCurl(t *testing.T) {
	fake, p := startRESTPair(t, harness.Options{})
	base := "http://" + p.Addr + "/v2/vectordb/"
	root := "Bearer root:Milvus"
	ok := okCall(t, base)
	ok("roles/create", root, `{"roleName":"tenant"}`)
	harness.Password("alice", "Alice-pw-1")
	ok("users/create", root, `{"userName":"alice","password":"Alice-pw-1"}`)

	ok("row_policies/create", root, `{"collectionName":"docs","policyName":"tenant_rows","actions":["query","search","insert"],"roles":["tenant"],`+
		`"usingExpr":"tenant == $current_user_tags['tenant']","checkExpr":"tenant == $current_user_tags['tenant']"}`)
	list := fmt.Sprint(ok("row_policies/list", root, `{"collectionName":"docs"}`))
	if want := "[map[actions:[Query Search Insert] checkExpr:tenant == $current_user_tags['tenant'] createdAt:"; len(list) < len(want) || list[:len(want)] != want {
		t.Errorf("row_policies/list: %s", list)
	}
	r := curl(t, base+"row_policies/create", root, `{"collectionName":"docs","policyName":"p2","actions":["select"],"roles":["tenant"],"usingExpr":"true"}`)
	if code, _, msg := envelope(t, r); r.status != 200 || code != 1100 || msg != `unknown row policy action "select" (want Query, Search, Insert, Delete, Upsert): invalid parameter` {
		t.Errorf("unknown action: HTTP %d code %d %q", r.status, code, msg)
	}
	r = curl(t, base+"row_policies/create", root, `{"collectionName":"docs","policyName":"p2","roles":["tenant"],"usingExpr":"true"}`)
	if code, _, msg := envelope(t, r); code != 1802 {
		t.Errorf("no actions: HTTP %d code %d %q, want the missing-parameter code", r.status, code, msg)
	}

	ok("users/add_tags", root, `{"userName":"alice","tags":{"tenant":"acme"}}`)
	if tags := fmt.Sprint(ok("users/get_tags", root, `{"userName":"alice"}`)); tags != "map[tenant:acme]" {
		t.Errorf("users/get_tags: %s", tags)
	}
	if users := fmt.Sprint(ok("users/list_with_tag", root, `{"tagKey":"tenant","tagValue":"acme"}`)); users != "[alice]" {
		t.Errorf("users/list_with_tag: %s", users)
	}
	alice := "Bearer alice:Alice-pw-1"
	for _, c := range []struct{ path, body string }{
		{"users/add_tags", `{"userName":"alice","tags":{"tenant":"globex"}}`},
		{"users/delete_tags", `{"userName":"alice","tagKeys":["tenant"]}`},
		{"row_policies/drop", `{"collectionName":"docs","policyName":"tenant_rows"}`},
	} {
		r := curl(t, base+c.path, alice, c.body)
		code, _, msg := envelope(t, r)
		if r.status != 403 || code != 65535 {
			t.Errorf("alice %s: HTTP %d code %d %q, want 403", c.path, r.status, code, msg)
		}
	}
	if tags := fmt.Sprint(ok("users/get_tags", alice, `{"userName":"alice"}`)); tags != "map[tenant:acme]" {
		t.Errorf("alice's tags after her attempts: %s", tags)
	}
	ok("users/delete_tags", root, `{"userName":"alice","tagKeys":["tenant"]}`)
	ok("row_policies/drop", root, `{"collectionName":"docs","policyName":"tenant_rows"}`)
	if list := fmt.Sprint(ok("row_policies/list", root, `{"collectionName":"docs"}`)); list != "[]" {
		t.Errorf("row_policies/list after drop: %s", list)
	}
	if n := len(fake.Recorder().Calls()); n != 0 {
		t.Errorf("the backend saw %d calls", n)
	}
}
