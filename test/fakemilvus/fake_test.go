package fakemilvus_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus/client/v2/entity"
	"github.com/milvus-io/milvus/client/v2/index"
	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/authproxy/authproxy/test/fakemilvus"
)

func startFake(t *testing.T) (*fakemilvus.Server, string) {
	t.Helper()
	s := fakemilvus.New(fakemilvus.Options{})
	addr, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s, addr
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func sdk(t *testing.T, ctx context.Context, addr string) *milvusclient.Client {
	t.Helper()
	c, err := milvusclient.New(ctx, &milvusclient.ClientConfig{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// createVectors creates collection name with an int64 key "id" and a float
// vector "vec" of dim, with an L2 index, loaded.
func createVectors(t *testing.T, ctx context.Context, c *milvusclient.Client, name string, dim int) {
	t.Helper()
	schema := entity.NewSchema().
		WithField(entity.NewField().WithName("id").WithDataType(entity.FieldTypeInt64).WithIsPrimaryKey(true)).
		WithField(entity.NewField().WithName("tag").WithDataType(entity.FieldTypeVarChar).WithMaxLength(64)).
		WithField(entity.NewField().WithName("vec").WithDataType(entity.FieldTypeFloatVector).WithDim(int64(dim)))
	must(t, c.CreateCollection(ctx, milvusclient.NewCreateCollectionOption(name, schema).
		WithIndexOptions(milvusclient.NewCreateIndexOption(name, "vec", index.NewFlatIndex(entity.L2)))))
	task, err := c.LoadCollection(ctx, milvusclient.NewLoadCollectionOption(name))
	must(t, err)
	must(t, task.Await(ctx))
}

// rows returns n rows whose vector i is (i, i, ..., i).
func rows(n, dim int) ([]int64, []string, [][]float32) {
	ids, tags, vecs := make([]int64, n), make([]string, n), make([][]float32, n)
	for i := range n {
		ids[i], tags[i] = int64(i), "t"+string(rune('a'+i%26))
		vecs[i] = make([]float32, dim)
		for j := range vecs[i] {
			vecs[i][j] = float32(i)
		}
	}
	return ids, tags, vecs
}

func constVec(v float32, dim int) entity.FloatVector {
	out := make(entity.FloatVector, dim)
	for i := range out {
		out[i] = v
	}
	return out
}

func count(t *testing.T, ctx context.Context, c *milvusclient.Client, name string) int64 {
	t.Helper()
	rs, err := c.Query(ctx, milvusclient.NewQueryOption(name).WithOutputFields("count(*)"))
	must(t, err)
	n, err := rs.GetColumn("count(*)").GetAsInt64(0)
	must(t, err)
	return n
}

func TestSDKCollectionLifecycle(t *testing.T) {
	_, addr := startFake(t)
	ctx := testCtx(t, 30*time.Second)
	c := sdk(t, ctx, addr)

	v, err := c.GetServerVersion(ctx, milvusclient.NewGetServerVersionOption())
	must(t, err)
	if v != fakemilvus.DefaultVersion {
		t.Fatalf("version %q", v)
	}

	const dim = 8
	createVectors(t, ctx, c, "books", dim)
	names, err := c.ListCollections(ctx, milvusclient.NewListCollectionOption())
	must(t, err)
	if !slices.Equal(names, []string{"books"}) {
		t.Fatalf("ListCollections = %v", names)
	}
	for name, want := range map[string]bool{"books": true, "missing": false} {
		has, err := c.HasCollection(ctx, milvusclient.NewHasCollectionOption(name))
		must(t, err)
		if has != want {
			t.Fatalf("HasCollection(%s) = %v", name, has)
		}
	}
	coll, err := c.DescribeCollection(ctx, milvusclient.NewDescribeCollectionOption("books"))
	must(t, err)
	if coll.Name != "books" || len(coll.Schema.Fields) != 3 || coll.Schema.PKFieldName() != "id" {
		t.Fatalf("DescribeCollection = %+v", coll)
	}
	state, err := c.GetLoadState(ctx, milvusclient.NewGetLoadStateOption("books"))
	must(t, err)
	if state.State != entity.LoadStateLoaded {
		t.Fatalf("load state %v", state.State)
	}
	idx, err := c.DescribeIndex(ctx, milvusclient.NewDescribeIndexOption("books", "vec"))
	must(t, err)
	if idx.State != index.IndexState(3) { // Finished
		t.Fatalf("index state %v", idx.State)
	}

	ids, tags, vecs := rows(100, dim)
	res, err := c.Insert(ctx, milvusclient.NewColumnBasedInsertOption("books").
		WithInt64Column("id", ids).WithVarcharColumn("tag", tags).WithFloatVectorColumn("vec", dim, vecs))
	must(t, err)
	if res.InsertCount != 100 || res.IDs.Len() != 100 {
		t.Fatalf("insert result %+v", res)
	}
	flush, err := c.Flush(ctx, milvusclient.NewFlushOption("books"))
	must(t, err)
	must(t, flush.Await(ctx))

	sets, err := c.Search(ctx, milvusclient.NewSearchOption("books", 3, []entity.Vector{constVec(42.2, dim), constVec(7.9, dim)}).
		WithOutputFields("tag"))
	must(t, err)
	if len(sets) != 2 {
		t.Fatalf("%d result sets", len(sets))
	}
	for i, want := range []int64{42, 8} {
		rs := sets[i]
		if rs.Err != nil || rs.ResultCount != 3 {
			t.Fatalf("result set %d: %+v", i, rs)
		}
		got, err := rs.IDs.GetAsInt64(0)
		must(t, err)
		if got != want || rs.Scores[0] > rs.Scores[1] {
			t.Fatalf("query %d: nearest %d scores %v, want %d first", i, got, rs.Scores, want)
		}
		if tag, _ := rs.GetColumn("tag").GetAsString(0); tag != tags[want] {
			t.Fatalf("query %d: tag %q", i, tag)
		}
	}

	q, err := c.Query(ctx, milvusclient.NewQueryOption("books").WithFilter("id in [3, 5, 99]").WithOutputFields("tag", "vec"))
	must(t, err)
	if q.ResultCount != 3 {
		t.Fatalf("query returned %d rows", q.ResultCount)
	}
	if id, _ := q.GetColumn("id").GetAsInt64(2); id != 99 {
		t.Fatalf("third id %d", id)
	}
	if vec, _ := q.GetColumn("vec").Get(1); vec.(entity.FloatVector)[0] != 5 {
		t.Fatalf("vector of id 5: %v", vec)
	}

	del, err := c.Delete(ctx, milvusclient.NewDeleteOption("books").WithInt64IDs("id", []int64{1, 2, 500}))
	must(t, err)
	if del.DeleteCount != 2 || count(t, ctx, c, "books") != 98 {
		t.Fatalf("delete count %d", del.DeleteCount)
	}
	up, err := c.Upsert(ctx, milvusclient.NewColumnBasedInsertOption("books").
		WithInt64Column("id", []int64{1, 3}).WithVarcharColumn("tag", []string{"new", "upd"}).
		WithFloatVectorColumn("vec", dim, [][]float32{constVec(1, dim), constVec(3, dim)}))
	must(t, err)
	if up.UpsertCount != 2 || count(t, ctx, c, "books") != 99 {
		t.Fatalf("upsert count %d", up.UpsertCount)
	}
	q, err = c.Query(ctx, milvusclient.NewQueryOption("books").WithFilter("id == 3").WithOutputFields("tag"))
	must(t, err)
	if tag, _ := q.GetColumn("tag").GetAsString(0); q.ResultCount != 1 || tag != "upd" {
		t.Fatalf("after upsert: %d rows, tag %q", q.ResultCount, tag)
	}
	q, err = c.Query(ctx, milvusclient.NewQueryOption("books").WithFilter(`id > 97 or (tag like "t%" and id in [1, 2])`).WithOutputFields("tag"))
	must(t, err)
	if q.ResultCount != 2 {
		t.Fatalf("id > 97 or ...: %d rows, want 98 and 99", q.ResultCount)
	}
	_, err = c.Query(ctx, milvusclient.NewQueryOption("books").WithFilter("id * 2 > 3"))
	if err == nil || !strings.Contains(err.Error(), "failed to create query plan: cannot parse expression: id * 2 > 3") {
		t.Fatalf("arithmetic, which the fake does not evaluate: %v", err)
	}

	must(t, c.ReleaseCollection(ctx, milvusclient.NewReleaseCollectionOption("books")))
	must(t, c.DropCollection(ctx, milvusclient.NewDropCollectionOption("books")))
	if _, err := c.DescribeCollection(ctx, milvusclient.NewDescribeCollectionOption("books")); err == nil {
		t.Fatal("dropped collection still described")
	}
}

func TestSDKQuickSetupDynamicField(t *testing.T) {
	_, addr := startFake(t)
	ctx := testCtx(t, 30*time.Second)
	c := sdk(t, ctx, addr)

	// Quick setup: auto-ID key, COSINE index, loaded, dynamic schema.
	must(t, c.CreateCollection(ctx, milvusclient.SimpleCreateCollectionOptions("quick", 4)))
	_, _, vecs := rows(3, 4)
	vecs[0] = []float32{1, 0, 0, 0}
	res, err := c.Insert(ctx, milvusclient.NewColumnBasedInsertOption("quick").
		WithFloatVectorColumn("vector", 4, vecs).WithVarcharColumn("color", []string{"red", "green", "blue"}))
	must(t, err)
	first, err := res.IDs.GetAsInt64(0)
	must(t, err)

	sets, err := c.Search(ctx, milvusclient.NewSearchOption("quick", 1, []entity.Vector{entity.FloatVector{2, 0, 0, 0}}).
		WithOutputFields("color"))
	must(t, err)
	got, _ := sets[0].IDs.GetAsInt64(0)
	if got != first {
		t.Fatalf("nearest by cosine: id %d, want %d", got, first)
	}
	if color, _ := sets[0].GetColumn("color").GetAsString(0); color != "red" {
		t.Fatalf("dynamic field in search: %q", color)
	}
	q, err := c.Query(ctx, milvusclient.NewQueryOption("quick").WithFilter("color == \"blue\"").WithOutputFields("color"))
	must(t, err)
	if color, _ := q.GetColumn("color").GetAsString(0); q.ResultCount != 1 || color != "blue" {
		t.Fatalf("filter on a dynamic field: %d rows, color %q", q.ResultCount, color)
	}
	q, err = c.Query(ctx, milvusclient.NewQueryOption("quick").WithLimit(2).WithOutputFields("color"))
	must(t, err)
	if color, _ := q.GetColumn("color").GetAsString(1); q.ResultCount != 2 || color != "green" {
		t.Fatalf("query with limit: %d rows, color %q", q.ResultCount, color)
	}
}

func TestSDKInsert64MiB(t *testing.T) {
	s, addr := startFake(t)
	ctx := testCtx(t, 60*time.Second)
	c := sdk(t, ctx, addr)
	const dim, n = 128, 131072 // 128*4*131072 bytes = 64 MiB of vectors
	createVectors(t, ctx, c, "big", dim)
	ids, tags, vecs := rows(n, dim)
	res, err := c.Insert(ctx, milvusclient.NewColumnBasedInsertOption("big").
		WithInt64Column("id", ids).WithVarcharColumn("tag", tags).WithFloatVectorColumn("vec", dim, vecs))
	must(t, err)
	if res.InsertCount != n || count(t, ctx, c, "big") != n {
		t.Fatalf("inserted %d", res.InsertCount)
	}
	sets, err := c.Search(ctx, milvusclient.NewSearchOption("big", 1, []entity.Vector{constVec(n-10.3, dim)}))
	must(t, err)
	if got, _ := sets[0].IDs.GetAsInt64(0); got != n-10 {
		t.Fatalf("nearest %d", got)
	}
	if len(s.Recorder().CallsTo("/milvus.proto.milvus.MilvusService/Insert")) != 1 {
		t.Fatal("insert not recorded")
	}
}

func TestCredentialRPCsAreNotImplemented(t *testing.T) {
	s, addr := startFake(t)
	ctx := testCtx(t, 10*time.Second)
	c := sdk(t, ctx, addr)
	err := c.CreateUser(ctx, milvusclient.NewCreateUserOption("alice", "secret123"))
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("CreateUser: %v", err)
	}
	call, err := s.Recorder().WaitForCall(ctx, "CreateCredential")
	must(t, err)
	if call.Code != codes.Unimplemented || call.Metadata.Get("identifier") == nil {
		t.Fatalf("recorded %+v", call)
	}
}

func outgoing(ctx context.Context, kv ...string) context.Context {
	return metadata.NewOutgoingContext(ctx, metadata.Pairs(kv...))
}

func TestHeadersTrailersAndEcho(t *testing.T) {
	_, addr := startFake(t)
	ctx := testCtx(t, 10*time.Second)
	tc := testgrpc.NewTestServiceClient(dial(t, addr))

	var hdr, trl metadata.MD
	resp, err := tc.UnaryCall(outgoing(ctx, fakemilvus.MDEcho, "1", "x-mine", "v1", "x-bin-bin", "\x00\x01"),
		&testgrpc.SimpleRequest{ResponseSize: 10}, grpc.Header(&hdr), grpc.Trailer(&trl))
	must(t, err)
	if len(resp.GetPayload().GetBody()) != 10 {
		t.Fatalf("payload %d bytes", len(resp.GetPayload().GetBody()))
	}
	if got := hdr.Get("x-fake-header"); !slices.Equal(got, []string{"h"}) {
		t.Fatalf("x-fake-header %v", got)
	}
	if got := hdr.Get("x-echo-x-mine"); !slices.Equal(got, []string{"v1"}) {
		t.Fatalf("echo %v (headers %v)", got, hdr)
	}
	if got := hdr.Get("x-echo-x-bin-bin"); !slices.Equal(got, []string{"\x00\x01"}) {
		t.Fatalf("binary echo %q", got)
	}
	if got := trl.Get("x-fake-trailer"); !slices.Equal(got, []string{"t"}) {
		t.Fatalf("trailer %v", got)
	}

	// Without the echo knob, no x-echo-* header.
	_, err = tc.EmptyCall(outgoing(ctx, "x-mine", "v1"), &testgrpc.Empty{}, grpc.Header(&hdr))
	must(t, err)
	if hdr.Get("x-echo-x-mine") != nil || hdr.Get("x-fake-header") == nil {
		t.Fatalf("headers %v", hdr)
	}
}

func TestFailWithHeadersAndTrailersOnly(t *testing.T) {
	s, addr := startFake(t)
	ctx := testCtx(t, 10*time.Second)
	tc := testgrpc.NewTestServiceClient(dial(t, addr))

	var hdr, trl metadata.MD
	_, err := tc.UnaryCall(outgoing(ctx, fakemilvus.MDFail, "7", fakemilvus.MDFailMessage, "nope"),
		&testgrpc.SimpleRequest{}, grpc.Header(&hdr), grpc.Trailer(&trl))
	if st := status.Convert(err); st.Code() != codes.PermissionDenied || st.Message() != "nope" {
		t.Fatalf("error %v", err)
	}
	if hdr.Get("x-fake-header") == nil || trl.Get("x-fake-trailer") == nil {
		t.Fatalf("headers %v trailers %v", hdr, trl)
	}

	hdr, trl = nil, nil
	_, err = tc.UnaryCall(outgoing(ctx, fakemilvus.MDFail, "14", fakemilvus.MDFailTrailerOnly, "1"),
		&testgrpc.SimpleRequest{}, grpc.Header(&hdr), grpc.Trailer(&trl))
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("error %v", err)
	}
	if hdr.Get("x-fake-header") != nil || trl.Get("x-fake-trailer") == nil {
		t.Fatalf("trailers-only: headers %v trailers %v", hdr, trl)
	}

	// A server stream fails before its first message, after its headers.
	stream, err := tc.StreamingOutputCall(outgoing(ctx, fakemilvus.MDFail, "9"),
		&testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: 1}}})
	must(t, err)
	h, err := stream.Header()
	must(t, err)
	if h.Get("x-fake-header") == nil {
		t.Fatalf("stream headers %v", h)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("stream error %v", err)
	}
	if stream.Trailer().Get("x-fake-trailer") == nil {
		t.Fatalf("stream trailers %v", stream.Trailer())
	}

	call, err := s.Recorder().WaitForCall(ctx, "StreamingOutputCall")
	must(t, err)
	if !call.Stream || call.Code != codes.FailedPrecondition || call.Canceled {
		t.Fatalf("recorded %+v", call)
	}
}

func TestStreamShapes(t *testing.T) {
	_, addr := startFake(t)
	ctx := testCtx(t, 10*time.Second)
	tc := testgrpc.NewTestServiceClient(dial(t, addr))
	params := []*testgrpc.ResponseParameters{{Size: 1}, {Size: 2, IntervalUs: 1000}, {Size: 3}}

	out, err := tc.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{ResponseParameters: params})
	must(t, err)
	var sizes []int
	for {
		r, err := out.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		must(t, err)
		sizes = append(sizes, len(r.GetPayload().GetBody()))
	}
	if !slices.Equal(sizes, []int{1, 2, 3}) {
		t.Fatalf("server stream sizes %v", sizes)
	}

	in, err := tc.StreamingInputCall(ctx)
	must(t, err)
	for _, n := range []int{10, 20, 30} {
		must(t, in.Send(&testgrpc.StreamingInputCallRequest{Payload: &testgrpc.Payload{Body: make([]byte, n)}}))
	}
	agg, err := in.CloseAndRecv()
	must(t, err)
	if agg.GetAggregatedPayloadSize() != 60 {
		t.Fatalf("aggregated %d", agg.GetAggregatedPayloadSize())
	}

	full, err := tc.FullDuplexCall(ctx)
	must(t, err)
	for i := range 3 {
		must(t, full.Send(&testgrpc.StreamingOutputCallRequest{ResponseParameters: params[i : i+1]}))
		r, err := full.Recv()
		must(t, err)
		if len(r.GetPayload().GetBody()) != i+1 {
			t.Fatalf("full duplex reply %d: %d bytes", i, len(r.GetPayload().GetBody()))
		}
	}
	must(t, full.CloseSend())
	if _, err := full.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("full duplex end: %v", err)
	}

	half, err := tc.HalfDuplexCall(ctx)
	must(t, err)
	must(t, half.Send(&testgrpc.StreamingOutputCallRequest{ResponseParameters: params[:2]}))
	must(t, half.Send(&testgrpc.StreamingOutputCallRequest{ResponseParameters: params[2:]}))
	must(t, half.CloseSend())
	sizes = nil
	for {
		r, err := half.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		must(t, err)
		sizes = append(sizes, len(r.GetPayload().GetBody()))
	}
	if !slices.Equal(sizes, []int{1, 2, 3}) {
		t.Fatalf("half duplex sizes %v", sizes)
	}
}

func TestDeadlineRecorded(t *testing.T) {
	s, addr := startFake(t)
	tc := testgrpc.NewTestServiceClient(dial(t, addr))
	ctx, cancel := context.WithTimeout(outgoing(context.Background(), fakemilvus.MDSleep, "10s"), 300*time.Millisecond)
	defer cancel()
	want, _ := ctx.Deadline()
	start := time.Now()
	_, err := tc.EmptyCall(ctx, &testgrpc.Empty{})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("error %v", err)
	}
	call, err := s.Recorder().WaitForCall(testCtx(t, 5*time.Second), "/grpc.testing.TestService/EmptyCall")
	must(t, err)
	if !call.Canceled || !errors.Is(call.CtxErr, context.DeadlineExceeded) || call.Code != codes.DeadlineExceeded {
		t.Fatalf("recorded %+v", call)
	}
	if !call.HasDeadline || call.Deadline.Sub(want).Abs() > 100*time.Millisecond {
		t.Fatalf("deadline %v, client had %v", call.Deadline, want)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("sleep was not cut short by the deadline")
	}
}

func TestCancelRecorded(t *testing.T) {
	s, addr := startFake(t)
	tc := testgrpc.NewTestServiceClient(dial(t, addr))
	ctx, cancel := context.WithCancel(outgoing(context.Background(), fakemilvus.MDSleep, "10s", "x-who", "me"))
	defer cancel()
	stream, err := tc.FullDuplexCall(ctx)
	must(t, err)
	wait := testCtx(t, 5*time.Second)
	started, err := s.Recorder().WaitForStart(wait, "FullDuplexCall")
	must(t, err)
	if started.Done || started.HasDeadline || !slices.Equal(started.Metadata.Get("x-who"), []string{"me"}) {
		t.Fatalf("started %+v", started)
	}
	cancel()
	if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
		t.Fatalf("recv %v", err)
	}
	call, err := s.Recorder().WaitForCall(wait, "FullDuplexCall")
	must(t, err)
	if !call.Canceled || !errors.Is(call.CtxErr, context.Canceled) {
		t.Fatalf("recorded %+v", call)
	}
}

func TestRecorderUnknownMethodsAndReset(t *testing.T) {
	s, addr := startFake(t)
	ctx := testCtx(t, 10*time.Second)
	conn := dial(t, addr)

	err := conn.Invoke(outgoing(ctx, "authorization", "abc"), "/no.Such/Method", &testgrpc.Empty{}, &testgrpc.Empty{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("unknown service: %v", err)
	}
	err = conn.Invoke(ctx, "/grpc.testing.TestService/NoSuchMethod", &testgrpc.Empty{}, &testgrpc.Empty{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("unknown method: %v", err)
	}
	hc := healthpb.NewHealthClient(conn)
	hr, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
	must(t, err)
	if hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health %v", hr.GetStatus())
	}

	rec := s.Recorder()
	calls := rec.Calls()
	if len(calls) != 3 {
		t.Fatalf("%d calls recorded", len(calls))
	}
	if c := calls[0]; c.Method != "/no.Such/Method" || c.Code != codes.Unimplemented ||
		!slices.Equal(c.Metadata.Get("authorization"), []string{"abc"}) || !c.Done {
		t.Fatalf("first call %+v", c)
	}
	if len(rec.CallsTo("NoSuchMethod")) != 1 || len(rec.CallsTo("/grpc.health.v1.Health/Check")) != 1 {
		t.Fatalf("CallsTo: %+v", calls)
	}
	rec.Reset()
	if len(rec.Calls()) != 0 {
		t.Fatal("Reset kept calls")
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := rec.WaitForCall(short, "Check"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitForCall after Reset: %v", err)
	}
}

func TestRestartKeepsAddressAndData(t *testing.T) {
	s, addr := startFake(t)
	ctx := testCtx(t, 30*time.Second)
	c := sdk(t, ctx, addr)
	createVectors(t, ctx, c, "kept", 4)

	must(t, s.Restart())
	if s.Addr() != addr {
		t.Fatalf("restarted on %s, was %s", s.Addr(), addr)
	}
	// The SDK's connection reconnects by itself.
	names, err := c.ListCollections(ctx, milvusclient.NewListCollectionOption(), grpc.WaitForReady(true))
	must(t, err)
	if !slices.Equal(names, []string{"kept"}) {
		t.Fatalf("after restart: %v", names)
	}

	s.Stop()
	if _, err := s.Start(addr); err != nil {
		t.Fatalf("Start on the old address: %v", err)
	}
}

func TestREST(t *testing.T) {
	s, addr := startFake(t)
	ctx := testCtx(t, 30*time.Second)
	createVectors(t, ctx, sdk(t, ctx, addr), "rest_coll", 4)
	restAddr, err := s.StartREST("127.0.0.1:0")
	must(t, err)

	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+restAddr+"/v2/vectordb/collections/list", strings.NewReader(`{"dbName":"default"}`))
	req.Header.Set("Authorization", "Bearer root:Milvus")
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != `{"code":0,"data":["rest_coll"]}` {
		t.Fatalf("list: %d %s", resp.StatusCode, body)
	}
	call, err := s.Recorder().WaitForCall(ctx, "collections/list")
	must(t, err)
	if call.HTTPMethod != http.MethodPost || call.BodySize != 20 || call.HTTPStatus != http.StatusOK ||
		!slices.Equal(call.Metadata.Get("authorization"), []string{"Bearer root:Milvus"}) {
		t.Fatalf("recorded %+v", call)
	}

	resp, err = http.Get("http://" + restAddr + "/elsewhere")
	must(t, err)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown path: %d", resp.StatusCode)
	}
}
