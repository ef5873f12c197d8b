package admission

import (
	"context"
	"strings"
	"testing"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus-proto/go-api/v2/schemapb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/authproxy/authproxy/credentials"
	"github.com/authproxy/authproxy/rowpolicy"
)

// decideAs decides a call of user on method with msg.
func decideAs(t *testing.T, a *Admitter, user, m string, msg [][]byte) (*Decision, error) {
	t.Helper()
	c, err := a.Open(Arrival{Protocol: GRPC, Path: method(m), Credential: token(user)})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Authenticate(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return a.Decide(c, msg)
}

// The step puts the policies of the caller's roles for the action in the
// Decision; admin bypasses; a collection without policies has none; a
// stored policy that does not compile closes its collection to the roles
// it names; a change of the store applies to the next decision.
func TestRowSecurityStep(t *testing.T) {
	a, _, store := newAdmitterAndStore(t)
	put := func(p *credentials.RowPolicy) {
		t.Helper()
		if err := store.Update(context.Background(), func(s *credentials.Set) error {
			s.PutRowPolicy(p)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	search := marshal(t, &milvuspb.SearchRequest{CollectionName: "books", DbName: "db1"})
	d, err := decideAs(t, a, "alice", "Search", search)
	if err != nil || d.Rows != nil {
		t.Fatalf("no policy: %v %+v, want no row scope", err, d)
	}
	put(&credentials.RowPolicy{DB: "db1", Collection: "books", Name: "mine", Actions: []string{"Search"}, Roles: []string{"reader"},
		UsingExpr: "owner == $current_user_name"})
	put(&credentials.RowPolicy{DB: "db1", Collection: "books", Name: "others", Actions: []string{"Search"}, Roles: []string{credentials.RoleAdmin},
		UsingExpr: "true"})
	put(&credentials.RowPolicy{DB: "db1", Collection: "books", Name: "deletes", Actions: []string{"Delete"}, Roles: []string{"reader"},
		UsingExpr: "true"})
	d, err = decideAs(t, a, "alice", "Search", search)
	if err != nil || d.Rows == nil || len(d.Rows.Policies) != 1 || d.Rows.Policies[0].Name != "mine" || d.Rows.Caller.Name != "alice" {
		t.Fatalf("alice under policy mine: %v %+v", err, d)
	}
	if d, err := decideAs(t, a, "ops", "Search", search); err != nil || d.Rows != nil {
		t.Errorf("admin: %v %+v, want no row scope", err, d)
	}
	put(&credentials.RowPolicy{DB: "db1", Collection: "books", Name: "broken", Actions: []string{"Search"}, Roles: []string{"reader"},
		UsingExpr: "owner like 'a%'"})
	if _, err := decideAs(t, a, "alice", "Search", search); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "row policy broken on collection books cannot be enforced") {
		t.Errorf("a stored policy that does not compile: %v, want PermissionDenied", err)
	}
}

// RewriteMessage: every sub-search of a hybrid search is combined; a read
// no row can match is answered with the method's own empty reply (nq
// empty result lists; count(*) 0); a write is checked row by row.
func TestRewriteMessage(t *testing.T) {
	using, err := rowpolicy.Compile("tenant == $current_user_tags['tenant']")
	if err != nil {
		t.Fatal(err)
	}
	scope := &RowScope{Action: "Search", Collection: "docs", Caller: rowpolicy.Caller{Name: "alice", Tags: map[string]string{"tenant": "acme"}},
		Policies: []rowpolicy.Policy{{Name: "tenant_rows", Using: using, Check: using}}}
	hybrid, _ := proto.Marshal(&milvuspb.HybridSearchRequest{CollectionName: "docs",
		Requests: []*milvuspb.SearchRequest{{Dsl: "id > 1", Nq: 1}, {Nq: 1}}})
	out, reply, err := scope.RewriteMessage(method("HybridSearch"), hybrid)
	var h milvuspb.HybridSearchRequest
	if err != nil || reply != nil || proto.Unmarshal(out, &h) != nil ||
		h.Requests[0].Dsl != `((tenant == "acme")) and (id > 1)` || h.Requests[1].Dsl != `((tenant == "acme"))` {
		t.Errorf("hybrid search: %v %v %v", &h, reply, err)
	}

	untagged := *scope
	untagged.Caller = rowpolicy.Caller{Name: "carol"}
	search, _ := proto.Marshal(&milvuspb.SearchRequest{CollectionName: "docs", Nq: 3})
	out, reply, err = untagged.RewriteMessage(method("Search"), search)
	var sr milvuspb.SearchResults
	if err != nil || out != nil || proto.Unmarshal(reply, &sr) != nil || sr.GetResults().GetNumQueries() != 3 || len(sr.GetResults().GetTopks()) != 3 {
		t.Errorf("search with no row: %v %v", &sr, err)
	}
	count, _ := proto.Marshal(&milvuspb.QueryRequest{CollectionName: "docs", OutputFields: []string{"count(*)"}})
	_, reply, err = untagged.RewriteMessage(method("Query"), count)
	var qr milvuspb.QueryResults
	if err != nil || proto.Unmarshal(reply, &qr) != nil || len(qr.FieldsData) != 1 || qr.FieldsData[0].GetScalars().GetLongData().GetData()[0] != 0 {
		t.Errorf("count(*) with no row: %v %v", &qr, err)
	}

	insert, _ := proto.Marshal(&milvuspb.InsertRequest{CollectionName: "docs", NumRows: 2, FieldsData: []*schemapb.FieldData{{FieldName: "tenant",
		Field: &schemapb.FieldData_Scalars{Scalars: &schemapb.ScalarField{Data: &schemapb.ScalarField_StringData{StringData: &schemapb.StringArray{Data: []string{"acme", "globex"}}}}}}}})
	insertScope := *scope
	insertScope.Action = "Insert"
	if _, _, err := insertScope.RewriteMessage(method("Insert"), insert); status.Code(err) != codes.PermissionDenied ||
		!strings.Contains(err.Error(), "row 1 of 2 satisfies no row policy of collection docs for Insert") {
		t.Errorf("insert of a globex row as acme: %v", err)
	}
}

// REST rows become the columns a check reads; a column of two kinds is
// refused rather than guessed at.
func TestJSONColumns(t *testing.T) {
	fields, n, err := jsonColumns([]byte(`[{"id":1,"tenant":"acme","score":0.5,"ok":true,"vec":[1,2]},{"id":2,"tenant":null}]`))
	if err != nil || n != 2 || len(fields) != 4 {
		t.Fatalf("columns: %v %d %v", fields, n, err)
	}
	if _, _, err := jsonColumns([]byte(`[{"tenant":"acme"},{"tenant":7}]`)); err == nil || !strings.Contains(err.Error(), "field tenant holds both") {
		t.Errorf("a column of two kinds: %v", err)
	}
}
