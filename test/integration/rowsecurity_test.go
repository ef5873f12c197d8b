package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus-proto/go-api/v2/schemapb"
	"github.com/milvus-io/milvus/client/v2/column"
	"github.com/milvus-io/milvus/client/v2/entity"
	"github.com/milvus-io/milvus/client/v2/index"
	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/status"

	"github.com/authproxy/authproxy/test/fakemilvus"
	"github.com/authproxy/authproxy/test/harness"
)

const rlsDim = 4

// rlsSetup connects to the proxy at addr as root (the Go SDK, and
// milvus-proto's client for the row-security API) and creates "docs"
// under the policy tenant_rows (rlsCollection).
func rlsSetup(t testing.TB, addr string, d time.Duration) (ctx context.Context, root *milvusclient.Client, admin milvuspb.MilvusServiceClient, asRoot context.Context) {
	t.Helper()
	ctx = testCtx(t, d)
	root = sdkClient(t, ctx, &milvusclient.ClientConfig{Address: addr, Username: "root", Password: "Milvus"})
	admin = milvuspb.NewMilvusServiceClient(dial(t, addr, nil))
	asRoot = withToken(ctx, "root:Milvus")
	rlsCollection(t, ctx, root, admin, asRoot)
	return ctx, root, admin, asRoot
}

// rlsCollection creates "docs" (tenantCollection) and a role "tenant"
// that may read and write it under the policy tenant_rows.
func rlsCollection(t testing.TB, ctx context.Context, root *milvusclient.Client, admin milvuspb.MilvusServiceClient, asRoot context.Context) {
	t.Helper()
	tenantCollection(t, ctx, root, "docs")
	must(t, root.CreateRole(ctx, milvusclient.NewCreateRoleOption("tenant")))
	must(t, root.GrantPrivilegeV2(ctx, milvusclient.NewGrantPrivilegeV2Option("tenant", "CollectionReadWrite", "docs")))
	st, err := admin.CreateRowPolicy(asRoot, &milvuspb.CreateRowPolicyRequest{CollectionName: "docs", PolicyName: "tenant_rows",
		Actions: []milvuspb.RowPolicyAction{milvuspb.RowPolicyAction_Query, milvuspb.RowPolicyAction_Search, milvuspb.RowPolicyAction_Insert,
			milvuspb.RowPolicyAction_Delete, milvuspb.RowPolicyAction_Upsert},
		Roles: []string{"tenant"}, UsingExpr: `tenant_id == $current_user_tags['tenant']`, CheckExpr: `tenant_id == $current_user_tags['tenant']`})
	okStatus(t, "create policy", st, err)
}

// tenantCollection creates a loaded collection (id, tenant_id as
// partition key, vec) with acme's rows 1-3 and globex's rows 4-5.
func tenantCollection(t testing.TB, ctx context.Context, root *milvusclient.Client, name string) {
	t.Helper()
	schema := entity.NewSchema().WithDynamicFieldEnabled(true).
		WithField(entity.NewField().WithName("id").WithDataType(entity.FieldTypeInt64).WithIsPrimaryKey(true)).
		WithField(entity.NewField().WithName("tenant_id").WithDataType(entity.FieldTypeVarChar).WithMaxLength(64).WithIsPartitionKey(true)).
		WithField(entity.NewField().WithName("vec").WithDataType(entity.FieldTypeFloatVector).WithDim(rlsDim))
	must(t, root.CreateCollection(ctx, milvusclient.NewCreateCollectionOption(name, schema).
		WithIndexOptions(milvusclient.NewCreateIndexOption(name, "vec", index.NewFlatIndex(entity.L2)))))
	task, err := root.LoadCollection(ctx, milvusclient.NewLoadCollectionOption(name))
	must(t, err)
	must(t, task.Await(ctx))
	ids := []int64{1, 2, 3, 4, 5}
	vecs := make([][]float32, len(ids))
	for i := range vecs {
		vecs[i] = constVec(float32(i), rlsDim)
	}
	_, err = root.Insert(ctx, milvusclient.NewColumnBasedInsertOption(name).WithInt64Column("id", ids).
		WithVarcharColumn("tenant_id", []string{"acme", "acme", "acme", "globex", "globex"}).WithFloatVectorColumn("vec", rlsDim, vecs))
	must(t, err)
}

// rlsUser creates a local user of role tenant with the given tenant tag
// ("" for none) and connects as her with the Go SDK.
func rlsUser(t testing.TB, ctx context.Context, addr string, root *milvusclient.Client, admin milvuspb.MilvusServiceClient, asRoot context.Context, name, password, tenant string) *milvusclient.Client {
	t.Helper()
	harness.Password(name, password)
	must(t, root.CreateUser(ctx, milvusclient.NewCreateUserOption(name, password)))
	must(t, root.GrantRole(ctx, milvusclient.NewGrantRoleOption(name, "tenant")))
	if tenant != "" {
		st, err := admin.AddUserTags(asRoot, &milvuspb.AddUserTagsRequest{UserName: name, Tags: map[string]string{"tenant": tenant}})
		okStatus(t, "tag "+name, st, err)
	}
	return sdkClient(t, ctx, &milvusclient.ClientConfig{Address: addr, Username: name, Password: password})
}

func queryIDs(t testing.TB, ctx context.Context, c *milvusclient.Client, filter string) ([]int64, error) {
	t.Helper()
	rs, err := c.Query(ctx, milvusclient.NewQueryOption("docs").WithFilter(filter).WithOutputFields("id"))
	if err != nil {
		return nil, err
	}
	return sortedIDs(rs.GetColumn("id"), rs.ResultCount), nil
}

func sortedIDs(col column.Column, n int) []int64 {
	got := []int64{}
	for i := range n {
		id, _ := col.GetAsInt64(i)
		got = append(got, id)
	}
	slices.Sort(got)
	return got
}

func searchIDs(t *testing.T, ctx context.Context, c *milvusclient.Client, filter string) ([]int64, error) {
	t.Helper()
	rs, err := c.Search(ctx, milvusclient.NewSearchOption("docs", 10, []entity.Vector{constVec(0, rlsDim)}).WithANNSField("vec").WithFilter(filter))
	if err != nil {
		return nil, err
	}
	return sortedIDs(rs[0].IDs, rs[0].ResultCount), nil
}

func countRows(t *testing.T, ctx context.Context, c *milvusclient.Client) (int64, error) {
	t.Helper()
	rs, err := c.Query(ctx, milvusclient.NewQueryOption("docs").WithOutputFields("count(*)"))
	if err != nil {
		return 0, err
	}
	return rs.GetColumn("count(*)").GetAsInt64(0)
}

// Two tenants on one collection with a partition key, through the real
// binary with the Milvus Go SDK: each searches, queries, counts, gets by
// id, iterates, inserts, upserts and deletes only its own rows; a user of
// the role with no tag, and one whose role no policy names, read nothing
// and the backend is not asked; admin reads every row. Both cores.
// upsertRefused is the answer to every upsert under row security.
const upsertRefused = "authproxy: upsert is refused on collection docs, which has row policies: an upsert replaces the row of its primary key whichever tenant's it is, and the proxy cannot see that row; delete (filtered by your policies) then insert"

func TestRowSecurityIsolatesTenants(t *testing.T) {
	fake, p := startPair(t, harness.Options{})
	ctx, root, admin, asRoot := rlsSetup(t, p.Addr, 120*time.Second)
	alice := rlsUser(t, ctx, p.Addr, root, admin, asRoot, "alice", "Alice-pw-1", "acme")
	bob := rlsUser(t, ctx, p.Addr, root, admin, asRoot, "bob", "Bob-pw-123", "globex")
	carol := rlsUser(t, ctx, p.Addr, root, admin, asRoot, "carol", "Carol-pw-1", "")

	for _, c := range []struct {
		who    string
		client *milvusclient.Client
		want   []int64
	}{{"alice", alice, []int64{1, 2, 3}}, {"bob", bob, []int64{4, 5}}, {"root", root, []int64{1, 2, 3, 4, 5}}} {
		if got, err := queryIDs(t, ctx, c.client, "id > 0"); err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s queries: %v %v, want %v", c.who, got, err, c.want)
		}
		if got, err := searchIDs(t, ctx, c.client, ""); err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s searches: %v %v, want %v", c.who, got, err, c.want)
		}
		if n, err := countRows(t, ctx, c.client); err != nil || n != int64(len(c.want)) {
			t.Errorf("%s counts: %d %v, want %d", c.who, n, err, len(c.want))
		}
		rs, err := c.client.Get(ctx, milvusclient.NewQueryOption("docs").WithIDs(column.NewColumnInt64("id", []int64{1, 4})).WithOutputFields("id"))
		if got := sortedIDs(rs.GetColumn("id"), rs.ResultCount); err != nil || len(got) != 1 && c.who != "root" {
			t.Errorf("%s gets ids 1 and 4: %v %v, want its own only", c.who, got, err)
		}
		it, err := c.client.QueryIterator(ctx, milvusclient.NewQueryIteratorOption("docs").WithBatchSize(2).WithOutputFields("id"))
		must(t, err)
		var iterated []int64
		for range 10 {
			rs, err := it.Next(ctx)
			if err != nil {
				break
			}
			iterated = append(iterated, sortedIDs(rs.GetColumn("id"), rs.ResultCount)...)
		}
		if slices.Sort(iterated); !slices.Equal(iterated, c.want) {
			t.Errorf("%s iterates: %v, want %v", c.who, iterated, c.want)
		}
	}
	// What alice asks for beyond her rows is not there.
	if got, err := queryIDs(t, ctx, alice, `tenant_id == "globex"`); err != nil || len(got) != 0 {
		t.Errorf("alice asks for globex's rows: %v %v, want none", got, err)
	}

	// No tag, or no policy for the role: no row, answered without asking
	// the backend.
	harness.Password("dave", "Dave-pw-12")
	must(t, root.CreateUser(ctx, milvusclient.NewCreateUserOption("dave", "Dave-pw-12")))
	must(t, root.CreateRole(ctx, milvusclient.NewCreateRoleOption("auditor")))
	must(t, root.GrantPrivilegeV2(ctx, milvusclient.NewGrantPrivilegeV2Option("auditor", "CollectionReadOnly", "docs")))
	must(t, root.GrantRole(ctx, milvusclient.NewGrantRoleOption("dave", "auditor")))
	dave := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "dave", Password: "Dave-pw-12"})
	fake.Recorder().Reset()
	for who, c := range map[string]*milvusclient.Client{"carol (no tag)": carol, "dave (no policy for his role)": dave} {
		if got, err := queryIDs(t, ctx, c, "id > 0"); err != nil || len(got) != 0 {
			t.Errorf("%s queries: %v %v, want no row", who, got, err)
		}
		if got, err := searchIDs(t, ctx, c, ""); err != nil || len(got) != 0 {
			t.Errorf("%s searches: %v %v, want no row", who, got, err)
		}
		if n, err := countRows(t, ctx, c); err != nil || n != 0 {
			t.Errorf("%s counts: %d %v, want 0", who, n, err)
		}
	}
	if n := len(fake.Recorder().CallsTo("Query")) + len(fake.Recorder().CallsTo("Search")); n != 0 {
		t.Errorf("the backend got %d reads that no row could match, want none", n)
	}

	// Writes: alice inserts and upserts acme rows only; the whole request
	// is refused, naming the policy, when one row is globex's.
	fake.Recorder().Reset()
	_, err := alice.Insert(ctx, milvusclient.NewColumnBasedInsertOption("docs").WithInt64Column("id", []int64{10, 11}).
		WithVarcharColumn("tenant_id", []string{"acme", "globex"}).WithFloatVectorColumn("vec", rlsDim, [][]float32{constVec(1, rlsDim), constVec(1, rlsDim)}))
	wantDenied(t, "alice inserts a globex row", err, "authproxy: row 1 of 2 satisfies no row policy of collection docs for Insert; nothing was written")
	_, err = alice.Upsert(ctx, milvusclient.NewColumnBasedInsertOption("docs").WithInt64Column("id", []int64{4}).
		WithVarcharColumn("tenant_id", []string{"globex"}).WithFloatVectorColumn("vec", rlsDim, [][]float32{constVec(1, rlsDim)}))
	wantDenied(t, "alice upserts a globex row", err, upsertRefused)
	// Her own tenant in the row, globex's primary key: Milvus would
	// replace globex's row 4 with hers. Every upsert under row security is
	// refused, as the proxy cannot see the row an upsert replaces.
	_, err = alice.Upsert(ctx, milvusclient.NewColumnBasedInsertOption("docs").WithInt64Column("id", []int64{4}).
		WithVarcharColumn("tenant_id", []string{"acme"}).WithFloatVectorColumn("vec", rlsDim, [][]float32{constVec(1, rlsDim)}))
	wantDenied(t, "alice upserts over globex's row 4", err, upsertRefused)
	if got, _ := queryIDs(t, ctx, bob, "id > 0"); !slices.Equal(got, []int64{4, 5}) {
		t.Errorf("bob's rows after alice's upsert: %v, want [4 5]", got)
	}
	if n := len(fake.Recorder().CallsTo("Insert")) + len(fake.Recorder().CallsTo("Upsert")); n != 0 {
		t.Errorf("refused writes reached the backend %d times", n)
	}
	_, err = alice.Insert(ctx, milvusclient.NewColumnBasedInsertOption("docs").WithInt64Column("id", []int64{10}).
		WithVarcharColumn("tenant_id", []string{"acme"}).WithFloatVectorColumn("vec", rlsDim, [][]float32{constVec(1, rlsDim)}))
	must(t, err)

	// Deletes are filtered like reads: alice's delete of 4 and 10 removes 10.
	del, err := alice.Delete(ctx, milvusclient.NewDeleteOption("docs").WithExpr("id in [4, 10]"))
	must(t, err)
	if got, _ := queryIDs(t, ctx, root, "id > 0"); del.DeleteCount != 1 || !slices.Equal(got, []int64{1, 2, 3, 4, 5}) {
		t.Errorf("alice deleted %d rows, left %v; want id 10 only", del.DeleteCount, got)
	}
	del, err = bob.Delete(ctx, milvusclient.NewDeleteOption("docs").WithExpr("id > 0"))
	must(t, err)
	if got, _ := queryIDs(t, ctx, root, "id > 0"); del.DeleteCount != 2 || !slices.Equal(got, []int64{1, 2, 3}) {
		t.Errorf("bob deleted %d rows, left %v; want his two", del.DeleteCount, got)
	}
}

// A caller's filter that tries to reach outside its parentheses, close a
// string, or name the policy's variables is refused through the proxy
// with Milvus's parse error (InvalidArgument), and the backend is not
// asked; what is accepted returns alice's rows only (a template value
// fills only her own placeholder).
func TestRowSecurityRefusesInjection(t *testing.T) {
	fake, p := startPair(t, harness.Options{})
	ctx, root, admin, asRoot := rlsSetup(t, p.Addr, 120*time.Second)
	rlsUser(t, ctx, p.Addr, root, admin, asRoot, "alice", "Alice-pw-1", "acme")
	asAlice := withToken(ctx, "alice:Alice-pw-1")

	refused := []string{
		`id > 0) or (1 == 1`,
		`id > 0)) or ((tenant_id != ""`,
		`(id > 0`,
		`id > 0 or tenant_id == "acme\\" or tenant_id != "`,
		`tenant_id == "acme`,
		`tenant_id == 'globex`,
		`tenant_id == $current_user_tags['tenant']`,
		`$current_user_name == "alice"`,
		`id in [1, 2`,
		`id > 0] or [1`,
		"tenant_id == \"a\nb\"",
		`id > 0 } or { 1 == 1`,
	}
	accepted := []string{
		`id > 0 or tenant_id == "globex"`,
		`not (tenant_id == "acme")`,
		`tenant_id == "globex\" or 1 == 1 or \""`,
		`tenant_id == {t}`,
		`id > 0 or tenant_id == "acme\" or tenant_id != "`,
	}
	query := func(expr string) ([]int64, error) {
		resp, err := admin.Query(asAlice, &milvuspb.QueryRequest{CollectionName: "docs", Expr: expr, OutputFields: []string{"id"},
			ExprTemplateValues: templateValue("t", "globex")})
		if err == nil && resp.GetStatus().GetCode() != 0 {
			err = status.Error(codes.Unknown, resp.GetStatus().GetReason())
		}
		var got []int64
		for _, f := range resp.GetFieldsData() {
			if f.GetFieldName() == "id" {
				got = append(got, f.GetScalars().GetLongData().GetData()...)
			}
		}
		slices.Sort(got)
		return got, err
	}
	fake.Recorder().Reset()
	for _, expr := range refused {
		got, err := query(expr)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "failed to create query plan: cannot parse expression: filter refused") {
			t.Errorf("%q: rows %v, %v; want refused (InvalidArgument)", expr, got, err)
		}
	}
	if n := len(fake.Recorder().CallsTo("Query")); n != 0 {
		t.Errorf("refused filters reached the backend %d times", n)
	}
	for _, expr := range accepted {
		got, err := query(expr)
		if err != nil && status.Code(err) != codes.Unknown {
			t.Errorf("%q: %v", expr, err)
		}
		for _, id := range got {
			if id > 3 {
				t.Errorf("%q: alice read row %d of globex (rows %v)", expr, id, got)
			}
		}
	}
}

// templateValue is expr_template_values with one string value.
func templateValue(name, value string) map[string]*schemapb.TemplateValue {
	return map[string]*schemapb.TemplateValue{name: {Val: &schemapb.TemplateValue_StringVal{StringVal: value}}}
}

// Policies and tags follow the store: a tag changed, a policy created or
// dropped applies to the next call.
func TestRowSecurityFollowsLiveChanges(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	ctx, root, admin, asRoot := rlsSetup(t, p.Addr, 120*time.Second)
	alice := rlsUser(t, ctx, p.Addr, root, admin, asRoot, "alice", "Alice-pw-1", "acme")
	step := func(what string, want []int64) {
		t.Helper()
		if got, err := queryIDs(t, ctx, alice, "id > 0"); err != nil || !slices.Equal(got, want) {
			t.Errorf("%s: alice reads %v %v, want %v", what, got, err, want)
		}
	}
	step("tagged acme", []int64{1, 2, 3})
	st, err := admin.AddUserTags(asRoot, &milvuspb.AddUserTagsRequest{UserName: "alice", Tags: map[string]string{"tenant": "globex"}})
	okStatus(t, "retag alice", st, err)
	step("retagged globex", []int64{4, 5})
	st, err = admin.CreateRowPolicy(asRoot, &milvuspb.CreateRowPolicyRequest{CollectionName: "docs", PolicyName: "first_row",
		Actions: []milvuspb.RowPolicyAction{milvuspb.RowPolicyAction_Query}, Roles: []string{"tenant"}, UsingExpr: `id == 1`})
	okStatus(t, "a second policy", st, err)
	step("a second permissive policy (OR-ed)", []int64{1, 4, 5})
	st, err = admin.DeleteUserTags(asRoot, &milvuspb.DeleteUserTagsRequest{UserName: "alice", TagKeys: []string{"tenant"}})
	okStatus(t, "untag alice", st, err)
	step("untagged", []int64{1})
	for _, name := range []string{"tenant_rows", "first_row"} {
		st, err = admin.DropRowPolicy(asRoot, &milvuspb.DropRowPolicyRequest{CollectionName: "docs", PolicyName: name})
		okStatus(t, "drop "+name, st, err)
	}
	step("no policy left: no row security", []int64{1, 2, 3, 4, 5})
}

// A directory user's tenant comes from her entry (identities.tags.ldap)
// and her role from her group: she reads her tenant's rows.
func TestRowSecurityForLDAPUsers(t *testing.T) {
	l := harness.StartLDAP(t)
	alice := l.AddUser("alice", "Alice-dir-pw")
	l.SetAttribute(alice, "departmentNumber", "globex")
	l.AddGroup("ml-readers", alice)
	harness.Password("alice", "Alice-dir-pw")
	_, p := startPair(t, harness.Options{Extra: ldapConfig(l, true, "  tags:\n    ldap:\n      tenant: departmentNumber\n")})
	ctx, root, admin, asRoot := rlsSetup(t, p.Addr, 120*time.Second)
	must(t, root.CreateRole(ctx, milvusclient.NewCreateRoleOption("reader")))
	must(t, root.GrantPrivilegeV2(ctx, milvusclient.NewGrantPrivilegeV2Option("reader", "CollectionReadOnly", "docs")))
	st, err := admin.CreateRowPolicy(asRoot, &milvuspb.CreateRowPolicyRequest{CollectionName: "docs", PolicyName: "reader_rows",
		Actions: []milvuspb.RowPolicyAction{milvuspb.RowPolicyAction_Query, milvuspb.RowPolicyAction_Search},
		Roles:   []string{"reader"}, UsingExpr: `tenant_id == $current_user_tags['tenant']`})
	okStatus(t, "reader policy", st, err)
	asAlice := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "alice", Password: "Alice-dir-pw"})
	got, err := queryIDs(t, ctx, asAlice, "id > 0")
	if err != nil || !slices.Equal(got, []int64{4, 5}) {
		t.Errorf("directory alice (departmentNumber globex) queries: %v %v, want [4 5]", got, err)
	}
	if got, err := searchIDs(t, ctx, asAlice, ""); err != nil || !slices.Equal(got, []int64{4, 5}) {
		t.Errorf("directory alice searches: %v %v, want [4 5]", got, err)
	}
}

// REST with curl: the proxy rewrites the `filter` of the body it forwards
// (reads, hybrid sub-searches, deletes), checks inserted rows, answers a
// read no row can match itself, and refuses injections and bodies it
// cannot read one way. (The fake's REST side records bodies; it does not
// evaluate them: the forwarded filter is what is checked here, and the
// gRPC tests check the rows such a filter selects.)
func TestRowSecurityOverRESTWithCurl(t *testing.T) {
	fake, p := startRESTPair(t, harness.Options{})
	ctx, root, admin, asRoot := rlsSetup(t, p.Addr, 120*time.Second)
	rlsUser(t, ctx, p.Addr, root, admin, asRoot, "alice", "Alice-pw-1", "acme")
	rlsUser(t, ctx, p.Addr, root, admin, asRoot, "carol", "Carol-pw-1", "")
	base := "http://" + p.Addr + "/v2/vectordb/"
	alice, carol := "Bearer alice:Alice-pw-1", "Bearer carol:Carol-pw-1"
	const acme = `((tenant_id == \"acme\"))`

	// reached: the call reaches the backend holding want, and the client
	// gets the backend's answer, code wantCode.
	reached := func(what, path, auth, body string, wantCode int, want ...string) {
		t.Helper()
		fake.Recorder().Reset()
		r := curl(t, base+path, auth, body)
		if code, _, msg := envelope(t, r); r.status != 200 || code != wantCode {
			t.Errorf("%s: HTTP %d code %d %q, want code %d", what, r.status, code, msg, wantCode)
			return
		}
		calls := fake.Recorder().CallsTo(fakemilvus.RESTPrefix + path)
		if len(calls) != 1 {
			t.Errorf("%s: %d calls reached the backend, want 1", what, len(calls))
			return
		}
		for _, w := range want {
			if !strings.Contains(string(calls[0].Body), w) {
				t.Errorf("%s: the backend got %s, want it to hold %s", what, calls[0].Body, w)
			}
		}
	}
	forwarded := func(what, path, auth, body string, want ...string) {
		t.Helper()
		reached(what, path, auth, body, 0, want...)
	}
	forwarded("alice queries", "entities/query", alice, `{"collectionName":"docs","filter":"id > 0","outputFields":["id"]}`,
		`"filter":"`+acme+` and (id \u003e 0)"`, `"outputFields":["id"]`)
	forwarded("alice searches", "entities/search", alice, `{"collectionName":"docs","data":[[0,0,0,0]],"annsField":"vec","limit":3}`,
		`"filter":"`+acme+`"`)
	// The fake has no HybridSearch and says so (code 10); what matters
	// here is the filter the backend was sent.
	reached("alice's hybrid search", "entities/hybrid_search", alice,
		`{"collectionName":"docs","search":[{"data":[[0,0,0,0]],"annsField":"vec","limit":3,"filter":"id > 1"},{"data":[[1,1,1,1]],"annsField":"vec","limit":3}],"rerank":{"strategy":"rrf","params":{"k":10}},"limit":3}`,
		10, `"filter":"`+acme+` and (id \u003e 1)"`, `"filter":"`+acme+`","limit":3}`)
	forwarded("alice deletes", "entities/delete", alice, `{"collectionName":"docs","filter":"id in [4]"}`, `"filter":"`+acme+` and (id in [4])"`)
	forwarded("alice inserts her row", "entities/insert", alice, `{"collectionName":"docs","data":[{"id":10,"tenant_id":"acme","vec":[0,0,0,0]}]}`,
		`{"collectionName":"docs","data":[{"id":10,"tenant_id":"acme","vec":[0,0,0,0]}]}`)

	refused := func(what, path, auth, body string, status, code int, msg string) {
		t.Helper()
		fake.Recorder().Reset()
		r := curl(t, base+path, auth, body)
		if gotCode, _, gotMsg := envelope(t, r); r.status != status || gotCode != code || !strings.Contains(gotMsg, msg) {
			t.Errorf("%s: HTTP %d code %d %q, want HTTP %d code %d %q", what, r.status, gotCode, gotMsg, status, code, msg)
		}
		if n := len(fake.Recorder().CallsTo(fakemilvus.RESTPrefix + path)); n != 0 {
			t.Errorf("%s reached the backend", what)
		}
	}
	refused("alice inserts a globex row", "entities/insert", alice, `{"collectionName":"docs","data":[{"id":10,"tenant_id":"acme"},{"id":11,"tenant_id":"globex"}]}`,
		403, 65535, "row 1 of 2 satisfies no row policy of collection docs for Insert; nothing was written")
	refused("alice upserts over globex's row 4", "entities/upsert", alice, `{"collectionName":"docs","data":[{"id":4,"tenant_id":"acme","vec":[0,0,0,0]}]}`,
		403, 65535, "upsert is refused on collection docs, which has row policies")
	refused("an escape from the parentheses", "entities/query", alice, `{"collectionName":"docs","filter":"id > 0) or (1 == 1"}`,
		200, 1100, "failed to create query plan: cannot parse expression: filter refused")
	refused("the policy's variable", "entities/search", alice, `{"collectionName":"docs","data":[[0,0,0,0]],"filter":"tenant_id == $current_user_tags['tenant']"}`,
		200, 1100, "filter refused")
	refused("filter twice in two spellings", "entities/query", alice, `{"collectionName":"docs","filter":"id > 0","Filter":"id > 0"}`,
		200, 1100, `the body names "filter" twice`)
	refused("get by id", "entities/get", alice, `{"collectionName":"docs","id":[1]}`, 403, 65535, "use entities/query with a filter")

	for _, c := range []struct{ path, body, want string }{
		{"entities/query", `{"collectionName":"docs","filter":"id > 0"}`, "[]"},
		{"entities/query", `{"collectionName":"docs","outputFields":["count(*)"]}`, "[map[count(*):0]]"},
		{"entities/search", `{"collectionName":"docs","data":[[0,0,0,0]]}`, "[]"},
		{"entities/delete", `{"collectionName":"docs","filter":"id > 0"}`, "map[deleteCount:0]"},
	} {
		fake.Recorder().Reset()
		r := curl(t, base+c.path, carol, c.body)
		if code, data, msg := envelope(t, r); r.status != 200 || code != 0 || fmt.Sprint(data) != c.want {
			t.Errorf("carol (no tag) %s: HTTP %d code %d data %v %q, want %s", c.path, r.status, code, data, msg, c.want)
		}
		if n := len(fake.Recorder().CallsTo(fakemilvus.RESTPrefix + c.path)); n != 0 {
			t.Errorf("carol's %s reached the backend", c.path)
		}
	}
	// root is not under row security: her filter goes as she wrote it.
	forwarded("root queries", "entities/query", "Bearer root:Milvus", `{"collectionName":"docs","filter":"id > 0"}`, `{"collectionName":"docs","filter":"id > 0"}`)
}

// A request under row security larger than HTTP/2's initial windows, and
// one compressed with gzip, is held whole, rewritten and forwarded on
// both cores (the frame relay re-frames it with its new length): alice
// still reads her rows only.
func TestRowSecurityLargeAndCompressedRequests(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	ctx, root, admin, asRoot := rlsSetup(t, p.Addr, 120*time.Second)
	rlsUser(t, ctx, p.Addr, root, admin, asRoot, "alice", "Alice-pw-1", "acme")
	asAlice := withToken(ctx, "alice:Alice-pw-1")

	var b strings.Builder
	b.WriteString("id in [1, 2, 4, 5")
	for i := range 40000 {
		fmt.Fprintf(&b, ", %d", 1000000+i)
	}
	b.WriteString("]")
	big := b.String() // about 360 KB: several windows' worth
	for _, c := range []struct {
		name string
		opts []grpc.CallOption
	}{{"plain", nil}, {"gzip", []grpc.CallOption{grpc.UseCompressor(gzip.Name)}}} {
		resp, err := admin.Query(asAlice, &milvuspb.QueryRequest{CollectionName: "docs", Expr: big, OutputFields: []string{"id"}}, c.opts...)
		if err != nil || resp.GetStatus().GetCode() != 0 {
			t.Errorf("%s: %v %v", c.name, resp.GetStatus(), err)
			continue
		}
		var got []int64
		for _, f := range resp.GetFieldsData() {
			if f.GetFieldName() == "id" {
				got = append(got, f.GetScalars().GetLongData().GetData()...)
			}
		}
		if slices.Sort(got); !slices.Equal(got, []int64{1, 2}) {
			t.Errorf("%s: alice's large query read %v, want [1 2]", c.name, got)
		}
	}
}

// Three replicas on one etcd agree: a policy and a tag set through one
// replica filter alice's reads through every one, and a retag through
// another replica moves her to the other tenant's rows on all three.
func TestRowSecurityOnThreeReplicas(t *testing.T) {
	ps, _ := startReplicas(t, 3)
	ctx, root, admin, asRoot := rlsSetup(t, ps[0].Addr, 120*time.Second)
	rlsUser(t, ctx, ps[0].Addr, root, admin, asRoot, "alice", "Alice-pw-1", "acme")
	var alices []*milvusclient.Client
	for _, p := range ps {
		alices = append(alices, sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "alice", Password: "Alice-pw-1"}))
	}
	reads := func(want []int64) {
		t.Helper()
		for i, c := range alices {
			took := within(t, 10*time.Second, fmt.Sprintf("replica %d filters alice's rows to %v", i, want), func() error {
				got, err := queryIDs(t, ctx, c, "id > 0")
				if err != nil || !slices.Equal(got, want) {
					return fmt.Errorf("read %v %v", got, err)
				}
				return nil
			})
			t.Logf("replica %d: alice reads %v after %v", i, want, took)
		}
	}
	reads([]int64{1, 2, 3})
	other := milvuspb.NewMilvusServiceClient(dial(t, ps[1].Addr, nil))
	st, err := other.AddUserTags(asRoot, &milvuspb.AddUserTagsRequest{UserName: "alice", Tags: map[string]string{"tenant": "globex"}})
	okStatus(t, "retag alice through replica 1", st, err)
	reads([]int64{4, 5})
}
