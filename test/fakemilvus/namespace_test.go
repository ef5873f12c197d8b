package fakemilvus_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus/client/v2/entity"
	"github.com/milvus-io/milvus/client/v2/index"
	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"github.com/milvus-io/milvus/pkg/v2/util/merr"
)

// wantCode checks a refusal's merr code and message, as the SDK reports it.
func wantCode(t *testing.T, what string, err error, code int32, msg string) {
	t.Helper()
	if err == nil || merr.Code(err) != code || err.Error() != msg {
		t.Errorf("%s: %v (code %d), want %d %q", what, err, merr.Code(err), code, msg)
	}
}

// Databases as Milvus keeps them: the same collection name in two
// databases holds two collections; default always exists and cannot be
// dropped; a database with collections cannot be dropped; a call in a
// missing database is database-not-found.
func TestDatabases(t *testing.T) {
	_, addr := startFake(t)
	ctx := testCtx(t, 30*time.Second)
	c := sdk(t, ctx, addr)
	must(t, c.CreateDatabase(ctx, milvusclient.NewCreateDatabaseOption("db1").WithProperty("k", "v")))
	wantCode(t, "create db1 again", c.CreateDatabase(ctx, milvusclient.NewCreateDatabaseOption("db1")), 65535, "database already exist: db1")
	names, err := c.ListDatabase(ctx, milvusclient.NewListDatabaseOption())
	must(t, err)
	if !slices.Equal(names, []string{"db1", "default"}) {
		t.Errorf("databases %v", names)
	}
	db, err := c.DescribeDatabase(ctx, milvusclient.NewDescribeDatabaseOption("db1"))
	must(t, err)
	if db.Name != "db1" || db.Properties["k"] != "v" {
		t.Errorf("describe db1: %+v", db)
	}
	must(t, c.AlterDatabaseProperties(ctx, milvusclient.NewAlterDatabasePropertiesOption("db1").WithProperty("k", "w")))
	if db, err = c.DescribeDatabase(ctx, milvusclient.NewDescribeDatabaseOption("db1")); err != nil || db.Properties["k"] != "w" {
		t.Errorf("after alter: %+v %v", db, err)
	}

	c1 := sdkIn(t, ctx, addr, "db1")
	createVectors(t, ctx, c, "books", 4)
	createVectors(t, ctx, c1, "books", 4)
	ids, tags, vecs := rows(3, 4)
	_, err = c1.Insert(ctx, milvusclient.NewColumnBasedInsertOption("books").
		WithInt64Column("id", ids).WithVarcharColumn("tag", tags).WithFloatVectorColumn("vec", 4, vecs))
	must(t, err)
	if n := count(t, ctx, c1, "books"); n != 3 {
		t.Errorf("db1.books has %d rows, want 3", n)
	}
	if n := count(t, ctx, c, "books"); n != 0 {
		t.Errorf("default.books has %d rows, want 0: the databases share a collection", n)
	}
	raw := milvuspb.NewMilvusServiceClient(dial(t, addr))
	d, err := raw.DescribeCollection(outgoing(ctx, "dbname", "db1"), &milvuspb.DescribeCollectionRequest{CollectionName: "books"})
	if err != nil || d.GetDbName() != "db1" || d.GetCollectionID() == 0 {
		t.Errorf("db1.books describes as %v %v", d, err)
	}

	wantCode(t, "drop default", c.DropDatabase(ctx, milvusclient.NewDropDatabaseOption("default")), 65535, "can not drop default database")
	wantCode(t, "drop db1 with a collection", c.DropDatabase(ctx, milvusclient.NewDropDatabaseOption("db1")), 65535,
		"database:db1 not empty, must drop all collections before drop database")
	nowhere := sdkIn(t, ctx, addr, "nowhere")
	_, err = nowhere.HasCollection(ctx, milvusclient.NewHasCollectionOption("books"))
	wantCode(t, "a call in a missing database", err, 800, "database not found[database=nowhere]")
	must(t, c1.DropCollection(ctx, milvusclient.NewDropCollectionOption("books")))
	must(t, c.DropDatabase(ctx, milvusclient.NewDropDatabaseOption("db1")))
	if names, _ := c.ListDatabase(ctx, milvusclient.NewListDatabaseOption()); !slices.Equal(names, []string{"default"}) {
		t.Errorf("after dropping db1: %v", names)
	}
	// The request's db_name wins over the dbname metadata.
	has, err := raw.HasCollection(outgoing(ctx, "dbname", "nowhere"), &milvuspb.HasCollectionRequest{DbName: "default", CollectionName: "books"})
	if err != nil || !has.GetValue() {
		t.Errorf("has default.books with db_name set and another dbname: %v %v", has, err)
	}
}

// sdkIn connects the SDK with database db.
func sdkIn(t *testing.T, ctx context.Context, addr, db string) *milvusclient.Client {
	t.Helper()
	c, err := milvusclient.New(ctx, &milvusclient.ClientConfig{Address: addr, DBName: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// Partitions: rows land in the partition named on insert, and search,
// query and delete read the partitions named.
func TestPartitions(t *testing.T) {
	_, addr := startFake(t)
	ctx := testCtx(t, 30*time.Second)
	c := sdk(t, ctx, addr)
	createVectors(t, ctx, c, "books", 4)
	must(t, c.CreatePartition(ctx, milvusclient.NewCreatePartitionOption("books", "p1")))
	must(t, c.CreatePartition(ctx, milvusclient.NewCreatePartitionOption("books", "p1"))) // again: success, as Milvus
	parts, err := c.ListPartitions(ctx, milvusclient.NewListPartitionOption("books"))
	must(t, err)
	if !slices.Equal(parts, []string{"_default", "p1"}) {
		t.Errorf("partitions %v", parts)
	}
	has, err := c.HasPartition(ctx, milvusclient.NewHasPartitionOption("books", "p1"))
	if err != nil || !has {
		t.Errorf("has p1: %v %v", has, err)
	}
	ids, tags, vecs := rows(4, 4)
	_, err = c.Insert(ctx, milvusclient.NewColumnBasedInsertOption("books").WithPartition("p1").
		WithInt64Column("id", ids[:2]).WithVarcharColumn("tag", tags[:2]).WithFloatVectorColumn("vec", 4, vecs[:2]))
	must(t, err)
	_, err = c.Insert(ctx, milvusclient.NewColumnBasedInsertOption("books").
		WithInt64Column("id", ids[2:]).WithVarcharColumn("tag", tags[2:]).WithFloatVectorColumn("vec", 4, vecs[2:]))
	must(t, err)
	rs, err := c.Query(ctx, milvusclient.NewQueryOption("books").WithPartitions("p1").WithOutputFields("count(*)"))
	must(t, err)
	if n, _ := rs.GetColumn("count(*)").GetAsInt64(0); n != 2 {
		t.Errorf("p1 holds %d rows, want 2", n)
	}
	res, err := c.Search(ctx, milvusclient.NewSearchOption("books", 10, []entity.Vector{constVec(3, 4)}).WithANNSField("vec").WithPartitions("_default"))
	must(t, err)
	if got := res[0].IDs.Len(); got != 2 {
		t.Errorf("a search of _default finds %d rows, want 2", got)
	}
	_, err = c.Query(ctx, milvusclient.NewQueryOption("books").WithPartitions("nope").WithOutputFields("count(*)"))
	wantCode(t, "query a missing partition", err, 200, "partition not found[partition=nope]")
	wantCode(t, "drop _default", c.DropPartition(ctx, milvusclient.NewDropPartitionOption("books", "_default")), 65535, "default partition cannot be deleted")
	must(t, c.DropPartition(ctx, milvusclient.NewDropPartitionOption("books", "p1")))
	if n := count(t, ctx, c, "books"); n != 2 {
		t.Errorf("after dropping p1: %d rows, want 2", n)
	}
}

// Aliases name a collection of their database; every data call reads
// through them; a collection with aliases cannot be dropped.
func TestAliases(t *testing.T) {
	_, addr := startFake(t)
	ctx := testCtx(t, 30*time.Second)
	c := sdk(t, ctx, addr)
	createVectors(t, ctx, c, "books", 4)
	createVectors(t, ctx, c, "films", 4)
	must(t, c.CreateAlias(ctx, milvusclient.NewCreateAliasOption("books", "current")))
	wantCode(t, "alias named like a collection", c.CreateAlias(ctx, milvusclient.NewCreateAliasOption("books", "films")), 1601,
		"alias and collection name conflict[database=default][alias=films]")
	wantCode(t, "alias twice", c.CreateAlias(ctx, milvusclient.NewCreateAliasOption("films", "current")), 1602,
		"alias already exist[database=default][alias=current]")
	a, err := c.DescribeAlias(ctx, milvusclient.NewDescribeAliasOption("current"))
	if err != nil || a.CollectionName != "books" {
		t.Errorf("describe current: %+v %v", a, err)
	}
	ids, tags, vecs := rows(2, 4)
	_, err = c.Insert(ctx, milvusclient.NewColumnBasedInsertOption("current").
		WithInt64Column("id", ids).WithVarcharColumn("tag", tags).WithFloatVectorColumn("vec", 4, vecs))
	must(t, err)
	if n := count(t, ctx, c, "books"); n != 2 {
		t.Errorf("books has %d rows after an insert through its alias, want 2", n)
	}
	raw := milvuspb.NewMilvusServiceClient(dial(t, addr))
	d, err := raw.DescribeCollection(ctx, &milvuspb.DescribeCollectionRequest{CollectionName: "current"})
	if err != nil || d.GetSchema().GetName() != "books" || !slices.Equal(d.GetAliases(), []string{"current"}) {
		t.Errorf("describe through the alias: %v %v", d, err)
	}
	wantCode(t, "drop a collection with aliases", c.DropCollection(ctx, milvusclient.NewDropCollectionOption("books")), 65535,
		"unable to drop the collection [books] because it has associated aliases [current], please remove all aliases before dropping the collection")
	must(t, c.AlterAlias(ctx, milvusclient.NewAlterAliasOption("current", "films")))
	aliases, err := c.ListAliases(ctx, milvusclient.NewListAliasesOption("films"))
	if err != nil || !slices.Equal(aliases, []string{"current"}) {
		t.Errorf("films' aliases %v %v", aliases, err)
	}
	must(t, c.DropAlias(ctx, milvusclient.NewDropAliasOption("current")))
	_, err = c.DescribeAlias(ctx, milvusclient.NewDescribeAliasOption("current"))
	wantCode(t, "describe a dropped alias", err, 1600, "alias not found[database=default][alias=current]")
	must(t, c.DropCollection(ctx, milvusclient.NewDropCollectionOption("books")))
	// A missing collection is answered as Milvus 2.5's proxy answers it.
	d, err = raw.DescribeCollection(ctx, &milvuspb.DescribeCollectionRequest{CollectionName: "books"})
	if st := d.GetStatus(); err != nil || st.GetErrorCode() != commonpb.ErrorCode_CollectionNotExists || st.GetCode() != 0 ||
		st.GetReason() != "can't find collection[database=default][collection=books]" {
		t.Errorf("describe a dropped collection: %v %v", st, err)
	}
	if has, err := c.HasCollection(ctx, milvusclient.NewHasCollectionOption("books")); err != nil || has {
		t.Errorf("has a dropped collection: %v %v", has, err)
	}
}

// DropIndex, ManualCompaction and a range search.
func TestDropIndexCompactionAndRangeSearch(t *testing.T) {
	_, addr := startFake(t)
	ctx := testCtx(t, 30*time.Second)
	c := sdk(t, ctx, addr)
	createVectors(t, ctx, c, "books", 2)
	ids, tags, vecs := rows(5, 2)
	_, err := c.Insert(ctx, milvusclient.NewColumnBasedInsertOption("books").
		WithInt64Column("id", ids).WithVarcharColumn("tag", tags).WithFloatVectorColumn("vec", 2, vecs))
	must(t, err)

	// Squared L2 from (0,0) to row i is 2i²: 0, 2, 8, 18, 32. Milvus keeps
	// range_filter <= d < radius.
	ann := index.NewCustomAnnParam()
	ann.WithRadius(20)
	ann.WithRangeFilter(2)
	res, err := c.Search(ctx, milvusclient.NewSearchOption("books", 10, []entity.Vector{constVec(0, 2)}).WithANNSField("vec").WithAnnParam(ann))
	must(t, err)
	var got []int64
	for i := range res[0].IDs.Len() {
		id, _ := res[0].IDs.GetAsInt64(i)
		got = append(got, id)
	}
	if !slices.Equal(got, []int64{1, 2, 3}) {
		t.Errorf("range search found %v, want [1 2 3]", got)
	}

	id, err := c.Compact(ctx, milvusclient.NewCompactOption("books"))
	must(t, err)
	state, err := c.GetCompactionState(ctx, milvusclient.NewGetCompactionStateOption(id))
	if err != nil || state != entity.CompactionStateCompleted {
		t.Errorf("compaction %d: %v %v", id, state, err)
	}

	wantCode(t, "drop the index of a loaded collection", c.DropIndex(ctx, milvusclient.NewDropIndexOption("books", "vec")), 65535,
		"index cannot be dropped, collection is loaded, please release it first")
	must(t, c.ReleaseCollection(ctx, milvusclient.NewReleaseCollectionOption("books")))
	must(t, c.DropIndex(ctx, milvusclient.NewDropIndexOption("books", "vec")))
	_, err = c.DescribeIndex(ctx, milvusclient.NewDescribeIndexOption("books", "vec"))
	if merr.Code(err) != merr.Code(merr.ErrIndexNotFound) {
		t.Errorf("describe a dropped index: %v", err)
	}
}
