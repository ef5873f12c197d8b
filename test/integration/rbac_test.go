package integration

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus/client/v2/entity"
	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"github.com/milvus-io/milvus/pkg/v2/util/merr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/authproxy/authproxy/test/harness"
)

func deny(privilege, user, db string) string {
	return privilege + ": permission deny to " + user + " in the `" + db + "` database"
}

// wantNotPermitted checks an SDK error made from a reply's status: Milvus
// refuses to describe a collection or database the caller may not see
// with an OK reply whose status is ErrPrivilegeNotPermitted (1401), not
// with a gRPC error.
func wantNotPermitted(t *testing.T, what string, err error, kind, name string) {
	t.Helper()
	msg := "not allowed to access " + kind + ", collection name: " + name + ": privilege not permitted"
	if kind == "database" {
		msg = "not allowed to access database, db name: " + name + ": privilege not permitted"
	}
	if _, isGRPC := status.FromError(err); isGRPC || merr.Code(err) != 1401 || err.Error() != msg {
		t.Errorf("%s: %v (code %d), want status 1401 %q", what, err, merr.Code(err), msg)
	}
}

func wantDenied(t *testing.T, what string, err error, msg string) {
	t.Helper()
	if st := status.Convert(err); st.Code() != codes.PermissionDenied || st.Message() != msg {
		t.Errorf("%s: %v, want PermissionDenied %q", what, err, msg)
	}
}

// The RBAC walk of the issue, with the Milvus Go SDK against the real
// binary: a role with v1 and v2 grants, a user bound to it, what she may
// and may not do, and what she sees.
func TestRBACWalkWithTheGoSDK(t *testing.T) {
	fake, p := startPair(t, harness.Options{})
	ctx := testCtx(t, 120*time.Second)
	root := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "root", Password: "Milvus"})
	for _, name := range []string{"books", "films", "secret"} {
		createVectors(t, ctx, root, name, 8)
	}

	must(t, root.CreateRole(ctx, milvusclient.NewCreateRoleOption("reader")))
	must(t, root.GrantPrivilege(ctx, milvusclient.NewGrantPrivilegeOption("reader", "Collection", "Search", "books")))
	must(t, root.GrantPrivilege(ctx, milvusclient.NewGrantPrivilegeOption("reader", "Collection", "Query", "books")))
	must(t, root.GrantPrivilegeV2(ctx, milvusclient.NewGrantPrivilegeV2Option("reader", "CollectionReadOnly", "films")))
	harness.Password("alice", "Alice-pw-1")
	must(t, root.CreateUser(ctx, milvusclient.NewCreateUserOption("alice", "Alice-pw-1")))
	must(t, root.GrantRole(ctx, milvusclient.NewGrantRoleOption("alice", "reader")))

	alice := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "alice", Password: "Alice-pw-1"})
	search := func(c *milvusclient.Client, name string) error {
		_, err := c.Search(ctx, milvusclient.NewSearchOption(name, 3, []entity.Vector{constVec(7, 8)}).WithANNSField("vec"))
		return err
	}
	query := func(c *milvusclient.Client, name string) error {
		_, err := c.Query(ctx, milvusclient.NewQueryOption(name).WithFilter("id in [1, 2]").WithOutputFields("id"))
		return err
	}
	for _, name := range []string{"books", "films"} {
		must(t, search(alice, name))
		must(t, query(alice, name))
	}
	inserts := len(fake.Recorder().CallsTo("Insert"))
	ids, vecs := vectors(2, 8)
	_, err := alice.Insert(ctx, milvusclient.NewColumnBasedInsertOption("books").WithInt64Column("id", ids).WithFloatVectorColumn("vec", 8, vecs))
	wantDenied(t, "insert into books", err, deny("PrivilegeInsert", "alice", "default"))
	// The SDK describes a collection before its first search: secret is
	// invisible to alice, so that is what refuses her (Milvus 2.5.12+).
	wantNotPermitted(t, "SDK search of secret", search(alice, "secret"), "collection", "secret")
	rawAlice := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	asAlice := withToken(ctx, "alice:Alice-pw-1")
	_, err = rawAlice.Search(asAlice, &milvuspb.SearchRequest{CollectionName: "secret"})
	wantDenied(t, "search secret", err, deny("PrivilegeSearch", "alice", "default"))
	wantDenied(t, "drop books", alice.DropCollection(ctx, milvusclient.NewDropCollectionOption("books")), deny("PrivilegeDropCollection", "alice", "default"))
	names, err := alice.ListCollections(ctx, milvusclient.NewListCollectionOption())
	must(t, err)
	if !slices.Equal(names, []string{"books", "films"}) {
		t.Errorf("alice lists %v, want [books films]", names)
	}
	if n := len(fake.Recorder().CallsTo("Insert")) - inserts; n != 0 {
		t.Errorf("the backend saw %d of alice's refused inserts", n)
	}

	// Database db2, with its own books: nothing.
	must(t, root.CreateDatabase(ctx, milvusclient.NewCreateDatabaseOption("db2")))
	rootDB2 := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "root", Password: "Milvus", DBName: "db2"})
	createVectors(t, ctx, rootDB2, "books", 8)
	inDB2 := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "alice", Password: "Alice-pw-1", DBName: "db2"})
	wantNotPermitted(t, "SDK search of books in db2", search(inDB2, "books"), "collection", "books")
	db2 := metadata.AppendToOutgoingContext(asAlice, "dbname", "db2")
	_, err = rawAlice.Search(db2, &milvuspb.SearchRequest{CollectionName: "books"})
	wantDenied(t, "search books in db2", err, deny("PrivilegeSearch", "alice", "db2"))
	_, err = rawAlice.Query(db2, &milvuspb.QueryRequest{CollectionName: "books"})
	wantDenied(t, "query books in db2", err, deny("PrivilegeQuery", "alice", "db2"))
	if names, err := inDB2.ListCollections(ctx, milvusclient.NewListCollectionOption()); err != nil || len(names) != 0 {
		t.Errorf("alice lists %v (%v) in db2, want nothing", names, err)
	}

	// SelectGrant and SelectUser answer in Milvus's shape.
	role, err := root.DescribeRole(ctx, milvusclient.NewDescribeRoleOption("reader"))
	must(t, err)
	var grants []string
	for _, g := range role.Privileges {
		grants = append(grants, strings.Join([]string{g.Object, g.ObjectName, g.Privilege, g.DbName, g.Grantor, g.RoleName}, " "))
	}
	slices.Sort(grants)
	want := []string{
		"Collection books Query default root reader",
		"Collection books Search default root reader",
		"Global films CollectionReadOnly default root reader",
	}
	if !slices.Equal(grants, want) {
		t.Errorf("DescribeRole(reader) grants:\n%s\nwant\n%s", strings.Join(grants, "\n"), strings.Join(want, "\n"))
	}
	u, err := root.DescribeUser(ctx, milvusclient.NewDescribeUserOption("alice"))
	must(t, err)
	if !slices.Equal(u.Roles, []string{"reader"}) {
		t.Errorf("alice's roles %v", u.Roles)
	}

	// A revoke applies to her next call.
	must(t, root.RevokePrivilege(ctx, milvusclient.NewRevokePrivilegeOption("reader", "Collection", "Search", "books")))
	wantDenied(t, "search books after the revoke", search(alice, "books"), deny("PrivilegeSearch", "alice", "default"))
	must(t, query(alice, "books"))

	// She may change her own password.
	harness.Password("alice", "Alice-pw-2")
	must(t, alice.UpdatePassword(ctx, milvusclient.NewUpdatePasswordOption("alice", "Alice-pw-1", "Alice-pw-2")))

	// A role holding grants is dropped only when forced.
	raw := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	asRoot := withToken(ctx, "root:Milvus")
	st, err := raw.DropRole(asRoot, &milvuspb.DropRoleRequest{RoleName: "reader"})
	must(t, err)
	if st.GetCode() == 0 || !strings.Contains(st.GetReason(), "fail to drop the role that it has privileges") {
		t.Errorf("drop a role with grants: %v", st)
	}

	// The admin role may do everything.
	harness.Password("ops", "Ops-pw-123")
	must(t, root.CreateUser(ctx, milvusclient.NewCreateUserOption("ops", "Ops-pw-123")))
	must(t, root.GrantRole(ctx, milvusclient.NewGrantRoleOption("ops", "admin")))
	ops := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "ops", Password: "Ops-pw-123"})
	must(t, search(ops, "secret"))
	_, err = ops.Insert(ctx, milvusclient.NewColumnBasedInsertOption("secret").WithInt64Column("id", ids).WithFloatVectorColumn("vec", 8, vecs))
	must(t, err)
	must(t, ops.DropCollection(ctx, milvusclient.NewDropCollectionOption("secret")))

	st, err = raw.DropRole(asRoot, &milvuspb.DropRoleRequest{RoleName: "reader", ForceDrop: true})
	if err != nil || st.GetCode() != 0 {
		t.Fatalf("forced drop: %v %v", st, err)
	}
	alice2 := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	_, err = alice2.Query(withToken(ctx, "alice:Alice-pw-2"), &milvuspb.QueryRequest{CollectionName: "books", Expr: "id in [1, 2]"})
	wantDenied(t, "query after the role is dropped", err, deny("PrivilegeQuery", "alice", "default"))
	if got := metricValue(t, p, `authproxy_authz_decisions_total{privilege="Insert",result="denied"}`); got != 1 {
		t.Errorf("denied inserts counted: %v", got)
	}
	if !strings.Contains(p.Logs(), "audit: call denied") {
		t.Error("no audit line for a denial")
	}
}

// rawCodec sends a message's bytes as they are, so a test can craft what
// no SDK would send.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

// Escalations a client could try: the database in the metadata where the
// caller holds grants and another in the body, and a collection named
// twice with the allowed one first. Both are refused, and nothing reaches
// the backend.
func TestRBACEscalationsAreRefused(t *testing.T) {
	fake, p := startPair(t, harness.Options{})
	ctx := testCtx(t, 60*time.Second)
	root := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "root", Password: "Milvus"})
	must(t, root.CreateRole(ctx, milvusclient.NewCreateRoleOption("reader")))
	must(t, root.GrantPrivilege(ctx, milvusclient.NewGrantPrivilegeOption("reader", "Collection", "Search", "books").WithDbName("a")))
	must(t, root.GrantPrivilege(ctx, milvusclient.NewGrantPrivilegeOption("reader", "Collection", "Search", "books")))
	harness.Password("alice", "Alice-pw-1")
	must(t, root.CreateUser(ctx, milvusclient.NewCreateUserOption("alice", "Alice-pw-1")))
	must(t, root.GrantRole(ctx, milvusclient.NewGrantRoleOption("alice", "reader")))

	conn := dial(t, p.Addr, nil)
	asAlice := withToken(ctx, "alice:Alice-pw-1")
	invoke := func(ctx context.Context, msg []byte) error {
		var reply []byte
		return conn.Invoke(ctx, "/milvus.proto.milvus.MilvusService/Search", &msg, &reply, grpc.ForceCodecV2(rawCodec{}))
	}
	before := len(fake.Recorder().CallsTo("Search"))

	// dbname a in the metadata, db_name b in the body: the body wins, as in
	// the backend.
	body, _ := proto.Marshal(&milvuspb.SearchRequest{CollectionName: "books", DbName: "b"})
	wantDenied(t, "metadata a, body b", invoke(metadata.AppendToOutgoingContext(asAlice, "dbname", "a"), body), deny("PrivilegeSearch", "alice", "b"))

	// collection_name twice: books first, secret last. The backend reads
	// secret, and so does the proxy.
	twice, _ := proto.Marshal(&milvuspb.SearchRequest{CollectionName: "books"})
	twice = protowire.AppendTag(twice, 3, protowire.BytesType)
	twice = protowire.AppendString(twice, "secret")
	var check milvuspb.SearchRequest
	must(t, proto.Unmarshal(twice, &check))
	if check.GetCollectionName() != "secret" {
		t.Fatalf("a parser reads %q", check.GetCollectionName())
	}
	wantDenied(t, "books then secret", invoke(asAlice, twice), deny("PrivilegeSearch", "alice", "default"))

	// The same behind 2 MiB of vectors: the frame relay decides on the
	// leading fields as soon as they are whole, and must still see secret
	// at the end before it forwards it.
	big, _ := proto.Marshal(&milvuspb.SearchRequest{CollectionName: "books", SearchInput: &milvuspb.SearchRequest_PlaceholderGroup{PlaceholderGroup: make([]byte, 2<<20)}})
	lateSecret := protowire.AppendString(protowire.AppendTag(big, 3, protowire.BytesType), "secret")
	if err := invoke(asAlice, lateSecret); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("books, 2 MiB, then secret: %v, want PermissionDenied", err)
	}
	lateDB := protowire.AppendString(protowire.AppendTag(big, 2, protowire.BytesType), "b")
	if err := invoke(asAlice, lateDB); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("books, 2 MiB, then db_name b: %v, want PermissionDenied", err)
	}

	if n := len(fake.Recorder().CallsTo("Search")) - before; n != 0 {
		t.Fatalf("the backend saw %d of the refused searches", n)
	}
	// The allowed form of each passes, so the refusals above are about the
	// escalation and nothing else.
	allowed, _ := proto.Marshal(&milvuspb.SearchRequest{CollectionName: "books", DbName: "a"})
	if err := invoke(metadata.AppendToOutgoingContext(asAlice, "dbname", "b"), allowed); status.Code(err) == codes.PermissionDenied {
		t.Fatalf("search books in a (body) was refused: %v", err)
	}
	if err := invoke(asAlice, big); status.Code(err) == codes.PermissionDenied {
		t.Fatalf("search books with 2 MiB of vectors was refused: %v", err)
	}
	if n := len(fake.Recorder().CallsTo("Search")) - before; n != 2 {
		t.Fatalf("the backend saw %d searches, want the 2 allowed ones", n)
	}
}

// A grant written into the credential file by hand applies to the next
// call, through the live reload, as one made with the API does.
func TestHandEditedGrantAppliesToTheNextCall(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	ctx := testCtx(t, 60*time.Second)
	root := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "root", Password: "Milvus"})
	must(t, root.CreateRole(ctx, milvusclient.NewCreateRoleOption("reader")))
	harness.Password("alice", "Alice-pw-1")
	must(t, root.CreateUser(ctx, milvusclient.NewCreateUserOption("alice", "Alice-pw-1")))
	must(t, root.GrantRole(ctx, milvusclient.NewGrantRoleOption("alice", "reader")))
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	asAlice := withToken(ctx, "alice:Alice-pw-1")
	_, err := m.Query(asAlice, &milvuspb.QueryRequest{CollectionName: "books"})
	wantDenied(t, "query before the edit", err, deny("PrivilegeQuery", "alice", "default"))

	data, err := os.ReadFile(p.CredFile)
	must(t, err)
	edited := string(data) + "grants:\n  - {role: reader, object: Collection, objectName: books, db: default, privilege: Query}\n"
	writeByRename(t, p.CredFile, []byte(edited))
	eventually(t, 5*time.Second, "hand-edited grant applied", func() error {
		_, err := m.Query(asAlice, &milvuspb.QueryRequest{CollectionName: "books"})
		if status.Code(err) == codes.PermissionDenied {
			return err
		}
		return nil
	})
}
