package integration

import (
	"slices"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus/client/v2/entity"
	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"google.golang.org/grpc/metadata"

	"github.com/authproxy/authproxy/test/harness"
)

// The database dimension end to end, with the Go SDK: a collection books
// in db1 and another in db2 (same name, other rows), each with partition
// p1 and alias shelf. A grant in db1 opens db1's books, its partitions,
// and (once granted on the alias name, since Milvus 2.5 does not resolve
// aliases for privileges) its alias, and nothing of db2; a grant in db2
// then opens db2, and revoking db1's closes db1.
func TestRBACWalkInTwoDatabases(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	ctx := testCtx(t, 120*time.Second)
	root := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "root", Password: "Milvus"})
	rows := map[string]int{"db1": 3, "db2": 5}
	for _, db := range []string{"db1", "db2"} {
		must(t, root.CreateDatabase(ctx, milvusclient.NewCreateDatabaseOption(db)))
		in := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "root", Password: "Milvus", DBName: db})
		createVectors(t, ctx, in, "books", 4)
		must(t, in.CreatePartition(ctx, milvusclient.NewCreatePartitionOption("books", "p1")))
		ids, vecs := vectors(rows[db], 4)
		_, err := in.Insert(ctx, milvusclient.NewColumnBasedInsertOption("books").WithPartition("p1").
			WithInt64Column("id", ids).WithFloatVectorColumn("vec", 4, vecs))
		must(t, err)
		must(t, in.CreateAlias(ctx, milvusclient.NewCreateAliasOption("books", "shelf")))
	}

	must(t, root.CreateRole(ctx, milvusclient.NewCreateRoleOption("reader")))
	must(t, root.GrantPrivilegeV2(ctx, milvusclient.NewGrantPrivilegeV2Option("reader", "CollectionReadOnly", "books").WithDbName("db1")))
	harness.Password("carol", "Carol-pw-1")
	must(t, root.CreateUser(ctx, milvusclient.NewCreateUserOption("carol", "Carol-pw-1")))
	must(t, root.GrantRole(ctx, milvusclient.NewGrantRoleOption("carol", "reader")))
	carol := map[string]*milvusclient.Client{}
	for _, db := range []string{"db1", "db2"} {
		carol[db] = sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "carol", Password: "Carol-pw-1", DBName: db})
	}

	// search returns how many rows a search of name (in partition p1 when
	// inP1) finds, or the refusal.
	search := func(c *milvusclient.Client, name string, inP1 bool) (int, error) {
		opt := milvusclient.NewSearchOption(name, 10, []entity.Vector{constVec(1, 4)}).WithANNSField("vec")
		if inP1 {
			opt = opt.WithPartitions("p1")
		}
		res, err := c.Search(ctx, opt)
		if err != nil {
			return 0, err
		}
		return res[0].IDs.Len(), nil
	}
	count := func(c *milvusclient.Client, name string) (int64, error) {
		rs, err := c.Query(ctx, milvusclient.NewQueryOption(name).WithPartitions("p1").WithOutputFields("count(*)"))
		if err != nil {
			return 0, err
		}
		return rs.GetColumn("count(*)").GetAsInt64(0)
	}
	opens := func(db string) {
		t.Helper()
		for _, inP1 := range []bool{false, true} {
			if n, err := search(carol[db], "books", inP1); err != nil || n != rows[db] {
				t.Errorf("carol searches %s.books (p1 only: %v): %d rows, %v; want %d", db, inP1, n, err, rows[db])
			}
		}
		if n, err := count(carol[db], "books"); err != nil || n != int64(rows[db]) {
			t.Errorf("carol counts %s.books/p1: %d, %v; want %d", db, n, err, rows[db])
		}
		parts, err := carol[db].ListPartitions(ctx, milvusclient.NewListPartitionOption("books"))
		if err != nil || !slices.Equal(parts, []string{"_default", "p1"}) {
			t.Errorf("carol lists %s.books' partitions: %v %v", db, parts, err)
		}
		if names, err := carol[db].ListCollections(ctx, milvusclient.NewListCollectionOption()); err != nil || !slices.Equal(names, []string{"books"}) {
			t.Errorf("carol lists %v (%v) in %s, want [books]", names, err, db)
		}
	}
	closed := func(db string) {
		t.Helper()
		// A new client: the SDK caches the collections it described.
		c := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "carol", Password: "Carol-pw-1", DBName: db})
		_, err := search(c, "books", false)
		wantNotPermitted(t, "SDK search of "+db+".books", err, "collection", "books")
		_, err = count(c, "books")
		wantNotPermitted(t, "SDK query of "+db+".books", err, "collection", "books")
		_, err = c.ListPartitions(ctx, milvusclient.NewListPartitionOption("books"))
		wantDenied(t, "list "+db+".books' partitions", err, deny("PrivilegeShowPartitions", "carol", db))
		if names, err := c.ListCollections(ctx, milvusclient.NewListCollectionOption()); err != nil || len(names) != 0 {
			t.Errorf("carol lists %v (%v) in %s, want nothing", names, err, db)
		}
	}
	opens("db1")
	closed("db2")
	dbs, err := carol["db1"].ListDatabase(ctx, milvusclient.NewListDatabaseOption())
	if err != nil || !slices.Equal(dbs, []string{"db1"}) {
		t.Errorf("carol lists databases %v %v, want [db1]", dbs, err)
	}

	// The request's db_name is the database checked, whatever the dbname
	// metadata says (milvus#50678).
	raw := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	asCarolInDB1 := metadata.AppendToOutgoingContext(withToken(ctx, "carol:Carol-pw-1"), "dbname", "db1")
	_, err = raw.Search(asCarolInDB1, &milvuspb.SearchRequest{DbName: "db2", CollectionName: "books", PartitionNames: []string{"p1"}})
	wantDenied(t, "search db2.books from a db1 connection", err, deny("PrivilegeSearch", "carol", "db2"))
	// The list is filtered by the database the backend lists, the
	// request's db_name, on both cores (the relay once filtered by the
	// dbname metadata alone).
	shown, err := raw.ShowCollections(withToken(ctx, "carol:Carol-pw-1"), &milvuspb.ShowCollectionsRequest{DbName: "db1"})
	if err != nil || !slices.Equal(shown.GetCollectionNames(), []string{"books"}) {
		t.Errorf("carol shows db1's collections without dbname metadata: %v %v, want [books]", shown.GetCollectionNames(), err)
	}

	// An alias is its own name to RBAC, in its database.
	_, err = search(carol["db1"], "shelf", false)
	wantDenied(t, "search db1.shelf", err, deny("PrivilegeSearch", "carol", "db1"))
	must(t, root.GrantPrivilegeV2(ctx, milvusclient.NewGrantPrivilegeV2Option("reader", "Search", "shelf").WithDbName("db1")))
	if n, err := search(carol["db1"], "shelf", true); err != nil || n != rows["db1"] {
		t.Errorf("search db1.shelf/p1 after its grant: %d %v", n, err)
	}
	_, err = search(carol["db2"], "shelf", false)
	wantNotPermitted(t, "SDK search of db2.shelf", err, "collection", "shelf")

	// Grant in db2, revoke in db1.
	must(t, root.GrantPrivilegeV2(ctx, milvusclient.NewGrantPrivilegeV2Option("reader", "CollectionReadOnly", "books").WithDbName("db2")))
	opens("db2")
	must(t, root.RevokePrivilegeV2(ctx, milvusclient.NewRevokePrivilegeV2Option("reader", "CollectionReadOnly", "books").WithDbName("db1")))
	closed("db1")
	opens("db2")
}
