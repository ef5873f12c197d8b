package proxy

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/authproxy/authproxy/admission"
	"github.com/authproxy/authproxy/auth"
	"github.com/authproxy/authproxy/edge"
)

func TestOutgoingMetadataStripsOwnedKeysAndAddsIdentity(t *testing.T) {
	policy := edge.NewHeaderPolicy("x-user")
	d := NewDirector(nil, admission.NewAdmitter(admission.Options{Headers: policy}))
	in := metadata.Pairs(
		"authorization", "c2VjcmV0", "sourceid", "QEBtaWx2dXMtbWVtYmVyQEA=",
		"x-user", "root", "x-authproxy-user", "root", "connection", "keep-alive",
		"dbname", "db1", "identifier", "42", "client-request-id", "r1", "x-custom", "v",
	)
	call := &admission.Call{Identity: auth.Identity{User: "user_1"}, Authenticated: true}
	ctx := admission.WithCall(metadata.NewIncomingContext(context.Background(), in), call)
	out := d.OutgoingMetadata(ctx)
	for _, k := range []string{"authorization", "sourceid", "x-authproxy-user", "connection"} {
		if _, ok := out[k]; ok {
			t.Errorf("%s forwarded", k)
		}
	}
	for k, want := range map[string]string{"dbname": "db1", "identifier": "42", "client-request-id": "r1", "x-custom": "v", "x-user": "user_1"} {
		if got := out.Get(k); len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	policy.SetIdentityHeader("")
	out = d.OutgoingMetadata(ctx)
	if _, ok := out["x-user"]; ok {
		t.Error("identity header sent after it was switched off")
	}
}

// startPair runs a health-service backend and a proxy in process and
// returns client connections to the proxy and, for baselines, to the backend.
func startPair(tb testing.TB) (viaProxy, direct *grpc.ClientConn) {
	tb.Helper()
	backendLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	backendSrv := grpc.NewServer()
	healthpb.RegisterHealthServer(backendSrv, health.NewServer())
	go func() { _ = backendSrv.Serve(backendLis) }()
	tb.Cleanup(backendSrv.Stop)

	codec := NewCodec()
	backend, err := DialBackend(BackendOptions{Address: backendLis.Addr().String(), Codec: codec, MaxRecvMsgSize: 4 << 20, MaxSendMsgSize: 4 << 20})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { backend.Close() })
	director := NewDirector(backend, admission.NewAdmitter(admission.Options{Headers: edge.NewHeaderPolicy("")}))
	proxyLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	proxySrv := grpc.NewServer(grpc.ForceServerCodecV2(codec),
		grpc.UnknownServiceHandler(NewHandler(director.Direct, nil).StreamHandler()))
	go func() { _ = proxySrv.Serve(proxyLis) }()
	tb.Cleanup(proxySrv.Stop)

	dial := func(addr string) *grpc.ClientConn {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { conn.Close() })
		return conn
	}
	return dial(proxyLis.Addr().String()), dial(backendLis.Addr().String())
}

func TestForwardsUnaryAndStream(t *testing.T) {
	viaProxy, _ := startPair(t)
	client := healthpb.NewHealthClient(viaProxy)
	resp, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("unary through the proxy: %v %v", resp, err)
	}
	// Watch is server-streaming: it takes the general stream path.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.Recv()
	if err != nil || msg.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("stream through the proxy: %v %v", msg, err)
	}
}

// BenchmarkOutgoingMetadata: the metadata rewrite of every forwarded call.
func BenchmarkOutgoingMetadata(b *testing.B) {
	d := NewDirector(nil, admission.NewAdmitter(admission.Options{}))
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(
		"authorization", "dXNlcl8xOlBAc3N3MHJk", "dbname", "default", "identifier", "42",
		"client-request-id", "r1", "user-agent", "grpc-go/1.85.0"))
	ctx = admission.WithCall(ctx, &admission.Call{Identity: auth.Identity{User: "user_1"}, Authenticated: true})
	b.ReportAllocs()
	for b.Loop() {
		_ = d.OutgoingMetadata(ctx)
	}
}

// BenchmarkForwardUnary: one unary call through an in-process proxy
// (client, proxy and backend on loopback), beside the same call made
// directly to the backend in the same process; compare the two lines.
func BenchmarkForwardUnary(b *testing.B) {
	viaProxy, direct := startPair(b)
	for name, conn := range map[string]*grpc.ClientConn{"direct": direct, "proxied": viaProxy} {
		b.Run(name, func(b *testing.B) {
			client := healthpb.NewHealthClient(conn)
			ctx := context.Background()
			req := &healthpb.HealthCheckRequest{}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := client.Check(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
