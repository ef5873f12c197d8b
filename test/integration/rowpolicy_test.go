package integration

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus/client/v2/milvusclient"

	"github.com/authproxy/authproxy/test/harness"
)

// okStatus fails the test unless a reply's status is a success.
func okStatus(t *testing.T, what string, st *commonpb.Status, err error) {
	t.Helper()
	if err != nil || st.GetCode() != 0 || st.GetErrorCode() != commonpb.ErrorCode_Success {
		t.Fatalf("%s: %v %v", what, st, err)
	}
}

// The row-security API walk against the real binary: the Milvus Go SDK
// (v2.6.2) sets up users and roles; it has no call for policies or tags,
// so those go through milvus-proto's generated client, as the SDKs that
// have them send them. The backend never sees one of these calls.
func TestRowPolicyAndTagAPIWalk(t *testing.T) {
	fake, p := startPair(t, harness.Options{})
	ctx := testCtx(t, 60*time.Second)
	root := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "root", Password: "Milvus"})
	must(t, root.CreateRole(ctx, milvusclient.NewCreateRoleOption("tenant")))
	harness.Password("alice", "Alice-pw-1")
	must(t, root.CreateUser(ctx, milvusclient.NewCreateUserOption("alice", "Alice-pw-1")))
	must(t, root.GrantRole(ctx, milvusclient.NewGrantRoleOption("alice", "tenant")))
	harness.Password("bob", "Bob-pw-123")
	must(t, root.CreateUser(ctx, milvusclient.NewCreateUserOption("bob", "Bob-pw-123")))

	c := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	asRoot := withToken(ctx, "root:Milvus")

	// Policies: create, refuse a second of the same name, list, drop.
	st, err := c.CreateRowPolicy(asRoot, &milvuspb.CreateRowPolicyRequest{CollectionName: "docs", PolicyName: "tenant_rows",
		Actions: []milvuspb.RowPolicyAction{milvuspb.RowPolicyAction_Query, milvuspb.RowPolicyAction_Search, milvuspb.RowPolicyAction_Insert},
		Roles:   []string{"tenant"}, UsingExpr: `tenant == $current_user_tags['tenant']`, CheckExpr: `tenant == $current_user_tags['tenant']`,
		Description: "each tenant its rows"})
	okStatus(t, "create policy", st, err)
	st, err = c.CreateRowPolicy(asRoot, &milvuspb.CreateRowPolicyRequest{CollectionName: "docs", PolicyName: "tenant_rows",
		Actions: []milvuspb.RowPolicyAction{milvuspb.RowPolicyAction_Query}, Roles: []string{"tenant"}, UsingExpr: "true"})
	if err != nil || st.GetReason() != "row policy tenant_rows already exists on collection docs in database default" {
		t.Errorf("second create: %v %v", st, err)
	}
	st, err = c.CreateRowPolicy(asRoot, &milvuspb.CreateRowPolicyRequest{CollectionName: "docs", PolicyName: "writes",
		Actions: []milvuspb.RowPolicyAction{milvuspb.RowPolicyAction_Insert}, Roles: []string{"tenant"}, UsingExpr: "true"})
	if err != nil || st.GetCode() != 1100 || st.GetReason() != "check_expr must not be empty for actions Insert: invalid parameter" {
		t.Errorf("insert policy without check_expr: %v %v", st, err)
	}
	st, err = c.CreateRowPolicy(asRoot, &milvuspb.CreateRowPolicyRequest{CollectionName: "docs", PolicyName: "ghosts",
		Actions: []milvuspb.RowPolicyAction{milvuspb.RowPolicyAction_Query}, Roles: []string{"ghost"}, UsingExpr: "true"})
	if err != nil || st.GetReason() != "role ghost not found: a row policy names existing roles" {
		t.Errorf("policy naming an unknown role: %v %v", st, err)
	}
	list, err := c.ListRowPolicies(asRoot, &milvuspb.ListRowPoliciesRequest{CollectionName: "docs"})
	okStatus(t, "list policies", list.GetStatus(), err)
	if len(list.GetPolicies()) != 1 || list.GetDbName() != "default" || list.GetCollectionName() != "docs" {
		t.Fatalf("list: %v", list)
	}
	got := list.GetPolicies()[0]
	if got.GetPolicyName() != "tenant_rows" || !slices.Equal(got.GetRoles(), []string{"tenant"}) || got.GetCheckExpr() != `tenant == $current_user_tags['tenant']` ||
		!slices.Equal(got.GetActions(), []milvuspb.RowPolicyAction{milvuspb.RowPolicyAction_Query, milvuspb.RowPolicyAction_Search, milvuspb.RowPolicyAction_Insert}) ||
		got.GetCreatedAt() == 0 {
		t.Errorf("listed policy: %v", got)
	}
	st, err = c.DropRowPolicy(asRoot, &milvuspb.DropRowPolicyRequest{CollectionName: "docs", PolicyName: "tenant_rows"})
	okStatus(t, "drop policy", st, err)
	st, err = c.DropRowPolicy(asRoot, &milvuspb.DropRowPolicyRequest{CollectionName: "docs", PolicyName: "tenant_rows"})
	okStatus(t, "drop a dropped policy (idempotent)", st, err)
	if list, err = c.ListRowPolicies(asRoot, &milvuspb.ListRowPoliciesRequest{CollectionName: "docs"}); err != nil || len(list.GetPolicies()) != 0 {
		t.Errorf("list after drop: %v %v", list, err)
	}

	// Tags: add, merge, read, list by tag, delete.
	st, err = c.AddUserTags(asRoot, &milvuspb.AddUserTagsRequest{UserName: "alice", Tags: map[string]string{"tenant": "acme"}})
	okStatus(t, "tag alice", st, err)
	st, err = c.AddUserTags(asRoot, &milvuspb.AddUserTagsRequest{UserName: "alice", Tags: map[string]string{"region": "eu"}})
	okStatus(t, "tag alice again", st, err)
	st, err = c.AddUserTags(asRoot, &milvuspb.AddUserTagsRequest{UserName: "bob", Tags: map[string]string{"tenant": "globex"}})
	okStatus(t, "tag bob", st, err)
	tags, err := c.GetUserTags(asRoot, &milvuspb.GetUserTagsRequest{UserName: "alice"})
	okStatus(t, "get tags", tags.GetStatus(), err)
	if !maps.Equal(tags.GetTags(), map[string]string{"tenant": "acme", "region": "eu"}) {
		t.Errorf("alice's tags: %v", tags.GetTags())
	}
	users, err := c.ListUsersWithTag(asRoot, &milvuspb.ListUsersWithTagRequest{TagKey: "tenant", TagValue: "acme"})
	okStatus(t, "users with tag", users.GetStatus(), err)
	if !slices.Equal(users.GetUserNames(), []string{"alice"}) {
		t.Errorf("users with tenant=acme: %v", users.GetUserNames())
	}
	st, err = c.DeleteUserTags(asRoot, &milvuspb.DeleteUserTagsRequest{UserName: "alice", TagKeys: []string{"region", "missing"}})
	okStatus(t, "delete a tag", st, err)
	if tags, err = c.GetUserTags(asRoot, &milvuspb.GetUserTagsRequest{UserName: "alice"}); err != nil || !maps.Equal(tags.GetTags(), map[string]string{"tenant": "acme"}) {
		t.Errorf("alice's tags after the delete: %v %v", tags, err)
	}
	st, err = c.AddUserTags(asRoot, &milvuspb.AddUserTagsRequest{UserName: "alice", Tags: map[string]string{"it's": "x"}})
	if err != nil || st.GetCode() != 1100 {
		t.Errorf("a tag key a policy cannot name: %v %v", st, err)
	}

	for _, method := range []string{"CreateRowPolicy", "DropRowPolicy", "ListRowPolicies", "AddUserTags", "DeleteUserTags", "GetUserTags", "ListUsersWithTag"} {
		if n := len(fake.Recorder().CallsTo(method)); n != 0 {
			t.Errorf("the backend saw %d %s calls", n, method)
		}
	}
}

// A user must never change her own tags: the self exemption of User
// objects (her own password, her own description) does not reach
// AddUserTags and DeleteUserTags. She may read her own tags; admin, or a
// role granted UpdateUser, changes them.
func TestUserCannotChangeHerOwnTags(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	ctx := testCtx(t, 60*time.Second)
	root := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "root", Password: "Milvus"})
	harness.Password("alice", "Alice-pw-1")
	must(t, root.CreateUser(ctx, milvusclient.NewCreateUserOption("alice", "Alice-pw-1")))
	harness.Password("carol", "Carol-pw-1")
	must(t, root.CreateUser(ctx, milvusclient.NewCreateUserOption("carol", "Carol-pw-1")))
	must(t, root.CreateRole(ctx, milvusclient.NewCreateRoleOption("tagger")))
	must(t, root.GrantPrivilege(ctx, milvusclient.NewGrantPrivilegeOption("tagger", "User", "UpdateUser", "*")))
	must(t, root.GrantRole(ctx, milvusclient.NewGrantRoleOption("carol", "tagger")))

	c := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	st, err := c.AddUserTags(withToken(ctx, "root:Milvus"), &milvuspb.AddUserTagsRequest{UserName: "alice", Tags: map[string]string{"tenant": "acme"}})
	okStatus(t, "root tags alice", st, err)

	asAlice := withToken(ctx, "alice:Alice-pw-1")
	_, err = c.AddUserTags(asAlice, &milvuspb.AddUserTagsRequest{UserName: "alice", Tags: map[string]string{"tenant": "globex"}})
	wantDenied(t, "alice re-tags herself", err, deny("PrivilegeUpdateUser", "alice", "default"))
	_, err = c.DeleteUserTags(asAlice, &milvuspb.DeleteUserTagsRequest{UserName: "alice", TagKeys: []string{"tenant"}})
	wantDenied(t, "alice deletes her tag", err, deny("PrivilegeUpdateUser", "alice", "default"))
	_, err = c.DeleteUserTags(asAlice, &milvuspb.DeleteUserTagsRequest{UserName: "alice"})
	wantDenied(t, "alice deletes all her tags", err, deny("PrivilegeUpdateUser", "alice", "default"))
	// Her own password and her own tags' reading stay hers.
	tags, err := c.GetUserTags(asAlice, &milvuspb.GetUserTagsRequest{UserName: "alice"})
	okStatus(t, "alice reads her tags", tags.GetStatus(), err)
	if !maps.Equal(tags.GetTags(), map[string]string{"tenant": "acme"}) {
		t.Errorf("alice's tags after her attempts: %v", tags.GetTags())
	}
	alice := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "alice", Password: "Alice-pw-1"})
	harness.Password("alice", "Alice-pw-2")
	must(t, alice.UpdatePassword(ctx, milvusclient.NewUpdatePasswordOption("alice", "Alice-pw-1", "Alice-pw-2")))

	// A role granted UpdateUser changes tags, hers and others'.
	asCarol := withToken(ctx, "carol:Carol-pw-1")
	st, err = c.AddUserTags(asCarol, &milvuspb.AddUserTagsRequest{UserName: "alice", Tags: map[string]string{"tenant": "initech"}})
	okStatus(t, "carol (tagger) tags alice", st, err)
	st, err = c.AddUserTags(asCarol, &milvuspb.AddUserTagsRequest{UserName: "carol", Tags: map[string]string{"tenant": "initech"}})
	okStatus(t, "carol (tagger) tags herself", st, err)
	if tags, err = c.GetUserTags(withToken(ctx, "root:Milvus"), &milvuspb.GetUserTagsRequest{UserName: "alice"}); err != nil || tags.GetTags()["tenant"] != "initech" {
		t.Errorf("alice's tags: %v %v", tags, err)
	}
}

// Three replicas on one etcd agree on policies and tags: a change made
// through one is seen by the others (their etcd watch), each within a
// second.
func TestReplicasAgreeOnRowPoliciesAndTags(t *testing.T) {
	ps, _ := startReplicas(t, 3)
	ctx := testCtx(t, 60*time.Second)
	conns := make([]milvuspb.MilvusServiceClient, len(ps))
	for i, p := range ps {
		conns[i] = milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	}
	asRoot := withToken(ctx, "root:Milvus")
	root1 := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: ps[0].Addr, Username: "root", Password: "Milvus"})
	must(t, root1.CreateRole(ctx, milvusclient.NewCreateRoleOption("tenant")))
	harness.Password("alice", "Alice-pw-1")
	must(t, root1.CreateUser(ctx, milvusclient.NewCreateUserOption("alice", "Alice-pw-1")))

	policies := func(i int) ([]string, error) {
		list, err := conns[i].ListRowPolicies(asRoot, &milvuspb.ListRowPoliciesRequest{CollectionName: "docs"})
		var names []string
		for _, p := range list.GetPolicies() {
			names = append(names, p.GetPolicyName()+":"+p.GetUsingExpr())
		}
		return names, err
	}
	seen := func(what string, want []string, from int) {
		t.Helper()
		for i := range ps {
			took := within(t, time.Second, fmt.Sprintf("%s on replica %d", what, i+1), func() error {
				got, err := policies(i)
				if err == nil && !slices.Equal(got, want) {
					err = fmt.Errorf("policies %v, want %v", got, want)
				}
				return err
			})
			if i != from {
				t.Logf("%s through replica %d: replica %d agrees after %v", what, from+1, i+1, took)
			}
		}
	}
	st, err := conns[0].CreateRowPolicy(asRoot, &milvuspb.CreateRowPolicyRequest{CollectionName: "docs", PolicyName: "tenant_rows",
		Actions: []milvuspb.RowPolicyAction{milvuspb.RowPolicyAction_Query}, Roles: []string{"tenant"}, UsingExpr: `tenant == $current_user_tags['tenant']`})
	okStatus(t, "create on replica 1", st, err)
	seen("a policy created", []string{"tenant_rows:tenant == $current_user_tags['tenant']"}, 0)

	st, err = conns[1].AddUserTags(asRoot, &milvuspb.AddUserTagsRequest{UserName: "alice", Tags: map[string]string{"tenant": "acme"}})
	okStatus(t, "tag on replica 2", st, err)
	for i := range ps {
		took := within(t, time.Second, fmt.Sprintf("alice's tag on replica %d", i+1), func() error {
			tags, err := conns[i].GetUserTags(asRoot, &milvuspb.GetUserTagsRequest{UserName: "alice"})
			if err == nil && tags.GetTags()["tenant"] != "acme" {
				err = fmt.Errorf("tags %v", tags.GetTags())
			}
			return err
		})
		t.Logf("a tag added through replica 2: replica %d agrees after %v", i+1, took)
	}

	st, err = conns[2].DropRowPolicy(asRoot, &milvuspb.DropRowPolicyRequest{CollectionName: "docs", PolicyName: "tenant_rows"})
	okStatus(t, "drop on replica 3", st, err)
	seen("a policy dropped", nil, 2)
}

// The CLI writes policies and tags into the store a running proxy
// follows: the proxy answers with them at once (its file watch), and
// `policy list` / `user tags get` read back what the API wrote.
func TestPolicyAndTagCommandsOnARunningProxy(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	ctx := testCtx(t, 30*time.Second)
	c := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	asRoot := withToken(ctx, "root:Milvus")
	harness.Password("alice", "Alice-pw-1")
	cli(t, p, "Alice-pw-1\n", "user", "add", "alice", "--password-stdin")

	cli(t, p, "", "policy", "create", "tenant_rows", "--collection", "docs", "--action", "query", "--action", "search",
		"--role", "public", "--using", "tenant == $current_user_tags['tenant']")
	cli(t, p, "", "user", "tags", "add", "alice", "tenant=acme")
	eventually(t, 5*time.Second, "the CLI's policy and tag on the proxy", func() error {
		list, err := c.ListRowPolicies(asRoot, &milvuspb.ListRowPoliciesRequest{CollectionName: "docs"})
		if err == nil && (len(list.GetPolicies()) != 1 || list.GetPolicies()[0].GetUsingExpr() != "tenant == $current_user_tags['tenant']") {
			err = fmt.Errorf("policies %v", list.GetPolicies())
		}
		if err != nil {
			return err
		}
		tags, err := c.GetUserTags(asRoot, &milvuspb.GetUserTagsRequest{UserName: "alice"})
		if err == nil && tags.GetTags()["tenant"] != "acme" {
			err = fmt.Errorf("tags %v", tags.GetTags())
		}
		return err
	})

	st, err := c.AddUserTags(asRoot, &milvuspb.AddUserTagsRequest{UserName: "alice", Tags: map[string]string{"region": "eu"}})
	okStatus(t, "tag through the API", st, err)
	if out := cli(t, p, "", "user", "tags", "get", "alice"); out != "region=eu\ntenant=acme\n" {
		t.Errorf("user tags get: %q", out)
	}
	if out := cli(t, p, "", "user", "tags", "list-users", "tenant=acme"); out != "alice\n" {
		t.Errorf("user tags list-users: %q", out)
	}
	cli(t, p, "", "policy", "drop", "tenant_rows", "--collection", "docs")
	if out := cli(t, p, "", "policy", "list"); strings.Contains(out, "tenant_rows") {
		t.Errorf("policy list after drop: %q", out)
	}
}
