package certs

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestGenerate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	if err := Generate(dir, []string{"127.0.0.1", "localhost"}, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("dir: %v, %v; want mode 0700", st.Mode(), err)
	}
	for name, mode := range map[string]os.FileMode{
		"ca.pem": 0o644, "ca.key": 0o600, "server.pem": 0o644, "server.key": 0o600, "client.pem": 0o644, "client.key": 0o600,
	} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", name, st.Mode().Perm(), mode)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 6 {
		t.Errorf("%d files in %s, want 6 (no temporary files left)", len(entries), dir)
	}
	p := func(name string) string { return filepath.Join(dir, name) }

	srv, err := NewServer(ServerOptions{CertFile: p("server.pem"), KeyFile: p("server.key"), ClientCAFile: p("ca.pem")})
	if err != nil {
		t.Fatal(err)
	}
	leaf := srv.current.Load().Certificates[0].Leaf
	if len(leaf.IPAddresses) != 1 || leaf.IPAddresses[0].String() != "127.0.0.1" || len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "localhost" {
		t.Fatalf("server SANs: IPs %v, DNS %v", leaf.IPAddresses, leaf.DNSNames)
	}
	if d := time.Until(srv.NotAfter()); d < 23*time.Hour || d > 25*time.Hour {
		t.Fatalf("server certificate expires in %v, want about 24h", d)
	}
	cli, err := NewClient(ClientOptions{CAFile: p("ca.pem"), ServerName: "127.0.0.1", CertFile: p("client.pem"), KeyFile: p("client.key")})
	if err != nil {
		t.Fatal(err)
	}
	ts := startTLSServer(t, srv.TLSConfig())
	_, res, err := ts.dial(t, cli.TLSConfig())
	if err != nil || res.err != nil {
		t.Fatalf("mTLS handshake with generated files: client %v, server %v", err, res.err)
	}
	if user, err := Identity(res.peers[0], IdentityCN, nil); err != nil || user != DefaultClientCN {
		t.Fatalf("Identity = %q, %v; want %q", user, err, DefaultClientCN)
	}

	// Regenerating replaces the files in place.
	if err := Generate(dir, []string{"localhost"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	if d := time.Until(srv.NotAfter()); d > 2*time.Hour {
		t.Fatalf("after regenerating, certificate expires in %v, want about 1h: files not replaced", d)
	}
	if err := Generate(dir, nil, time.Hour); err == nil {
		t.Fatal("Generate without hosts: want error")
	}
}
