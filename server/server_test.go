package server

import (
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/authproxy/authproxy/config"
)

// startBackend serves the gRPC health service on loopback: the smallest
// real backend the proxy can forward to.
func startBackend(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

type running struct {
	srv *Server
	reg *prometheus.Registry
}

// startServer runs a Server in this process, with its own registry, and
// stops it when the test ends.
func startServer(t *testing.T, backend string) running {
	t.Helper()
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Backend.Address = backend
	cfg.Credentials.File = filepath.Join(t.TempDir(), "credentials.yaml")
	cfg.Shutdown.GracePeriod = 2 * time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv, err := New(cfg, Options{LogOutput: io.Discard, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after its context ended")
		}
	})
	return running{srv: srv, reg: reg}
}

func healthCheck(t *testing.T, addr, token string) error {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", base64.StdEncoding.EncodeToString([]byte(token)))
	}
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

// Two servers in one process: each has its own metrics, and neither
// panics on registration (the reason server had no tests before).
func TestTwoServersInOneProcessCountSeparately(t *testing.T) {
	backend := startBackend(t)
	a := startServer(t, backend)
	b := startServer(t, backend)

	if err := healthCheck(t, a.srv.Addr().String(), "root:Milvus"); err != nil {
		t.Fatalf("authenticated call through server a: %v", err)
	}
	for range 3 {
		if err := healthCheck(t, b.srv.Addr().String(), ""); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("call without a token through server b: %v, want Unauthenticated", err)
		}
	}

	const method = "/grpc.health.v1.Health/Check"
	count := func(r running, code string) float64 {
		return metricValue(t, r.reg, "authproxy_grpc_calls_total", map[string]string{"method": method, "code": code})
	}
	if got := count(a, "OK"); got != 1 {
		t.Errorf("server a counted %v OK calls, want 1", got)
	}
	if got := count(a, "Unauthenticated"); got != 0 {
		t.Errorf("server a counted %v refused calls, want 0 (they were b's)", got)
	}
	if got := count(b, "Unauthenticated"); got != 3 {
		t.Errorf("server b counted %v refused calls, want 3", got)
	}
	if got := metricValue(t, b.reg, "authproxy_auth_total", map[string]string{"result": "failure", "reason": "missing"}); got != 3 {
		t.Errorf("server b counted %v missing tokens, want 3", got)
	}
}

// The admin listener serves the server's own registry and its readiness.
func TestAdminServesTheInjectedRegistry(t *testing.T) {
	backend := startBackend(t)
	r := startServer(t, backend)
	if err := healthCheck(t, r.srv.Addr().String(), "root:Milvus"); err != nil {
		t.Fatal(err)
	}
	base := "http://" + r.srv.AdminAddr().String()
	body := httpGet(t, base+"/metrics", http.StatusOK)
	for _, want := range []string{
		`authproxy_grpc_calls_total{code="OK",method="/grpc.health.v1.Health/Check"} 1`,
		`authproxy_backend_up 1`,
		`authproxy_reloads_total{file="credentials",result="success"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, "go_goroutines") {
		t.Error("/metrics serves the global registry: the runtime collectors belong to the binary's registry only")
	}
	ready := httpGet(t, base+"/readyz", http.StatusOK)
	if !strings.Contains(ready, `"ready": true`) {
		t.Errorf("/readyz: %s", ready)
	}
}

func httpGet(t *testing.T, url string, want int) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %d, want %d: %s", url, resp.StatusCode, want, b)
	}
	return string(b)
}

// metricValue reads one series from a registry; 0 when it does not exist.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue series
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// The credentials readiness check fails when the file can no longer be
// read (a restart would start from a fresh file), and recovers with it.
func TestReadinessFollowsTheCredentialFile(t *testing.T) {
	r := startServer(t, startBackend(t))
	base := "http://" + r.srv.AdminAddr().String()
	path := r.srv.cfg.Load().Credentials.File
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	body := httpGet(t, base+"/readyz", http.StatusServiceUnavailable)
	if !strings.Contains(body, "credential file") || !strings.Contains(body, "cannot be read") {
		t.Fatalf("/readyz without the credential file: %s", body)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	httpGet(t, base+"/readyz", http.StatusOK)
}
