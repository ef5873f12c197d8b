package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/authproxy/authproxy/certs"
	"github.com/authproxy/authproxy/test/fakemilvus"
	"github.com/authproxy/authproxy/test/harness"
)

// pki is a CA with a server and client certificates minted for one test.
type pki struct {
	dir            string
	caPEM, caKey   []byte
	pool           *x509.CertPool
	clientCertPair tls.Certificate
}

func newPKI(t *testing.T, dir, clientCN string) *pki {
	t.Helper()
	must(t, os.MkdirAll(dir, 0o700))
	caPEM, caKey, err := certs.GenerateCA("authproxy test CA", 24*time.Hour)
	must(t, err)
	k := &pki{dir: dir, caPEM: caPEM, caKey: caKey, pool: x509.NewCertPool()}
	k.pool.AppendCertsFromPEM(caPEM)
	k.writeServer(t, dir, "")
	cert, key := k.leaf(t, certs.LeafSpec{CommonName: clientCN, Client: true})
	k.clientCertPair, err = tls.X509KeyPair(cert, key)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "ca.pem"), caPEM, 0o644))
	return k
}

func (k *pki) leaf(t *testing.T, spec certs.LeafSpec) (cert, key []byte) {
	t.Helper()
	cert, key, err := certs.GenerateLeaf(k.caPEM, k.caKey, spec)
	must(t, err)
	return cert, key
}

// writeServer writes server.pem/server.key into dir (suffix names a variant
// for rename-based rotation).
func (k *pki) writeServer(t *testing.T, dir, suffix string) (serial string) {
	t.Helper()
	cert, key := k.leaf(t, certs.LeafSpec{CommonName: "authproxy", Hosts: []string{"127.0.0.1", "localhost"}})
	must(t, os.WriteFile(filepath.Join(dir, "server.pem"+suffix), cert, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "server.key"+suffix), key, 0o600))
	pair, err := tls.X509KeyPair(cert, key)
	must(t, err)
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	must(t, err)
	return leaf.SerialNumber.String()
}

func (k *pki) clientTLS(withCert bool) *tls.Config {
	c := &tls.Config{RootCAs: k.pool, ServerName: "127.0.0.1"}
	if withCert {
		c.Certificates = []tls.Certificate{k.clientCertPair}
	}
	return c
}

func tlsSection(dir, clientAuth, identity string) string {
	s := fmt.Sprintf("tls:\n  certFile: %q\n  keyFile: %q\n", filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key"))
	if clientAuth != "none" {
		s += fmt.Sprintf("  clientCAFile: %q\n  clientAuth: %s\n", filepath.Join(dir, "ca.pem"), clientAuth)
	}
	return s + identity
}

func sdkTLS(addr string, tlsCfg *tls.Config, user, password string) *milvusclient.ClientConfig {
	return &milvusclient.ClientConfig{
		Address: addr, Username: user, Password: password,
		DialOptions: append([]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg))}, milvusclient.DefaultGrpcOpts...),
	}
}

// One-way TLS: the SDK sends user:password over TLS; plaintext is refused.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	k := newPKI(t, filepath.Join(dir, "tls"), "root")
	_, p := startPair(t, harness.Options{Dir: dir, Extra: tlsSection(k.dir, "none", "")})
	ctx := testCtx(t, 60*time.Second)
	c := sdkClient(t, ctx, sdkTLS(p.Addr, k.clientTLS(false), "root", "Milvus"))
	createVectors(t, ctx, c, "over_tls", 8)
	insertAndSearch(t, ctx, c, "over_tls")

	plain := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	short, cancel := context.WithTimeout(withToken(ctx, "root:Milvus"), 3*time.Second)
	defer cancel()
	if _, err := plain.GetVersion(short, &milvuspb.GetVersionRequest{}); err == nil {
		t.Fatal("a plaintext client was served on the TLS port")
	}
}

// Mutual TLS: a verified certificate with user:password, the certificate
// alone as the identity, and every refusal.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	k := newPKI(t, filepath.Join(dir, "tls"), "root")
	fake, p := startPair(t, harness.Options{Dir: dir, Extra: tlsSection(k.dir, "require", "  clientIdentity:\n    source: cn\n")})
	ctx := testCtx(t, 60*time.Second)

	withPassword := sdkClient(t, ctx, sdkTLS(p.Addr, k.clientTLS(true), "root", "Milvus"))
	_, err := withPassword.ListCollections(ctx, milvusclient.NewListCollectionOption())
	must(t, err)

	certOnly := sdkClient(t, ctx, sdkTLS(p.Addr, k.clientTLS(true), "", ""))
	createVectors(t, ctx, certOnly, "cert_only", 8)
	insertAndSearch(t, ctx, certOnly, "cert_only")
	inserts := fake.Recorder().CallsTo("Insert")
	if u := inserts[len(inserts)-1].Metadata.Get("x-authproxy-user"); len(u) != 1 || u[0] != "root" {
		t.Fatalf("certificate identity reached the backend as %v", u)
	}

	// The certificate says root, the token says someone else: refused.
	harness.Password("other", "P@ssw0rd")
	must(t, withPassword.CreateUser(ctx, milvusclient.NewCreateUserOption("other", "P@ssw0rd")))
	_, err = sdkConnect(ctx, sdkTLS(p.Addr, k.clientTLS(true), "other", "P@ssw0rd"))
	wantRefused(t, "token user differs from the certificate", err, "does not match the client certificate")

	// No certificate, an untrusted certificate, or plaintext: refused.
	handshake := func(cfg *tls.Config) error { return tlsHandshake(p.Addr, cfg) }
	if err := handshake(k.clientTLS(false)); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("client without a certificate under require: %v", err)
	}
	stranger := newPKI(t, filepath.Join(dir, "stranger"), "root")
	untrusted := k.clientTLS(false)
	untrusted.Certificates = []tls.Certificate{stranger.clientCertPair}
	if err := handshake(untrusted); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("client with an untrusted certificate: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil)).GetVersion(short, &milvuspb.GetVersionRequest{}); err == nil {
		t.Error("a plaintext client was served under mutual TLS")
	}
}

// servedSerial is the serial of the certificate a new handshake presents.
func servedSerial(addr string, pool *x509.CertPool) (string, error) {
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
}

// Rotation under load: the certificate is replaced by rename and by a
// Kubernetes ..data swap while a client calls without pause over an open
// connection and over new ones; no call fails, new handshakes get the new
// certificate within two seconds, and a broken one leaves the old in service.
func TestCertificateRotationUnderLoad(t *testing.T) {
	dir := t.TempDir()
	// The Kubernetes Secret layout: files are links through ..data.
	secret := filepath.Join(dir, "secret")
	k := newPKI(t, filepath.Join(secret, "..v1"), "root")
	must(t, os.Symlink("..v1", filepath.Join(secret, "..data")))
	for _, f := range []string{"server.pem", "server.key", "ca.pem"} {
		must(t, os.Symlink(filepath.Join("..data", f), filepath.Join(secret, f)))
	}
	_, p := startPair(t, harness.Options{Dir: dir, Extra: tlsSection(secret, "none", "")})
	ctx := testCtx(t, 90*time.Second)

	// Worker 0 keeps one connection; worker 1 opens a new one per call.
	var conns [2]*grpc.ClientConn
	stopLoad := startLoad(2, func(w int) error {
		if conns[w] == nil || w == 1 {
			if conns[w] != nil {
				conns[w].Close()
			}
			var err error
			if conns[w], err = grpc.NewClient(p.Addr, grpc.WithTransportCredentials(credentials.NewTLS(k.clientTLS(false)))); err != nil {
				return err
			}
		}
		return getVersion(ctx, milvuspb.NewMilvusServiceClient(conns[w]), "root:Milvus")
	})

	waitServed := func(serial, how string) {
		t.Helper()
		eventually(t, 2*time.Second, "new certificate served after "+how, func() error {
			got, err := servedSerial(p.Addr, k.pool)
			if err == nil && got != serial {
				err = fmt.Errorf("still serving %s", got)
			}
			return err
		})
	}
	for i := range 3 {
		// A new ..<timestamp> directory and the ..data swap, as kubelet does it.
		target := filepath.Join(secret, fmt.Sprintf("..v%d", i+2))
		must(t, os.MkdirAll(target, 0o700))
		serial := k.writeServer(t, target, "")
		must(t, os.WriteFile(filepath.Join(target, "ca.pem"), k.caPEM, 0o644))
		must(t, os.Symlink(filepath.Base(target), filepath.Join(secret, "..data_tmp")))
		must(t, os.Rename(filepath.Join(secret, "..data_tmp"), filepath.Join(secret, "..data")))
		waitServed(serial, "a ..data swap")
	}
	for range 3 {
		// Rename over the watched names, as an editor or a script does.
		serial := k.writeServer(t, secret, ".new")
		must(t, os.Rename(filepath.Join(secret, "server.key.new"), filepath.Join(secret, "server.key")))
		must(t, os.Rename(filepath.Join(secret, "server.pem.new"), filepath.Join(secret, "server.pem")))
		waitServed(serial, "a rename")
	}

	// A broken certificate: the old one stays in service, the failure shows.
	before, err := servedSerial(p.Addr, k.pool)
	must(t, err)
	failuresBefore := metricValue(t, p, `authproxy_reloads_total{file="tls",result="failure"}`)
	logsBefore := strings.Count(p.Logs(), "TLS reload refused")
	must(t, os.WriteFile(filepath.Join(secret, "server.pem.tmp"), []byte("-----BEGIN CERTIFICATE-----\nbroken\n"), 0o644))
	must(t, os.Rename(filepath.Join(secret, "server.pem.tmp"), filepath.Join(secret, "server.pem")))
	eventually(t, 3*time.Second, "the broken certificate is refused and logged", func() error {
		if strings.Count(p.Logs(), "TLS reload refused") == logsBefore {
			return fmt.Errorf("no new log line")
		}
		return nil
	})
	after, err := servedSerial(p.Addr, k.pool)
	must(t, err)
	if after != before {
		t.Fatalf("a broken certificate replaced the one in service")
	}
	if metricValue(t, p, `authproxy_reloads_total{file="tls",result="failure"}`) <= failuresBefore {
		t.Fatal("the failed reload is not counted in authproxy_reloads_total")
	}
	if _, ready := p.AdminStatus("/readyz"); !strings.Contains(ready, "server.pem") {
		t.Fatalf("readiness detail does not show the failed reload:\n%s", ready)
	}

	calls, failures, first := stopLoad()
	t.Logf("%d calls during 6 rotations, %d failed", calls, failures)
	if failures != 0 || calls < 50 {
		t.Fatalf("%d of %d calls failed during rotation; first: %v", failures, calls, first)
	}
}

// `authproxy certs generate` writes usable files with private keys 0600.
func TestCertsGenerate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	out, err := exec.Command(harness.Binary(t), "certs", "generate", "--dir", dir, "--hosts", "localhost,127.0.0.1").CombinedOutput()
	if err != nil {
		t.Fatalf("certs generate: %v\n%s", err, out)
	}
	for name, mode := range map[string]os.FileMode{"ca.key": 0o600, "server.key": 0o600, "client.key": 0o600, "ca.pem": 0o644, "server.pem": 0o644, "client.pem": 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v mode %v, want %v", name, err, fi.Mode().Perm(), mode)
		}
	}
	_, p := startPair(t, harness.Options{Extra: tlsSection(dir, "require", "  clientIdentity:\n    source: cn\n")})
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	pool.AppendCertsFromPEM(caPEM)
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key"))
	must(t, err)
	ctx := testCtx(t, 20*time.Second)
	c := sdkClient(t, ctx, sdkTLS(p.Addr, &tls.Config{RootCAs: pool, ServerName: "localhost", Certificates: []tls.Certificate{pair}}, "", ""))
	_, err = c.ListCollections(ctx, milvusclient.NewListCollectionOption())
	must(t, err)
}

// TLS from the proxy to a backend that is itself behind mutual TLS; the
// served certificate's expiry is a metric.
func TestBackendTLSAndExpiryMetric(t *testing.T) {
	dir := t.TempDir()
	k := newPKI(t, filepath.Join(dir, "tls"), "root")
	// The backend presents server.pem and requires a client certificate.
	backendCert, err := tls.LoadX509KeyPair(filepath.Join(k.dir, "server.pem"), filepath.Join(k.dir, "server.key"))
	must(t, err)
	fake := fakemilvus.New(fakemilvus.Options{ServerOptions: []grpc.ServerOption{grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{backendCert}, ClientCAs: k.pool, ClientAuth: tls.RequireAndVerifyClientCert,
	}))}})
	_, err = fake.Start("127.0.0.1:0")
	must(t, err)
	t.Cleanup(fake.Stop)
	cert, key := k.leaf(t, certs.LeafSpec{CommonName: "authproxy", Client: true})
	must(t, os.WriteFile(filepath.Join(k.dir, "proxy-client.pem"), cert, 0o644))
	must(t, os.WriteFile(filepath.Join(k.dir, "proxy-client.key"), key, 0o600))

	p := harness.Start(t, harness.Options{Dir: dir, Backend: fake.Addr(), BackendExtra: fmt.Sprintf(
		"  tls:\n    caFile: %q\n    serverName: \"localhost\"\n    certFile: %q\n    keyFile: %q\n",
		filepath.Join(k.dir, "ca.pem"), filepath.Join(k.dir, "proxy-client.pem"), filepath.Join(k.dir, "proxy-client.key")),
		Extra: tlsSection(k.dir, "none", "")})
	ctx := testCtx(t, 30*time.Second)
	c := sdkClient(t, ctx, sdkTLS(p.Addr, k.clientTLS(false), "root", "Milvus"))
	v, err := c.GetServerVersion(ctx, milvusclient.NewGetServerVersionOption())
	must(t, err)
	if v != fakemilvus.DefaultVersion || len(fake.Recorder().CallsTo("GetVersion")) != 1 {
		t.Fatalf("through backend TLS: %q, backend calls %d", v, len(fake.Recorder().CallsTo("GetVersion")))
	}

	pem, err := os.ReadFile(filepath.Join(k.dir, "server.pem"))
	must(t, err)
	served, err := tls.X509KeyPair(pem, mustRead(t, filepath.Join(k.dir, "server.key")))
	must(t, err)
	leaf, err := x509.ParseCertificate(served.Certificate[0])
	must(t, err)
	if got := metricValue(t, p, "authproxy_tls_certificate_expiry_timestamp_seconds"); int64(got) != leaf.NotAfter.Unix() {
		t.Fatalf("expiry metric %v, certificate expires %v", got, leaf.NotAfter.Unix())
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	return b
}
