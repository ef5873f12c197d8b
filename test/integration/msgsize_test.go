package integration

import (
	"fmt"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/authproxy/authproxy/test/harness"
)

// grpc.maxRecvMsgSize and maxSendMsgSize bound every message of every
// call, streams included, on both cores, with grpc-go's status and words:
// a 12 MiB request and a 16 MiB reply against 8 MiB limits are refused;
// 7 MiB pass both ways.
func TestMessageSizeLimitsOnStreams(t *testing.T) {
	const limit = 8 << 20
	_, p := startPair(t, harness.Options{Extra: "grpc:\n  maxRecvMsgSize: 8388608\n  maxSendMsgSize: 8388608\n"})
	ctx := withToken(testCtx(t, 60*time.Second), "root:Milvus")
	client := testgrpc.NewTestServiceClient(dial(t, p.Addr, nil))
	body := func(n int) *testgrpc.Payload { return &testgrpc.Payload{Body: make([]byte, n)} }
	want := func(what string, err error, msg string) {
		t.Helper()
		if status.Code(err) != codes.ResourceExhausted || status.Convert(err).Message() != msg {
			t.Errorf("%s: %v, want ResourceExhausted %q", what, err, msg)
		}
	}

	// Within the limits, both ways, on a stream.
	small, err := client.FullDuplexCall(ctx)
	must(t, err)
	must(t, small.Send(&testgrpc.StreamingOutputCallRequest{Payload: body(7 << 20), ResponseParameters: []*testgrpc.ResponseParameters{{Size: 7 << 20}}}))
	if r, err := small.Recv(); err != nil || len(r.GetPayload().GetBody()) != 7<<20 {
		t.Fatalf("7 MiB each way: %v", err)
	}
	must(t, small.CloseSend())
	if _, err := small.Recv(); err != io.EOF {
		t.Fatalf("the end of the 7 MiB stream: %v", err)
	}

	// A 12 MiB request message, the second of a client stream.
	up, err := client.StreamingInputCall(ctx)
	must(t, err)
	must(t, up.Send(&testgrpc.StreamingInputCallRequest{Payload: body(1 << 10)}))
	big := &testgrpc.StreamingInputCallRequest{Payload: body(12 << 20)}
	_ = up.Send(big)
	_, err = up.CloseAndRecv()
	want("a 12 MiB request on a client stream", err, fmt.Sprintf("grpc: received message larger than max (%d vs. %d)", proto.Size(big), limit))

	// A 16 MiB reply message, after a small one, on a server stream.
	down, err := client.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: 1 << 10}, {Size: 16 << 20}}})
	must(t, err)
	if r, err := down.Recv(); err != nil || len(r.GetPayload().GetBody()) != 1<<10 {
		t.Fatalf("the small reply before the big one: %v", err)
	}
	_, err = down.Recv()
	reply := &testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Type: testgrpc.PayloadType_COMPRESSABLE, Body: make([]byte, 16<<20)}}
	want("a 16 MiB reply on a server stream", err, fmt.Sprintf("grpc: received message larger than max (%d vs. %d)", proto.Size(reply), limit))
}
