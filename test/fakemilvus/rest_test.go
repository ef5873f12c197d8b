package fakemilvus_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus/client/v2/milvusclient"

	"github.com/authproxy/authproxy/test/fakemilvus"
)

// restEnvelope is Milvus's REST v2 answer.
type restEnvelope struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

func restCall(t *testing.T, ctx context.Context, base, path, db, body string) (int, restEnvelope) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(body))
	must(t, err)
	req.Header.Set("Content-Type", "application/json")
	if db != "" {
		req.Header.Set("DB-Name", db)
	}
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	must(t, err)
	var env restEnvelope
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("%s: not JSON: %s", path, raw)
	}
	return resp.StatusCode, env
}

// restOK calls path, requires code 0 and decodes data into out.
func restOK(t *testing.T, ctx context.Context, base, path, db, body string, out any) {
	t.Helper()
	status, env := restCall(t, ctx, base, path, db, body)
	if status != http.StatusOK || env.Code != 0 {
		t.Fatalf("%s %s: HTTP %d code %d %q", path, body, status, env.Code, env.Message)
	}
	if out != nil {
		must(t, json.Unmarshal(env.Data, out))
	}
}

func startRESTFake(t *testing.T) (*milvusclient.Client, string, context.Context) {
	s, addr := startFake(t)
	ctx := testCtx(t, 30*time.Second)
	c := sdk(t, ctx, addr)
	createVectors(t, ctx, c, "books", 2)
	restAddr, err := s.StartREST("127.0.0.1:0")
	must(t, err)
	return c, "http://" + restAddr + fakemilvus.RESTPrefix, ctx
}

// TestRESTRoutes drives each implemented REST v2 route and checks the
// answer against what the gRPC side stored.
func TestRESTRoutes(t *testing.T) {
	c, base, ctx := startRESTFake(t)

	var ins struct {
		InsertCount int     `json:"insertCount"`
		InsertIDs   []int64 `json:"insertIds"`
	}
	restOK(t, ctx, base, "entities/insert", "", `{"collectionName":"books","data":[{"id":1,"tag":"a","vec":[1,1]},{"id":2,"tag":"b","vec":[2,2]},{"id":3,"tag":"c","vec":[3,3]}]}`, &ins)
	if ins.InsertCount != 3 || len(ins.InsertIDs) != 3 || ins.InsertIDs[2] != 3 {
		t.Fatalf("insert: %+v", ins)
	}
	if n := count(t, ctx, c, "books"); n != 3 {
		t.Fatalf("after the REST insert the gRPC side counts %d rows, want 3", n)
	}

	var rows []map[string]any
	restOK(t, ctx, base, "entities/query", "", `{"collectionName":"books","filter":"id >= 2","outputFields":["tag"]}`, &rows)
	if len(rows) != 2 || rows[0]["tag"] != "b" || rows[1]["id"] != float64(3) {
		t.Fatalf("query: %v", rows)
	}
	restOK(t, ctx, base, "entities/query", "", `{"collectionName":"books","filter":"id >= 1","limit":1,"offset":1}`, &rows)
	if len(rows) != 1 || rows[0]["id"] != float64(2) {
		t.Fatalf("query limit 1 offset 1: %v", rows)
	}
	restOK(t, ctx, base, "entities/query", "", `{"collectionName":"books","outputFields":["count(*)"]}`, &rows)
	if len(rows) != 1 || rows[0]["count(*)"] != float64(3) {
		t.Fatalf("count(*): %v", rows)
	}
	restOK(t, ctx, base, "entities/get", "", `{"collectionName":"books","id":[1,3],"outputFields":["tag"]}`, &rows)
	if len(rows) != 2 || rows[0]["tag"] != "a" || rows[1]["tag"] != "c" {
		t.Fatalf("get: %v", rows)
	}
	restOK(t, ctx, base, "entities/search", "", `{"collectionName":"books","data":[[2.9,2.9]],"annsField":"vec","limit":2,"outputFields":["tag"]}`, &rows)
	if len(rows) != 2 || rows[0]["id"] != float64(3) || rows[1]["id"] != float64(2) || rows[0]["tag"] != "c" || rows[0]["distance"] == nil {
		t.Fatalf("search: %v", rows)
	}
	restOK(t, ctx, base, "entities/search", "", `{"collectionName":"books","data":[[0,0]],"filter":"id > 1","limit":5}`, &rows)
	if len(rows) != 2 || rows[0]["id"] != float64(2) {
		t.Fatalf("filtered search: %v", rows)
	}

	var ups struct {
		UpsertCount int     `json:"upsertCount"`
		UpsertIDs   []int64 `json:"upsertIds"`
	}
	restOK(t, ctx, base, "entities/upsert", "", `{"collectionName":"books","data":[{"id":1,"tag":"z","vec":[1,1]}]}`, &ups)
	if ups.UpsertCount != 1 || len(ups.UpsertIDs) != 1 || ups.UpsertIDs[0] != 1 {
		t.Fatalf("upsert: %+v", ups)
	}
	restOK(t, ctx, base, "entities/get", "", `{"collectionName":"books","id":1,"outputFields":["tag"]}`, &rows)
	if len(rows) != 1 || rows[0]["tag"] != "z" {
		t.Fatalf("get after upsert: %v", rows)
	}
	var del struct {
		DeleteCount int `json:"deleteCount"`
	}
	restOK(t, ctx, base, "entities/delete", "", `{"collectionName":"books","filter":"id in [1,2]"}`, &del)
	if del.DeleteCount != 2 {
		t.Fatalf("delete: %+v", del)
	}
	restOK(t, ctx, base, "entities/query", "", `{"collectionName":"books","filter":"id > 0","limit":0}`, &rows)
	if len(rows) != 1 {
		t.Fatalf("query with limit 0 (no limit, as Milvus): %v", rows)
	}
	if n := count(t, ctx, c, "books"); n != 1 {
		t.Fatalf("after the REST delete the gRPC side counts %d rows, want 1", n)
	}

	var desc struct {
		CollectionName string `json:"collectionName"`
		Fields         []struct {
			Name       string `json:"name"`
			PrimaryKey bool   `json:"primaryKey"`
		} `json:"fields"`
	}
	restOK(t, ctx, base, "collections/describe", "", `{"collectionName":"books"}`, &desc)
	if desc.CollectionName != "books" || len(desc.Fields) != 3 || desc.Fields[0].Name != "id" || !desc.Fields[0].PrimaryKey {
		t.Fatalf("describe: %+v", desc)
	}
	restOK(t, ctx, base, "collections/drop", "", `{"collectionName":"books"}`, nil)
	var names []string
	restOK(t, ctx, base, "collections/list", "", `{}`, &names)
	if len(names) != 0 {
		t.Fatalf("list after drop: %v", names)
	}
}

// TestRESTDatabase: the DB-Name header and the dbName field choose the
// database, as the gRPC side's db_name does.
func TestRESTDatabase(t *testing.T) {
	c, base, ctx := startRESTFake(t)
	must(t, c.CreateDatabase(ctx, milvusclient.NewCreateDatabaseOption("db2")))

	for _, tc := range []struct{ db, body string }{{"db2", `{}`}, {"", `{"dbName":"db2"}`}} {
		var names []string
		restOK(t, ctx, base, "collections/list", tc.db, tc.body, &names)
		if len(names) != 0 {
			t.Fatalf("db2 (header %q body %s) lists %v", tc.db, tc.body, names)
		}
	}
	_, env := restCall(t, ctx, base, "entities/query", "db2", `{"collectionName":"books","filter":"id > 0"}`)
	if env.Code != 100 || !strings.Contains(env.Message, "collection not found") {
		t.Fatalf("books in db2: code %d %q, want 100 collection not found", env.Code, env.Message)
	}
	_, env = restCall(t, ctx, base, "collections/list", "nodb", `{}`)
	if env.Code != 800 {
		t.Fatalf("missing database: code %d %q, want 800", env.Code, env.Message)
	}
}

// TestRESTErrors: bad calls get Milvus's error envelope with HTTP 200;
// what the fake does not implement is refused, never answered with success.
func TestRESTErrors(t *testing.T) {
	_, base, ctx := startRESTFake(t)
	for _, tc := range []struct {
		path, body string
		status     int
		code       int
		msg        string
	}{
		{"entities/insert", `{"collectionName":"books","data":[{"id":1,"tag":"a","vec":[1]}]}`, 200, 1100, "want dim 2"},
		{"entities/insert", `{"collectionName":"books","data":[{"id":1,"vec":[1,1]}]}`, 200, 1100, `lacks field "tag"`},
		{"entities/insert", `{"collectionName":"nope","data":[{"id":1}]}`, 200, 100, "can't find collection[database=default][collection=nope]"},
		{"entities/query", `{"collectionName":"books","filter":"id >"}`, 200, 1100, ""},
		{"entities/query", `{"collectionName":"books"`, 200, 1100, "bad request body"},
		{"entities/delete", `{"collectionName":"books"}`, 200, 1100, "filter is required"},
		{"entities/search", `{"collectionName":"books","data":["AAAA"]}`, 200, 1100, "float vectors only"},
		{"entities/search", `{"collectionName":"books","data":[[1,1,1]]}`, 200, 1100, `query vector has dim 3, field "vec" has 2`},
		{"entities/hybrid_search", `{"collectionName":"books","search":[{"data":[[1,1]]}],"rerank":{"strategy":"rrf"}}`, 200, 10, "service unimplemented: fakemilvus does not implement HybridSearch"},
		{"collections/create", `{"collectionName":"new"}`, 404, 404, "fakemilvus does not implement POST /v2/vectordb/collections/create"},
		{"aliases/list", `{}`, 404, 404, "does not implement"},
	} {
		status, env := restCall(t, ctx, base, tc.path, "", tc.body)
		if status != tc.status || env.Code != tc.code || !strings.Contains(env.Message, tc.msg) {
			t.Errorf("%s %s: HTTP %d code %d %q, want HTTP %d code %d %q", tc.path, tc.body, status, env.Code, env.Message, tc.status, tc.code, tc.msg)
		}
	}
}
