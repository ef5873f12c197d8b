package certs

import (
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"
)

type serverFixture struct {
	ca                testCA
	certFile, keyFile string
	caFile            string
	serverCertPEM     []byte
}

func newServerFixture(t *testing.T) *serverFixture {
	t.Helper()
	dir := t.TempDir()
	f := &serverFixture{ca: newTestCA(t, "server CA")}
	var key []byte
	f.serverCertPEM, key = f.ca.leaf(t, LeafSpec{CommonName: "proxy", Hosts: []string{"127.0.0.1", "localhost"}})
	f.certFile, f.keyFile = writePair(t, dir, "server", f.serverCertPEM, key)
	f.caFile = writeFile(t, dir, "clients-ca.pem", f.ca.cert)
	return f
}

// clientConf trusts the fixture CA and optionally presents a certificate.
func (f *serverFixture) clientConf(t *testing.T, cert *tls.Certificate) *tls.Config {
	t.Helper()
	cfg := &tls.Config{RootCAs: f.ca.pool(t), ServerName: "localhost"}
	if cert != nil {
		// Always send it: with Certificates, crypto/tls would silently send
		// nothing when the server's acceptable-CA list does not match.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return cfg
}

func TestServerClientAuth(t *testing.T) {
	f := newServerFixture(t)
	good := f.ca.clientCert(t, "alice")
	foreign := newTestCA(t, "foreign CA").clientCert(t, "mallory")

	for _, tc := range []struct {
		mode, minVersion string
		useCA            bool
		noCert, goodCert bool // handshake succeeds?
		foreignCert      bool
	}{
		{mode: "none", noCert: true, goodCert: true, foreignCert: true},
		{mode: "", noCert: true, goodCert: true, foreignCert: true},
		{mode: "optional", useCA: true, noCert: true, goodCert: true},
		{mode: "require", useCA: true, goodCert: true},
		{mode: "", useCA: true, goodCert: true}, // CA set: require
		{mode: "require", minVersion: "1.3", useCA: true, goodCert: true},
	} {
		name := fmt.Sprintf("auth=%q,ca=%v,min=%q", tc.mode, tc.useCA, tc.minVersion)
		t.Run(name, func(t *testing.T) {
			opts := ServerOptions{CertFile: f.certFile, KeyFile: f.keyFile, ClientAuth: tc.mode, MinVersion: tc.minVersion}
			if tc.useCA {
				opts.ClientCAFile = f.caFile
			}
			srv, err := NewServer(opts)
			if err != nil {
				t.Fatal(err)
			}
			ts := startTLSServer(t, srv.TLSConfig())
			for _, c := range []struct {
				what string
				cert *tls.Certificate
				ok   bool
			}{
				{"no client cert", nil, tc.noCert},
				{"client cert from the client CA", &good, tc.goodCert},
				{"client cert from another CA", &foreign, tc.foreignCert},
			} {
				_, res, err := ts.dial(t, f.clientConf(t, c.cert))
				if c.ok && (err != nil || res.err != nil) {
					t.Errorf("%s: refused: client %v, server %v", c.what, err, res.err)
				}
				if !c.ok && (err == nil || res.err == nil) {
					t.Errorf("%s: accepted, want refused at handshake (client %v, server %v)", c.what, err, res.err)
				}
				if c.ok && tc.useCA && c.cert != nil && (len(res.peers) == 0 || res.peers[0].Subject.CommonName != "alice") {
					t.Errorf("%s: server did not see the client certificate", c.what)
				}
			}
		})
	}
}

func TestNewServerErrors(t *testing.T) {
	f := newServerFixture(t)
	for _, tc := range []struct {
		opts ServerOptions
		want string
	}{
		{ServerOptions{CertFile: f.certFile, KeyFile: f.keyFile, ClientAuth: "require"}, "needs a client CA file"},
		{ServerOptions{CertFile: f.certFile, KeyFile: f.keyFile, ClientAuth: "none", ClientCAFile: f.caFile}, f.caFile},
		{ServerOptions{CertFile: f.certFile, KeyFile: f.keyFile, ClientAuth: "sometimes"}, `"sometimes"`},
		{ServerOptions{CertFile: f.certFile, KeyFile: f.keyFile, MinVersion: "1.1"}, `"1.1"`},
		{ServerOptions{CertFile: f.certFile, KeyFile: f.certFile}, f.certFile},
		{ServerOptions{CertFile: f.certFile, KeyFile: f.keyFile, ClientCAFile: f.keyFile}, f.keyFile},
	} {
		if _, err := NewServer(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewServer(%+v) = %v, want error containing %q", tc.opts, err, tc.want)
		}
	}
}

func TestServerReload(t *testing.T) {
	f := newServerFixture(t)
	srv, err := NewServer(ServerOptions{CertFile: f.certFile, KeyFile: f.keyFile, ClientCAFile: f.caFile})
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.Files(); len(got) != 3 {
		t.Fatalf("Files() = %v", got)
	}
	ts := startTLSServer(t, srv.TLSConfig())
	client := f.ca.clientCert(t, "alice")

	before, _, err := ts.dial(t, f.clientConf(t, &client))
	if err != nil {
		t.Fatal(err)
	}
	oldSerial := serial(t, f.serverCertPEM)
	if got := before.ConnectionState().PeerCertificates[0].SerialNumber.String(); got != oldSerial {
		t.Fatalf("first handshake served serial %s, want %s", got, oldSerial)
	}

	// Rotate: a new certificate with a later expiry, installed by rename.
	newCert, newKey := f.ca.leaf(t, LeafSpec{CommonName: "proxy", Hosts: []string{"localhost"}, NotAfter: time.Now().Add(72 * time.Hour)})
	replaceFile(t, f.keyFile, newKey)
	replaceFile(t, f.certFile, newCert)
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	after, _, err := ts.dial(t, f.clientConf(t, &client))
	if err != nil {
		t.Fatal(err)
	}
	newSerial := serial(t, newCert)
	if got := after.ConnectionState().PeerCertificates[0].SerialNumber.String(); got != newSerial {
		t.Fatalf("handshake after reload served serial %s, want new %s", got, newSerial)
	}
	if err := echo(before, "still here"); err != nil {
		t.Fatalf("connection opened before the reload broke: %v", err)
	}
	if time.Until(srv.NotAfter()) < 48*time.Hour {
		t.Fatalf("NotAfter %v is not the new certificate's", srv.NotAfter())
	}

	// A broken certificate is refused and the last good one stays in service.
	replaceFile(t, f.certFile, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	err = srv.Reload()
	if err == nil || !strings.Contains(err.Error(), f.certFile) {
		t.Fatalf("Reload with a broken certificate = %v, want error naming %s", err, f.certFile)
	}
	third, _, err := ts.dial(t, f.clientConf(t, &client))
	if err != nil {
		t.Fatal(err)
	}
	if got := third.ConnectionState().PeerCertificates[0].SerialNumber.String(); got != newSerial {
		t.Fatalf("after a failed reload served serial %s, want last good %s", got, newSerial)
	}

	// Client CA rotation: only clients of the new CA are accepted.
	newCA := newTestCA(t, "new client CA")
	replaceFile(t, f.certFile, newCert)
	replaceFile(t, f.caFile, newCA.cert)
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ts.dial(t, f.clientConf(t, &client)); err == nil {
		t.Fatal("client of the old CA accepted after the CA rotation")
	}
	newClient := newCA.clientCert(t, "bob")
	if _, _, err := ts.dial(t, f.clientConf(t, &newClient)); err != nil {
		t.Fatalf("client of the new CA refused: %v", err)
	}
}

func TestBackendClient(t *testing.T) {
	f := newServerFixture(t)
	srv, err := NewServer(ServerOptions{CertFile: f.certFile, KeyFile: f.keyFile, ClientCAFile: f.caFile, ClientAuth: "require"})
	if err != nil {
		t.Fatal(err)
	}
	ts := startTLSServer(t, srv.TLSConfig())
	dir := t.TempDir()
	cliCert, cliKey := f.ca.leaf(t, LeafSpec{CommonName: "authproxy", Client: true})
	certFile, keyFile := writePair(t, dir, "client", cliCert, cliKey)
	caFile := writeFile(t, dir, "backend-ca.pem", f.ca.cert)

	c, err := NewClient(ClientOptions{CAFile: caFile, ServerName: "127.0.0.1", CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, res, err := ts.dial(t, c.TLSConfig()); err != nil || res.peers[0].Subject.CommonName != "authproxy" {
		t.Fatalf("mTLS to backend: %v (server saw %v)", err, res.peers)
	}

	// Name checks are not skipped although InsecureSkipVerify is set inside.
	wrongName, err := NewClient(ClientOptions{CAFile: caFile, ServerName: "milvus.example", CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ts.dial(t, wrongName.TLSConfig()); err == nil || !strings.Contains(err.Error(), "milvus.example") {
		t.Fatalf("wrong server name: %v", err)
	}
	noName, err := NewClient(ClientOptions{CAFile: caFile, CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ts.dial(t, noName.TLSConfig()); err == nil || !strings.Contains(err.Error(), "no server name") {
		t.Fatalf("IP target without server name: %v", err)
	}

	// CA reload: the backend moves to a new CA; the same tls.Config follows
	// after Reload (as a long-lived grpc.ClientConn would need).
	cfg := c.TLSConfig()
	newCA := newTestCA(t, "new backend CA")
	srvCert, srvKey := newCA.leaf(t, LeafSpec{CommonName: "proxy", Hosts: []string{"127.0.0.1"}})
	replaceFile(t, f.keyFile, srvKey)
	replaceFile(t, f.certFile, srvCert)
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ts.dial(t, cfg); err == nil {
		t.Fatal("backend with a certificate from an untrusted CA accepted")
	}
	replaceFile(t, caFile, newCA.cert)
	if err := c.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ts.dial(t, cfg); err != nil {
		t.Fatalf("after CA reload: %v", err)
	}

	// A broken file keeps the old material.
	replaceFile(t, caFile, []byte("garbage"))
	if err := c.Reload(); err == nil || !strings.Contains(err.Error(), caFile) {
		t.Fatalf("Reload with a broken CA file = %v", err)
	}
	if _, _, err := ts.dial(t, cfg); err != nil {
		t.Fatalf("after a failed reload: %v", err)
	}
	if _, err := NewClient(ClientOptions{CertFile: certFile}); err == nil {
		t.Fatal("certificate without key accepted")
	}
}
