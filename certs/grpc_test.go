package certs

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestGRPC checks that both configs work through grpc's credentials.NewTLS,
// which requires ALPN "h2" on the config GetConfigForClient returns.
func TestGRPC(t *testing.T) {
	f := newServerFixture(t)
	srv, err := NewServer(ServerOptions{CertFile: f.certFile, KeyFile: f.keyFile, ClientCAFile: f.caFile})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cliCert, cliKey := f.ca.leaf(t, LeafSpec{CommonName: "root", Client: true})
	certFile, keyFile := writePair(t, dir, "client", cliCert, cliKey)
	cli, err := NewClient(ClientOptions{CAFile: writeFile(t, dir, "ca.pem", f.ca.cert), CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(srv.TLSConfig())))
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go func() { _ = gs.Serve(ln) }()
	defer gs.Stop()

	// "localhost" as authority: grpc puts it in the clone's ServerName.
	conn, err := grpc.NewClient("localhost:"+portOf(t, ln), grpc.WithTransportCredentials(credentials.NewTLS(cli.TLSConfig())))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("gRPC call over mTLS: %v", err)
	}
}

func portOf(t *testing.T, ln net.Listener) string {
	t.Helper()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return port
}
