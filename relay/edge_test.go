package relay

import (
	"context"
	"encoding/base64"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/authproxy/authproxy/admission"
	"github.com/authproxy/authproxy/auth"
	"github.com/authproxy/authproxy/credentials"
	"github.com/authproxy/authproxy/edge"
	"github.com/authproxy/authproxy/edge/edgetest"
	"github.com/authproxy/authproxy/usermgmt"
)

// The relay's HEADERS to the backend pass the shared edge table: a real
// gRPC client calls through a Relay to a gRPC backend that records the
// metadata it got.
func TestRelayFollowsEdgeTable(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	store, err := credentials.OpenFile(filepath.Join(t.TempDir(), "credentials.yaml"), credentials.FileOptions{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	users := usermgmt.NewService(usermgmt.Options{Store: store, Logger: logger})
	if err := users.CreateUser(context.Background(), usermgmt.Caller{}, edgetest.User, "alice-pw1", ""); err != nil {
		t.Fatal(err)
	}
	verifier, err := auth.NewVerifier(auth.VerifierOptions{Store: store, CacheSize: 8, CacheTTL: time.Minute, MaxConcurrentHashes: 1})
	if err != nil {
		t.Fatal(err)
	}
	policy := edge.NewHeaderPolicy(edge.DefaultIdentityHeader)
	adm := admission.NewAdmitter(admission.Options{
		Authn: auth.NewAuthenticator(verifier, edge.NewFailureLog(logger), true), Headers: policy})

	var mu sync.Mutex
	var got metadata.MD
	backend := grpc.NewServer(grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		mu.Lock()
		got, _ = metadata.FromIncomingContext(ctx)
		mu.Unlock()
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(backend, health.NewServer())
	backendLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = backend.Serve(backendLis) }()
	t.Cleanup(backend.Stop)

	r := New(Options{Backend: backendLis.Addr().String(), Admitter: adm, MaxRecvMsgSize: 1 << 20, MaxSendMsgSize: 1 << 20, Logger: logger})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.ServeHTTP2(lis, nil) }()
	t.Cleanup(func() { lis.Close(); r.Stop() })
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := healthpb.NewHealthClient(conn)

	token := base64.StdEncoding.EncodeToString([]byte(edgetest.User + ":alice-pw1"))
	for _, c := range edgetest.Cases {
		for _, h := range c.IdentityHeaders {
			policy.SetIdentityHeader(h)
		}
		md := metadata.Pairs("authorization", token)
		for k, v := range c.Sent {
			md.Append(strings.ToLower(k), v)
		}
		ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.Background(), md), 10*time.Second)
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		mu.Lock()
		edgetest.Check(t, c, got)
		mu.Unlock()
	}
}
