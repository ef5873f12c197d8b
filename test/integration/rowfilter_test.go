package integration

import (
	"slices"
	"testing"
	"time"

	"github.com/milvus-io/milvus/client/v2/entity"
	"github.com/milvus-io/milvus/client/v2/index"
	"github.com/milvus-io/milvus/client/v2/milvusclient"

	"github.com/authproxy/authproxy/rowpolicy"
	"github.com/authproxy/authproxy/test/harness"
)

// The filters rowpolicy.Combine writes, sent with the Go SDK through the
// real binary to the fake Milvus, which evaluates them by Milvus's
// grammar: each tenant's combination selects that tenant's rows and no
// other, whatever the caller adds, and a tag that tries to close its
// string matches nothing. (This checks the combiner and the fake end to
// end; wiring the combination into the proxy's admission is issue 32's
// next step.)
func TestCombinedFiltersSelectOneTenantsRows(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	ctx := testCtx(t, 120*time.Second)
	root := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "root", Password: "Milvus"})

	const dim = 4
	schema := entity.NewSchema().WithDynamicFieldEnabled(true).
		WithField(entity.NewField().WithName("id").WithDataType(entity.FieldTypeInt64).WithIsPrimaryKey(true)).
		WithField(entity.NewField().WithName("tenant").WithDataType(entity.FieldTypeVarChar).WithMaxLength(64).WithIsPartitionKey(true)).
		WithField(entity.NewField().WithName("vec").WithDataType(entity.FieldTypeFloatVector).WithDim(dim))
	must(t, root.CreateCollection(ctx, milvusclient.NewCreateCollectionOption("docs", schema).
		WithIndexOptions(milvusclient.NewCreateIndexOption("docs", "vec", index.NewFlatIndex(entity.L2)))))
	task, err := root.LoadCollection(ctx, milvusclient.NewLoadCollectionOption("docs"))
	must(t, err)
	must(t, task.Await(ctx))

	tenants := []string{"acme", "acme", "acme", "globex", "globex", `acme" or tenant != "`}
	ids := []int64{1, 2, 3, 4, 5, 6}
	vecs := make([][]float32, len(ids))
	for i := range vecs {
		vecs[i] = constVec(float32(i), dim)
	}
	_, err = root.Insert(ctx, milvusclient.NewColumnBasedInsertOption("docs").WithInt64Column("id", ids).
		WithVarcharColumn("tenant", tenants).WithFloatVectorColumn("vec", dim, vecs))
	must(t, err)

	using, err := rowpolicy.Compile("tenant == $current_user_tags['tenant']")
	must(t, err)
	policies := []rowpolicy.Policy{{Name: "tenant_rows", Using: using}}
	combine := func(tenant, filter string) string {
		t.Helper()
		f, err := rowpolicy.Combine(policies, rowpolicy.Caller{Name: "u", Tags: map[string]string{"tenant": tenant}}, filter)
		must(t, err)
		return f
	}
	query := func(filter string) []int64 {
		t.Helper()
		rs, err := root.Query(ctx, milvusclient.NewQueryOption("docs").WithFilter(filter).WithOutputFields("id"))
		must(t, err)
		got := []int64{}
		for i := range rs.ResultCount {
			id, _ := rs.GetColumn("id").GetAsInt64(i)
			got = append(got, id)
		}
		slices.Sort(got)
		return got
	}

	for _, c := range []struct {
		tenant, filter string
		want           []int64
	}{
		{"acme", "", []int64{1, 2, 3}},
		{"globex", "", []int64{4, 5}},
		{"acme", `tenant == "globex" or tenant == "acme"`, []int64{1, 2, 3}},
		{"globex", `id in [1, 4]`, []int64{4}},
		{"acme", `not (id == 2) or tenant == "globex"`, []int64{1, 3}},
		{"acme", `id > 2`, []int64{3}},
		{`acme" or tenant != "`, "", []int64{6}}, // the value is one string
		{"initech", "", []int64{}},
	} {
		filter := combine(c.tenant, c.filter)
		if got := query(filter); !slices.Equal(got, c.want) {
			t.Errorf("tenant %q, filter %q, sent %q: ids %v, want %v", c.tenant, c.filter, filter, got, c.want)
		}
	}

	// A search and a delete with the combination: globex's search finds no
	// acme row, and its delete of ids 1 and 4 removes 4 only.
	rs, err := root.Search(ctx, milvusclient.NewSearchOption("docs", 10, []entity.Vector{constVec(0, dim)}).
		WithANNSField("vec").WithFilter(combine("globex", "")).WithOutputFields("tenant"))
	must(t, err)
	for i := range rs[0].ResultCount {
		if tenant, _ := rs[0].GetColumn("tenant").GetAsString(i); tenant != "globex" {
			t.Errorf("globex's search found a row of %q", tenant)
		}
	}
	if rs[0].ResultCount != 2 {
		t.Errorf("globex's search found %d rows, want 2", rs[0].ResultCount)
	}
	del, err := root.Delete(ctx, milvusclient.NewDeleteOption("docs").WithExpr(combine("globex", "id in [1, 4]")))
	must(t, err)
	if del.DeleteCount != 1 || !slices.Equal(query(""), []int64{1, 2, 3, 5, 6}) {
		t.Errorf("globex deleted %d rows, left %v; want id 4 only", del.DeleteCount, query(""))
	}
}
