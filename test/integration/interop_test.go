package integration

import (
	"context"
	"encoding/base64"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/authproxy/authproxy/test/harness"
)

// interopCases is every case of the official grpc-go interop client
// (google.golang.org/grpc/interop/client, v1.85.0: the -test_case switch
// in client.go) that can work through a proxy.
var interopCases = []string{
	"empty_unary", "large_unary", "client_streaming", "server_streaming",
	"ping_pong", "empty_stream", "timeout_on_sleeping_server",
	"cancel_after_begin", "cancel_after_first_response",
	"status_code_and_message", "special_status_message", "custom_metadata",
	"unimplemented_method", "unimplemented_service",
	"rpc_soak", "channel_soak", "orca_per_rpc",
}

// interopCasesAuthOff run through a proxy with authentication off: the
// ORCA out-of-band stream (xds.service.orca.v3.OpenRcaService) is opened
// by the client's load balancer, which sends no --additional_metadata, so
// an authenticating proxy refuses it (missing authorization), as it must.
var interopCasesAuthOff = []string{"orca_oob"}

// interopCasesNotRun are the client's other cases, with why: most prove
// Google credentials (a GCE metadata server, service account keys, OAuth
// tokens, ALTS), which no proxy in front of a test server can have. grpc-go
// leaves the same ones out of its own run (interop/interop_test.sh).
var interopCasesNotRun = map[string]string{
	"pick_first_unary":                   "needs backends that fill server_id (an xDS deployment); grpc-go's interop server leaves it empty, also without a proxy",
	"compute_engine_creds":               "needs a GCE metadata server for a Google token",
	"service_account_creds":              "needs a Google service account key and Google's OAuth",
	"jwt_token_creds":                    "needs a Google service account key",
	"per_rpc_creds":                      "needs a Google service account key and Google's OAuth",
	"oauth2_auth_token":                  "needs a Google service account key and Google's OAuth",
	"google_default_credentials":         "needs Google default credentials (GCE or a key) and ALTS or TLS to Google",
	"compute_engine_channel_credentials": "needs a GCE metadata server and ALTS",
}

// The official grpc-go interop client runs every case that can pass a
// proxy through the proxy, authenticated (its --additional_metadata flag
// sends the token as "authorization"), plaintext and over TLS, on the
// core of the run. Behind the proxy is grpc-go's own interop server
// (grpc.testing.TestService, ORCA included), built from the same module
// as a tool of the test module. A call without the token is refused.
func TestGRPCInteropClientThroughTheProxy(t *testing.T) {
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin, "google.golang.org/grpc/interop/client", "google.golang.org/grpc/interop/server")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the interop client and server: %v\n%s", err, out)
	}
	backend := startInteropServer(t, filepath.Join(bin, "server"))
	token := base64.StdEncoding.EncodeToString([]byte("root:Milvus"))
	harness.Password("root", "Milvus")
	for c, why := range interopCasesNotRun {
		t.Logf("not run: %s (%s)", c, why)
	}

	overBoth(t, "", func(t *testing.T, dir, extra string, k *pki) {
		authed := harness.Start(t, harness.Options{Dir: dir, Extra: extra, Backend: backend})
		open := harness.Start(t, harness.Options{Extra: extra, Backend: backend, AuthOff: true})
		// run runs one case through p, with the token or without.
		run := func(t *testing.T, p *harness.Proxy, testCase string, withToken bool) (string, error) {
			host, port, err := net.SplitHostPort(p.Addr)
			must(t, err)
			args := []string{"--server_host=" + host, "--server_port=" + port, "--test_case=" + testCase,
				// As grpc-go's interop_test.sh runs it: the ORCA cases check
				// their load reports in this balancer.
				`--service_config_json={"loadBalancingConfig": [{"test_backend_metrics_load_balancer": {}}]}`}
			if withToken {
				args = append(args, "--additional_metadata=authorization:"+token)
			}
			if k != nil {
				args = append(args, "--use_tls", "--use_test_ca", "--ca_file="+filepath.Join(k.dir, "ca.pem"), "--server_host_override=127.0.0.1")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, filepath.Join(bin, "client"), args...).CombinedOutput()
			return string(out), err
		}
		for _, c := range interopCases {
			t.Run(c, func(t *testing.T) {
				if out, err := run(t, authed, c, true); err != nil {
					t.Fatalf("interop %s through the proxy: %v\n%s", c, err, out)
				}
			})
		}
		for _, c := range interopCasesAuthOff {
			t.Run(c+" (authentication off)", func(t *testing.T) {
				if out, err := run(t, open, c, false); err != nil {
					t.Fatalf("interop %s through the proxy without authentication: %v\n%s", c, err, out)
				}
			})
		}
		t.Run("without the token", func(t *testing.T) {
			out, err := run(t, authed, "empty_unary", false)
			if err == nil || !strings.Contains(out, "Unauthenticated") {
				t.Fatalf("empty_unary without a token: %v, want Unauthenticated:\n%s", err, out)
			}
		})
	})
}

// startInteropServer runs grpc-go's interop server (which listens on every
// interface of its port: it has no address flag) and returns its loopback
// address once it accepts connections.
func startInteropServer(t *testing.T, server string) string {
	t.Helper()
	addr := harness.FreeAddr(t)
	_, port, err := net.SplitHostPort(addr)
	must(t, err)
	cmd := exec.Command(server, "--port="+port)
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	done, err := harness.StartChild(cmd)
	must(t, err)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	for deadline := time.Now().Add(15 * time.Second); ; {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("the interop server did not listen on %s within 15 s:\n%s", addr, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
