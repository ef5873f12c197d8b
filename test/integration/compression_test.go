package integration

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding/gzip"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/authproxy/authproxy/test/harness"
)

// A gzip-compressed call was refused with "Decompressor is not installed"
// although the backend accepts gzip (found by the gRPC interop client).
// Compressed unary calls and compressed streams now go through intact.
func TestGzipCompressedCallsPassThrough(t *testing.T) {
	fake, p := startPair(t, harness.Options{})
	ctx := withToken(testCtx(t, 30*time.Second), "root:Milvus")
	client := testgrpc.NewTestServiceClient(dial(t, p.Addr, nil))
	body := bytes.Repeat([]byte("authproxy compresses well "), 4000)

	resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{
		ResponseSize: 50000,
		Payload:      &testgrpc.Payload{Body: body},
	}, grpc.UseCompressor(gzip.Name))
	if err != nil {
		t.Fatalf("gzip unary call: %v", err)
	}
	if n := len(resp.GetPayload().GetBody()); n != 50000 {
		t.Fatalf("unary response payload %d bytes, want 50000", n)
	}

	stream, err := client.FullDuplexCall(ctx, grpc.UseCompressor(gzip.Name))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		err := stream.Send(&testgrpc.StreamingOutputCallRequest{
			Payload:            &testgrpc.Payload{Body: body},
			ResponseParameters: []*testgrpc.ResponseParameters{{Size: int32(1000 * i)}},
		})
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		out, err := stream.Recv()
		if err != nil {
			t.Fatalf("gzip stream message %d: %v", i, err)
		}
		if n := len(out.GetPayload().GetBody()); n != 1000*i {
			t.Fatalf("stream message %d: %d bytes, want %d", i, n, 1000*i)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("stream end: %v", err)
	}
	if n := len(fake.Recorder().CallsTo("/grpc.testing.TestService/FullDuplexCall")); n != 1 {
		t.Fatalf("backend saw %d FullDuplexCall streams, want 1", n)
	}
}
