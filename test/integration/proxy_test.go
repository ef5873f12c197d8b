package integration

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus/client/v2/entity"
	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/authproxy/authproxy/test/fakemilvus"
	"github.com/authproxy/authproxy/test/harness"
)

// The Milvus Go SDK works through the proxy (authentication off) and gets
// the backend's answers, a 64 MiB Insert included.
func TestSDKThroughProxy(t *testing.T) {
	fake, p := startPair(t, harness.Options{AuthOff: true})
	ctx := testCtx(t, 90*time.Second)
	c := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr})

	v, err := c.GetServerVersion(ctx, milvusclient.NewGetServerVersionOption())
	must(t, err)
	if v != fakemilvus.DefaultVersion {
		t.Fatalf("GetVersion = %q, want the backend's %q", v, fakemilvus.DefaultVersion)
	}
	createVectors(t, ctx, c, "books", 8)
	insertAndSearch(t, ctx, c, "books")
	names, err := c.ListCollections(ctx, milvusclient.NewListCollectionOption())
	must(t, err)
	if len(names) != 1 || names[0] != "books" {
		t.Fatalf("ListCollections = %v", names)
	}

	// 64 MiB: 131072 rows of 128 float32.
	const dim, n = 128, 131072
	createVectors(t, ctx, c, "big", dim)
	ids := make([]int64, n)
	vecs := make([][]float32, n)
	for i := range vecs {
		ids[i] = int64(i)
		vecs[i] = make([]float32, dim)
		vecs[i][0] = float32(i)
	}
	res, err := c.Insert(ctx, milvusclient.NewColumnBasedInsertOption("big").WithInt64Column("id", ids).WithFloatVectorColumn("vec", dim, vecs))
	must(t, err)
	if res.InsertCount != n {
		t.Fatalf("64 MiB insert stored %d rows", res.InsertCount)
	}
	q := make(entity.FloatVector, dim)
	q[0] = 4242
	rs, err := c.Search(ctx, milvusclient.NewSearchOption("big", 1, []entity.Vector{q}).WithANNSField("vec"))
	must(t, err)
	if id, _ := rs[0].IDs.GetAsInt64(0); id != 4242 {
		t.Fatalf("search after the 64 MiB insert found %d, want 4242", id)
	}
	for _, m := range []string{"Connect", "CreateCollection", "Insert", "Search", "ShowCollections"} {
		if len(fake.Recorder().CallsTo(m)) == 0 {
			t.Errorf("backend never saw %s", m)
		}
	}
}

// All four call shapes pass, with half-close in the bidirectional stream.
func TestStreamShapes(t *testing.T) {
	_, p := startPair(t, harness.Options{AuthOff: true})
	ctx := testCtx(t, 30*time.Second)
	client := testgrpc.NewTestServiceClient(dial(t, p.Addr, nil))

	resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseSize: 1000})
	must(t, err)
	if len(resp.GetPayload().GetBody()) != 1000 {
		t.Fatalf("unary: %d bytes", len(resp.GetPayload().GetBody()))
	}

	out, err := client.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{
		ResponseParameters: []*testgrpc.ResponseParameters{{Size: 10}, {Size: 20}, {Size: 30}}})
	must(t, err)
	var sizes []int
	for {
		m, err := out.Recv()
		if err == io.EOF {
			break
		}
		must(t, err)
		sizes = append(sizes, len(m.GetPayload().GetBody()))
	}
	if len(sizes) != 3 || sizes[2] != 30 {
		t.Fatalf("server stream sizes %v", sizes)
	}

	in, err := client.StreamingInputCall(ctx)
	must(t, err)
	total := 0
	for _, n := range []int{100, 200, 300} {
		total += n
		must(t, in.Send(&testgrpc.StreamingInputCallRequest{Payload: &testgrpc.Payload{Body: make([]byte, n)}}))
	}
	sum, err := in.CloseAndRecv()
	must(t, err)
	if int(sum.GetAggregatedPayloadSize()) != total {
		t.Fatalf("client stream aggregated %d, want %d", sum.GetAggregatedPayloadSize(), total)
	}

	bidi, err := client.FullDuplexCall(ctx)
	must(t, err)
	for i := 1; i <= 5; i++ {
		must(t, bidi.Send(&testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: int32(i)}}}))
		m, err := bidi.Recv()
		must(t, err)
		if len(m.GetPayload().GetBody()) != i {
			t.Fatalf("bidi message %d: %d bytes", i, len(m.GetPayload().GetBody()))
		}
	}
	must(t, bidi.CloseSend())
	if _, err := bidi.Recv(); err != io.EOF {
		t.Fatalf("after half-close the backend should end the stream: %v", err)
	}
}

// Headers and trailers reach the client exactly, also when the backend
// fails before any message and for trailers-only responses, on the unary
// fast path (GetVersion) and the stream path (TestService).
func TestHeadersAndTrailers(t *testing.T) {
	_, p := startPair(t, harness.Options{AuthOff: true})
	conn := dial(t, p.Addr, nil)
	milvus := milvuspb.NewMilvusServiceClient(conn)
	test := testgrpc.NewTestServiceClient(conn)

	type call func(ctx context.Context, opts ...grpc.CallOption) error
	calls := map[string]call{
		"unary fast path": func(ctx context.Context, opts ...grpc.CallOption) error {
			_, err := milvus.GetVersion(ctx, &milvuspb.GetVersionRequest{}, opts...)
			return err
		},
		"stream path (unary)": func(ctx context.Context, opts ...grpc.CallOption) error {
			_, err := test.UnaryCall(ctx, &testgrpc.SimpleRequest{}, opts...)
			return err
		},
	}
	for name, do := range calls {
		t.Run(name, func(t *testing.T) {
			var hdr, trl metadata.MD
			must(t, do(testCtx(t, 10*time.Second), grpc.Header(&hdr), grpc.Trailer(&trl)))
			if hdr.Get("x-fake-header")[0] != "h" || trl.Get("x-fake-trailer")[0] != "t" {
				t.Fatalf("success: header %v trailer %v", hdr, trl)
			}

			ctx := metadata.AppendToOutgoingContext(testCtx(t, 10*time.Second),
				fakemilvus.MDFail, "9", fakemilvus.MDFailMessage, "backend says no")
			hdr, trl = nil, nil
			err := do(ctx, grpc.Header(&hdr), grpc.Trailer(&trl))
			if st := status.Convert(err); st.Code() != codes.FailedPrecondition || st.Message() != "backend says no" {
				t.Fatalf("early failure: %v", err)
			}
			if len(hdr.Get("x-fake-header")) != 1 || len(trl.Get("x-fake-trailer")) != 1 {
				t.Fatalf("early failure lost metadata: header %v trailer %v", hdr, trl)
			}

			ctx = metadata.AppendToOutgoingContext(testCtx(t, 10*time.Second),
				fakemilvus.MDFail, "8", fakemilvus.MDFailTrailerOnly, "1")
			hdr, trl = nil, nil
			err = do(ctx, grpc.Header(&hdr), grpc.Trailer(&trl))
			if status.Code(err) != codes.ResourceExhausted || len(trl.Get("x-fake-trailer")) != 1 || len(hdr.Get("x-fake-header")) != 0 {
				t.Fatalf("trailers-only: %v header %v trailer %v", err, hdr, trl)
			}
		})
	}

	// A server stream that fails before its first message.
	ctx := metadata.AppendToOutgoingContext(testCtx(t, 10*time.Second), fakemilvus.MDFail, "7", fakemilvus.MDFailMessage, "denied by backend")
	stream, err := test.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{})
	must(t, err)
	hdr, err := stream.Header()
	must(t, err)
	_, err = stream.Recv()
	if st := status.Convert(err); st.Code() != codes.PermissionDenied || st.Message() != "denied by backend" || len(hdr.Get("x-fake-header")) != 1 || len(stream.Trailer().Get("x-fake-trailer")) != 1 {
		t.Fatalf("stream early failure: %v header %v trailer %v", err, hdr, stream.Trailer())
	}
}

// Metadata passes through, except what the proxy owns.
func TestMetadataForwardedAndStripped(t *testing.T) {
	fake, p := startPair(t, harness.Options{AuthOff: true})
	milvus := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	ctx := metadata.AppendToOutgoingContext(testCtx(t, 10*time.Second),
		"dbname", "db1", "identifier", "4242", "client-request-id", "req-1", "x-custom", "v1",
		"authorization", "cm9vdDpNaWx2dXM=", "sourceid", "QEBtaWx2dXMtbWVtYmVyQEA=", "x-authproxy-user", "root")
	_, err := milvus.GetVersion(ctx, &milvuspb.GetVersionRequest{})
	must(t, err)
	got := fake.Recorder().CallsTo("GetVersion")
	if len(got) != 1 {
		t.Fatalf("backend saw %d GetVersion calls", len(got))
	}
	md := got[0].Metadata
	for k, want := range map[string]string{"dbname": "db1", "identifier": "4242", "client-request-id": "req-1", "x-custom": "v1"} {
		if v := md.Get(k); len(v) != 1 || v[0] != want {
			t.Errorf("%s = %v, want %q", k, v, want)
		}
	}
	for _, k := range []string{"authorization", "sourceid", "x-authproxy-user"} {
		if v := md.Get(k); len(v) != 0 {
			t.Errorf("%s reached the backend: %v", k, v)
		}
	}
}

// The client's deadline reaches the backend; a client that gives up cancels
// the backend call.
func TestDeadlineAndCancellation(t *testing.T) {
	fake, p := startPair(t, harness.Options{AuthOff: true})
	milvus := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	rec := fake.Recorder()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	clientDeadline, _ := ctx.Deadline()
	_, err := milvus.GetVersion(ctx, &milvuspb.GetVersionRequest{})
	cancel()
	must(t, err)
	// gRPC sends the remaining time, so the backend's deadline is the
	// client's less the transit (and never later).
	c := rec.CallsTo("GetVersion")[0]
	if early := clientDeadline.Sub(c.Deadline); !c.HasDeadline || early < -5*time.Millisecond || early > time.Second {
		t.Fatalf("backend deadline is %v before the client's (has %v)", early, c.HasDeadline)
	}

	ctx = metadata.AppendToOutgoingContext(testCtx(t, 10*time.Second), fakemilvus.MDSleep, "20s")
	ctx, cancel = context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = milvus.CheckHealth(ctx, &milvuspb.CheckHealthRequest{})
	cancel()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("want DeadlineExceeded, got %v", err)
	}
	wctx := testCtx(t, 5*time.Second)
	done, err := rec.WaitForCall(wctx, "CheckHealth")
	must(t, err)
	if !done.Canceled || done.End.Sub(done.Start) > 3*time.Second {
		t.Fatalf("backend call not ended by the deadline: %+v", done)
	}

	// Cancellation of a stream by the client.
	rec.Reset()
	sctx, scancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), fakemilvus.MDSleep, "20s"))
	test := testgrpc.NewTestServiceClient(dial(t, p.Addr, nil))
	go func() { _, _ = test.UnaryCall(sctx, &testgrpc.SimpleRequest{}) }()
	if _, err := rec.WaitForStart(wctx, "UnaryCall"); err != nil {
		t.Fatal(err)
	}
	scancel()
	done, err = rec.WaitForCall(wctx, "UnaryCall")
	must(t, err)
	if !done.Canceled || !errors.Is(done.CtxErr, context.Canceled) {
		t.Fatalf("client cancellation did not reach the backend: %+v", done)
	}
}

// Backend down: UNAVAILABLE naming the backend, quickly; back: the proxy
// recovers without a restart.
func TestBackendDownAndBack(t *testing.T) {
	fake, p := startPair(t, harness.Options{AuthOff: true})
	milvus := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	ctx := testCtx(t, 60*time.Second)
	_, err := milvus.GetVersion(ctx, &milvuspb.GetVersionRequest{})
	must(t, err)

	fake.Stop()
	var last error
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		start := time.Now()
		_, last = milvus.GetVersion(ctx, &milvuspb.GetVersionRequest{})
		if status.Code(last) == codes.Unavailable {
			if took := time.Since(start); took > 3*time.Second {
				t.Fatalf("UNAVAILABLE took %s", took)
			}
			break
		}
	}
	if st := status.Convert(last); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), fake.Addr()) {
		t.Fatalf("backend down: %v (want UNAVAILABLE naming %s)", last, fake.Addr())
	}

	must(t, fake.Restart())
	deadline = time.Now().Add(10 * time.Second)
	for {
		_, err := milvus.GetVersion(ctx, &milvuspb.GetVersionRequest{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy did not recover within 10s of the backend's return: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A bad config is refused at start with a message naming it.
func TestBadConfigRefused(t *testing.T) {
	dir := t.TempDir()
	for name, c := range map[string]struct{ yaml, want string }{
		"unknown key": {"listen: \"127.0.0.1:0\"\nbackend:\n  adress: \"127.0.0.1:1\"\n", `line 3: unknown key "adress"`},
		"bad value":   {"listen: \"127.0.0.1:0\"\ncache:\n  size: -3\n", "cache.size: must be at least 1"},
		"bad yaml":    {"listen: [\n", "config"},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
		must(t, os.WriteFile(path, []byte(c.yaml), 0o600))
		out := refusedAtStart(t, dir, path)
		if !strings.Contains(out, c.want) || !strings.Contains(out, path) {
			t.Errorf("%s: message %q does not name %q and the file", name, out, c.want)
		}
	}
}

// SIGTERM lets an in-flight call finish, then the process exits.
func TestGracefulShutdownDrains(t *testing.T) {
	_, p := startPair(t, harness.Options{AuthOff: true})
	milvus := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	ctx := metadata.AppendToOutgoingContext(testCtx(t, 20*time.Second), fakemilvus.MDSleep, "1500ms")
	errc := make(chan error, 1)
	go func() {
		_, err := milvus.GetVersion(ctx, &milvuspb.GetVersionRequest{})
		errc <- err
	}()
	time.Sleep(300 * time.Millisecond)
	p.Signal(syscall.SIGTERM)
	if err := <-errc; err != nil {
		t.Fatalf("in-flight call failed during graceful shutdown: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !p.Exited() {
		if time.Now().After(deadline) {
			t.Fatal("proxy did not exit after draining")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
