package rbac

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus-proto/go-api/v2/schemapb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/authproxy/authproxy/credentials"
)

const testHash = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"

func method(name string) string { return "/" + Service + "/" + name }

func marshal(t testing.TB, m proto.Message) [][]byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{b}
}

// newAuthorizer builds the walk's policy: role reader with Search and
// Query on books (v1) and CollectionReadOnly on films (v2), bound to alice.
func newAuthorizer(t testing.TB) (*Authorizer, *credentials.FileStore) {
	t.Helper()
	store, err := credentials.OpenFile(filepath.Join(t.TempDir(), "credentials.yaml"), credentials.FileOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	err = store.Update(context.Background(), func(s *credentials.Set) error {
		s.PutRole(&credentials.Role{Name: "reader"})
		s.PutUser(&credentials.User{Name: "alice", PasswordHash: testHash, Roles: []string{"reader"}})
		s.PutUser(&credentials.User{Name: "ops", PasswordHash: testHash, Roles: []string{credentials.RoleAdmin}})
		s.PutUser(&credentials.User{Name: "nobody", PasswordHash: testHash})
		for _, p := range []string{"Search", "Query"} {
			s.PutGrant(&credentials.Grant{Role: "reader", Object: "Collection", ObjectName: "books", DB: "default", Privilege: p})
		}
		s.PutGrant(&credentials.Grant{Role: "reader", Object: "Global", ObjectName: "films", DB: "default", Privilege: "CollectionReadOnly", V2: true})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	table, err := NewTable()
	if err != nil {
		t.Fatal(err)
	}
	return NewAuthorizer(store, table, Options{EnablePublicPrivilege: true}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil), store
}

func TestDecisions(t *testing.T) {
	a, store := newAuthorizer(t)
	search := func(col, db string) [][]byte {
		return marshal(t, &milvuspb.SearchRequest{CollectionName: col, DbName: db})
	}
	for _, c := range []struct {
		what string
		call Call
		want string // "" allowed, else the denial message
	}{
		{"search books", Call{Principal: Principal{User: "alice"}, Method: method("Search"), Message: search("books", "")}, ""},
		{"search films (v2 group)", Call{Principal: Principal{User: "alice"}, Method: method("Search"), Message: search("films", "")}, ""},
		{"query films", Call{Principal: Principal{User: "alice"}, Method: method("Query"), Message: marshal(t, &milvuspb.QueryRequest{CollectionName: "films"})}, ""},
		{"insert books", Call{Principal: Principal{User: "alice"}, Method: method("Insert"), Message: marshal(t, &milvuspb.InsertRequest{CollectionName: "books"})},
			"PrivilegeInsert: permission deny to alice in the `default` database"},
		{"search secret", Call{Principal: Principal{User: "alice"}, Method: method("Search"), Message: search("secret", "")},
			"PrivilegeSearch: permission deny to alice in the `default` database"},
		{"drop collection", Call{Principal: Principal{User: "alice"}, Method: method("DropCollection"), Message: marshal(t, &milvuspb.DropCollectionRequest{CollectionName: "books"})},
			"PrivilegeDropCollection: permission deny to alice in the `default` database"},
		{"search books in db2", Call{Principal: Principal{User: "alice"}, Method: method("Search"), Message: search("books", "db2")},
			"PrivilegeSearch: permission deny to alice in the `db2` database"},
		{"metadata db2", Call{Principal: Principal{User: "alice"}, Method: method("Search"), MetadataDB: "db2", Message: search("books", "")},
			"PrivilegeSearch: permission deny to alice in the `db2` database"},
		{"body db wins over metadata", Call{Principal: Principal{User: "alice"}, Method: method("Search"), MetadataDB: "default", Message: search("books", "db2")},
			"PrivilegeSearch: permission deny to alice in the `db2` database"},
		{"public default: describe", Call{Principal: Principal{User: "nobody"}, Method: method("DescribeCollection"), Message: marshal(t, &milvuspb.DescribeCollectionRequest{CollectionName: "x"})}, ""},
		{"open method", Call{Principal: Principal{User: "nobody"}, Method: method("ShowCollections")}, ""},
		{"admin role", Call{Principal: Principal{User: "ops"}, Method: method("DropCollection"), Message: marshal(t, &milvuspb.DropCollectionRequest{CollectionName: "books"})}, ""},
		{"root", Call{Principal: Principal{User: "root"}, Method: method("Insert"), Message: marshal(t, &milvuspb.InsertRequest{CollectionName: "secret"})}, ""},
		{"own password", Call{Principal: Principal{User: "alice"}, Method: method("UpdateCredential"), Message: marshal(t, &milvuspb.UpdateCredentialRequest{Username: "alice"})}, ""},
		{"another's password", Call{Principal: Principal{User: "alice"}, Method: method("UpdateCredential"), Message: marshal(t, &milvuspb.UpdateCredentialRequest{Username: "ops"})},
			"PrivilegeUpdateUser: permission deny to alice in the `default` database"},
		{"own tags: add", Call{Principal: Principal{User: "alice"}, Method: method("AddUserTags"), Message: marshal(t, &milvuspb.AddUserTagsRequest{UserName: "alice", Tags: map[string]string{"tenant": "globex"}})},
			"PrivilegeUpdateUser: permission deny to alice in the `default` database"},
		{"own tags: delete", Call{Principal: Principal{User: "alice"}, Method: method("DeleteUserTags"), Message: marshal(t, &milvuspb.DeleteUserTagsRequest{UserName: "alice", TagKeys: []string{"tenant"}})},
			"PrivilegeUpdateUser: permission deny to alice in the `default` database"},
		{"own tags: read", Call{Principal: Principal{User: "alice"}, Method: method("GetUserTags"), Message: marshal(t, &milvuspb.GetUserTagsRequest{UserName: "alice"})}, ""},
		{"another's tags: admin", Call{Principal: Principal{User: "ops"}, Method: method("AddUserTags"), Message: marshal(t, &milvuspb.AddUserTagsRequest{UserName: "alice"})}, ""},
		{"replicate is admin only", Call{Principal: Principal{User: "alice"}, Method: method("ReplicateMessage")},
			"authproxy: /milvus.proto.milvus.MilvusService/ReplicateMessage is restricted to the admin role; permission deny to alice"},
		{"unknown MilvusService method", Call{Principal: Principal{User: "alice"}, Method: method("FromTheFuture")},
			"authproxy: /milvus.proto.milvus.MilvusService/FromTheFuture is restricted to the admin role; permission deny to alice"},
		{"other service", Call{Principal: Principal{User: "alice"}, Method: "/grpc.health.v1.Health/Check"}, ""},
		{"flush of allowed and denied", Call{Principal: Principal{User: "alice"}, Method: method("Flush"), Message: marshal(t, &milvuspb.FlushRequest{CollectionNames: []string{"books", "secret"}})},
			"PrivilegeFlush: permission deny to alice in the `default` database"},
	} {
		err := a.Authorize(c.call)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: denied: %v", c.what, err)
		case c.want != "" && (status.Code(err) != codes.PermissionDenied || status.Convert(err).Message() != c.want):
			t.Errorf("%s: %v, want PermissionDenied %q", c.what, err, c.want)
		}
	}

	// A revoke applies to the next call.
	if err := store.Update(context.Background(), func(s *credentials.Set) error {
		s.DeleteGrant(credentials.GrantKey{Role: "reader", Object: "Collection", ObjectName: "books", DB: "default", Privilege: "Search"})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := a.Authorize(Call{Principal: Principal{User: "alice"}, Method: method("Search"), Message: search("books", "")}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("search after the revoke: %v", err)
	}
}

// The last occurrence of a field wins, as in the backend's parser: a
// request naming books first and secret last is a request for secret.
func TestScanLastOccurrenceWins(t *testing.T) {
	a, _ := newAuthorizer(t)
	msg := marshal(t, &milvuspb.SearchRequest{CollectionName: "books"})[0]
	msg = protowire.AppendTag(msg, 3, protowire.BytesType)
	msg = protowire.AppendString(msg, "secret")
	var decoded milvuspb.SearchRequest
	if err := proto.Unmarshal(msg, &decoded); err != nil || decoded.GetCollectionName() != "secret" {
		t.Fatalf("the backend reads %q (%v)", decoded.GetCollectionName(), err)
	}
	err := a.Authorize(Call{Principal: Principal{User: "alice"}, Method: method("Search"), Message: [][]byte{msg}})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("books then secret: %v, want denied", err)
	}
	// Split across buffers at every position, the answer is the same.
	for i := 1; i < len(msg); i++ {
		if err := a.Authorize(Call{Principal: Principal{User: "alice"}, Method: method("Search"), Message: [][]byte{msg[:i], msg[i:]}}); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("split at %d: %v", i, err)
		}
	}
	// A name field with the wrong wire type is ignored by parsers, and by Scan.
	odd := protowire.AppendTag(marshal(t, &milvuspb.SearchRequest{CollectionName: "books"})[0], 3, protowire.VarintType)
	odd = protowire.AppendVarint(odd, 7)
	if err := a.Authorize(Call{Principal: Principal{User: "alice"}, Method: method("Search"), Message: [][]byte{odd}}); err != nil {
		t.Fatalf("varint in the name field: %v", err)
	}
	if err := a.Authorize(Call{Principal: Principal{User: "alice"}, Method: method("Search"), Message: [][]byte{msg[:len(msg)-2]}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("truncated message: %v", err)
	}
}

func TestSelectUserNameInAMessage(t *testing.T) {
	a, _ := newAuthorizer(t)
	self := marshal(t, &milvuspb.SelectUserRequest{User: &milvuspb.UserEntity{Name: "alice"}})
	if err := a.Authorize(Call{Principal: Principal{User: "alice"}, Method: method("SelectUser"), Message: self}); err != nil {
		t.Fatalf("describe herself: %v", err)
	}
	other := marshal(t, &milvuspb.SelectUserRequest{User: &milvuspb.UserEntity{Name: "ops"}})
	if err := a.Authorize(Call{Principal: Principal{User: "alice"}, Method: method("SelectUser"), Message: other}); !strings.Contains(status.Convert(err).Message(), "PrivilegeSelectUser") {
		t.Fatalf("describe another: %v", err)
	}
}

// A decision for a cached identity: at most 1 µs and no allocation (the
// target lives here, not in a timed test; see `go test -bench Decision`).
func BenchmarkDecision(b *testing.B) {
	a, _ := newAuthorizer(b)
	msg := marshal(b, &milvuspb.SearchRequest{CollectionName: "books", DbName: "default", Dsl: strings.Repeat("x", 4096)})
	call := Call{Principal: Principal{User: "alice"}, Method: method("Search"), Message: msg}
	if err := a.Authorize(call); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := a.Authorize(call); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDecisionAllocatesNothing(t *testing.T) {
	a, _ := newAuthorizer(t)
	call := Call{Principal: Principal{User: "alice"}, Method: method("Search"), Message: marshal(t, &milvuspb.SearchRequest{CollectionName: "books"})}
	if n := testing.AllocsPerRun(100, func() { _ = a.Authorize(call) }); n != 0 {
		t.Fatalf("a decision allocates %v times", n)
	}
}

func TestShowCollectionsIsFiltered(t *testing.T) {
	a, _ := newAuthorizer(t)
	call := Call{Principal: Principal{User: "alice"}, Method: method("ShowCollections"), Message: marshal(t, &milvuspb.ShowCollectionsRequest{})}
	filter, err := a.Visibility(call)
	if err != nil || filter == nil {
		t.Fatalf("no filter for ShowCollections: %v", err)
	}
	reply, _ := proto.Marshal(&milvuspb.ShowCollectionsResponse{
		CollectionNames:   []string{"books", "films", "secret"},
		CollectionIds:     []int64{1, 2, 3},
		CreatedTimestamps: []uint64{10, 20, 30},
		ShardsNum:         []int32{1, 2, 3},
	})
	out, err := filter(reply)
	if err != nil {
		t.Fatal(err)
	}
	var got milvuspb.ShowCollectionsResponse
	if err := proto.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.CollectionNames, []string{"books", "films"}) || !slices.Equal(got.CollectionIds, []int64{1, 2}) ||
		!slices.Equal(got.CreatedTimestamps, []uint64{10, 20}) || !slices.Equal(got.ShardsNum, []int32{1, 2}) {
		t.Fatalf("filtered reply: %v", &got)
	}
	dbs, _ := proto.Marshal(&milvuspb.ListDatabasesResponse{DbNames: []string{"default", "db2"}, DbIds: []int64{1, 2}})
	filter, _ = a.Visibility(Call{Principal: Principal{User: "alice"}, Method: method("ListDatabases")})
	out, _ = filter(dbs)
	var gotDBs milvuspb.ListDatabasesResponse
	_ = proto.Unmarshal(out, &gotDBs)
	if !slices.Equal(gotDBs.DbNames, []string{"default"}) || !slices.Equal(gotDBs.DbIds, []int64{1}) {
		t.Fatalf("filtered databases: %v", &gotDBs)
	}
}

// DescribeCollection is answered as Milvus 2.5 answers it: the backend's
// "collection not found" as it is (so has_collection says false to
// anyone), an invisible collection as an OK reply with status 1401, and
// visibility judged on the collection the backend found (an alias's).
func TestDescribeCollectionAnswersAsMilvus(t *testing.T) {
	a, _ := newAuthorizer(t)
	describe := func(name string, backend *milvuspb.DescribeCollectionResponse) *milvuspb.DescribeCollectionResponse {
		t.Helper()
		filter, err := a.Visibility(Call{Principal: Principal{User: "alice"}, Method: method("DescribeCollection"),
			Message: marshal(t, &milvuspb.DescribeCollectionRequest{CollectionName: name})})
		if err != nil || filter == nil {
			t.Fatalf("describe %s: no reply decision (%v): the call would be refused before the backend answers", name, err)
		}
		reply, _ := proto.Marshal(backend)
		out, err := filter(reply)
		if err != nil {
			t.Fatal(err)
		}
		var got milvuspb.DescribeCollectionResponse
		if err := proto.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		return &got
	}
	found := func(name string) *milvuspb.DescribeCollectionResponse {
		return &milvuspb.DescribeCollectionResponse{Status: &commonpb.Status{}, CollectionName: name, Schema: &schemapb.CollectionSchema{Name: name}}
	}
	notFound := &commonpb.Status{ErrorCode: commonpb.ErrorCode_UnexpectedError, Code: 100, Reason: "can't find collection[database=default][collection=nowhere]"}
	if got := describe("nowhere", &milvuspb.DescribeCollectionResponse{Status: notFound}); !proto.Equal(got.Status, notFound) {
		t.Errorf("describe a missing collection: %v, want the backend's not found", got.Status)
	}
	want := &commonpb.Status{ErrorCode: commonpb.ErrorCode_UnexpectedError, Code: 1401,
		Reason: "not allowed to access collection, collection name: secret: privilege not permitted"}
	if got := describe("secret", found("secret")); !proto.Equal(got.Status, want) || got.Schema != nil {
		t.Errorf("describe an invisible collection: %v, want %v and nothing of it", got, want)
	}
	if got := describe("films", found("films")); got.Status.GetCode() != 0 || got.Schema.GetName() != "films" {
		t.Errorf("describe a visible collection: %v", got)
	}
	// An alias of secret named like a visible collection does not show it.
	if got := describe("films_alias", found("secret")); got.Status.GetCode() != 1401 {
		t.Errorf("describe secret through an alias: %v", got)
	}

	// DescribeDatabase: visibility first, whatever the backend says.
	filter, err := a.Visibility(Call{Principal: Principal{User: "alice"}, Method: method("DescribeDatabase"),
		Message: marshal(t, &milvuspb.DescribeDatabaseRequest{DbName: "db2"})})
	if err != nil || filter == nil {
		t.Fatalf("describe db2: %v", err)
	}
	reply, _ := proto.Marshal(&milvuspb.DescribeDatabaseResponse{Status: &commonpb.Status{}, DbName: "db2", DbID: 7})
	out, _ := filter(reply)
	var db milvuspb.DescribeDatabaseResponse
	_ = proto.Unmarshal(out, &db)
	if db.Status.GetCode() != 1401 || db.Status.GetReason() != "not allowed to access database, db name: db2: privilege not permitted" || db.DbID != 0 {
		t.Errorf("describe an invisible database: %v", &db)
	}
}

// With otherServices admin, only admin may call services other than
// MilvusService; by default any authenticated user may.
func TestOtherServicesRule(t *testing.T) {
	a, _ := newAuthorizer(t)
	health := Call{Principal: Principal{User: "alice"}, Method: "/grpc.health.v1.Health/Check"}
	if err := a.Authorize(health); err != nil {
		t.Fatalf("default: %v", err)
	}
	a.SetOptions(Options{EnablePublicPrivilege: true, OtherServicesAdminOnly: true})
	if err := a.Authorize(health); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("admin only: alice got %v", err)
	}
	health.User = "ops"
	if err := a.Authorize(health); err != nil {
		t.Fatalf("admin only: ops (admin) got %v", err)
	}
}

// External identities: their mapped roles, plus the roles the store binds
// to their name; never root's implicit rights; admin only when mapped.
func TestExternalPrincipals(t *testing.T) {
	a, _ := newAuthorizer(t)
	search := marshal(t, &milvuspb.SearchRequest{CollectionName: "books"})
	insert := marshal(t, &milvuspb.InsertRequest{CollectionName: "books"})
	for _, c := range []struct {
		what    string
		who     Principal
		msg     [][]byte
		method  string
		allowed bool
	}{
		{"mapped reader searches", Principal{User: "dana", Roles: []string{"reader"}, Source: "oidc"}, search, "Search", true},
		{"mapped reader inserts", Principal{User: "dana", Roles: []string{"reader"}, Source: "oidc"}, insert, "Insert", false},
		{"no roles", Principal{User: "dana", Source: "ldap"}, search, "Search", false},
		{"an external root is no root", Principal{User: "root", Source: "oidc"}, insert, "Insert", false},
		{"mapped admin", Principal{User: "dana", Roles: []string{credentials.RoleAdmin}, Source: "ldap"}, insert, "Insert", true},
		{"the store's bindings of the name count", Principal{User: "alice", Source: "ldap"}, search, "Search", true},
		{"an unknown mapped role is nothing", Principal{User: "dana", Roles: []string{"nope"}, Source: "oidc"}, search, "Search", false},
	} {
		err := a.Authorize(Call{Principal: c.who, Method: method(c.method), Message: c.msg})
		if (err == nil) != c.allowed {
			t.Errorf("%s: %v, allowed want %v", c.what, err, c.allowed)
		}
	}
	if !a.IsAdmin(Principal{User: "root"}) || a.IsAdmin(Principal{User: "root", Source: "oidc"}) {
		t.Error("root is admin only as the local root")
	}
	if got := a.RolesOf(Principal{User: "alice", Roles: []string{"writer"}, Source: "ldap"}); !slices.Equal(got, []string{"reader", "writer", "public"}) {
		t.Errorf("roles of an external alice: %v", got)
	}
}

// The README's choice: Global All granted in database default covers that
// database's privileges but not user and role management, which is checked
// on every database ("*", Milvus master's rule); All granted on "*" does
// (Milvus 2.5 would let the first manage users: its grant's database equals
// the request's).
func TestAllInOneDatabaseIsNotClusterWide(t *testing.T) {
	a, store := newAuthorizer(t)
	err := store.Update(context.Background(), func(s *credentials.Set) error {
		s.PutRole(&credentials.Role{Name: "dbowner"})
		s.PutRole(&credentials.Role{Name: "owner"})
		s.PutUser(&credentials.User{Name: "dora", PasswordHash: testHash, Roles: []string{"dbowner"}})
		s.PutUser(&credentials.User{Name: "olga", PasswordHash: testHash, Roles: []string{"owner"}})
		s.PutGrant(&credentials.Grant{Role: "dbowner", Object: "Global", ObjectName: "*", DB: "default", Privilege: "All"})
		s.PutGrant(&credentials.Grant{Role: "owner", Object: "Global", ObjectName: "*", DB: "*", Privilege: "All"})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	createUser := func(user string) error {
		return a.Authorize(Call{Principal: Principal{User: user}, Method: method("CreateCredential"), Message: marshal(t, &milvuspb.CreateCredentialRequest{Username: "x"})})
	}
	drop := Call{Principal: Principal{User: "dora"}, Method: method("DropCollection"), Message: marshal(t, &milvuspb.DropCollectionRequest{CollectionName: "books"})}
	if err := a.Authorize(drop); err != nil {
		t.Errorf("All in default does not cover DropCollection there: %v", err)
	}
	if err := createUser("dora"); status.Convert(err).Message() != "PrivilegeCreateOwnership: permission deny to dora in the `default` database" {
		t.Errorf("All in default manages users: %v", err)
	}
	if err := createUser("olga"); err != nil {
		t.Errorf("All on * does not manage users: %v", err)
	}
	if a.IsAdmin(Principal{User: "root"}) != true {
		t.Error("root, bootstrapped with no role, is not an administrator")
	}
}

// A cluster-level privilege, stored on every database, does not make every
// database visible: a role that may only list users sees no database,
// where one granted the ClusterReadOnly group (which Milvus grants on "*")
// sees them all.
func TestClusterLevelGrantShowsNoDatabase(t *testing.T) {
	a, store := newAuthorizer(t)
	err := store.Update(context.Background(), func(s *credentials.Set) error {
		s.PutRole(&credentials.Role{Name: "lister"})
		s.PutRole(&credentials.Role{Name: "auditor"})
		s.PutUser(&credentials.User{Name: "lena", PasswordHash: testHash, Roles: []string{"lister"}})
		s.PutUser(&credentials.User{Name: "aldo", PasswordHash: testHash, Roles: []string{"auditor"}})
		s.PutGrant(&credentials.Grant{Role: "lister", Object: "User", ObjectName: "*", DB: "*", Privilege: "SelectUser"})
		s.PutGrant(&credentials.Grant{Role: "auditor", Object: "Global", ObjectName: "*", DB: "*", Privilege: "ClusterReadOnly", V2: true})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if a.SeesDatabase(Principal{User: "lena"}, "db2") {
		t.Error("a SelectUser grant shows db2")
	}
	if !a.SeesDatabase(Principal{User: "aldo"}, "db2") {
		t.Error("a ClusterReadOnly grant on * does not show db2")
	}
}
