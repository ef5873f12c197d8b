package certs

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

type testCA struct{ cert, key []byte }

func newTestCA(t *testing.T, cn string) testCA {
	t.Helper()
	c, k, err := GenerateCA(cn, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return testCA{c, k}
}

func (ca testCA) leaf(t *testing.T, spec LeafSpec) (certPEM, keyPEM []byte) {
	t.Helper()
	c, k, err := GenerateLeaf(ca.cert, ca.key, spec)
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

// clientCert returns a tls.Certificate for a client CN signed by ca.
func (ca testCA) clientCert(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	c, k := ca.leaf(t, LeafSpec{CommonName: cn, Client: true})
	pair, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

func (ca testCA) pool(t *testing.T) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(ca.cert) {
		t.Fatal("bad CA PEM")
	}
	return p
}

// replaceFile writes data next to path and renames it over path, as a
// deployment tool or editor would.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func serial(t *testing.T, certPEM []byte) string {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.String()
}

// tlsServer is a loopback TLS echo server that reports each server-side
// handshake result.
type tlsServer struct {
	addr       string
	handshakes chan handshakeResult
}

type handshakeResult struct {
	err   error
	peers []*x509.Certificate
}

func startTLSServer(t *testing.T, cfg *tls.Config) *tlsServer {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &tlsServer{addr: ln.Addr().String(), handshakes: make(chan handshakeResult, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
				err := tc.Handshake()
				s.handshakes <- handshakeResult{err, tc.ConnectionState().PeerCertificates}
				if err == nil {
					_, _ = io.Copy(tc, tc)
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return s
}

// dial connects, completes the handshake from both sides and checks with an
// echo round trip that the server accepted (under TLS 1.3 a refused client
// certificate only shows on the client's first read).
func (s *tlsServer) dial(t *testing.T, cfg *tls.Config) (*tls.Conn, handshakeResult, error) {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.addr, cfg)
	var res handshakeResult
	select {
	case res = <-s.handshakes:
	case <-time.After(5 * time.Second):
		if err == nil {
			t.Fatal("server saw no handshake")
		}
		return nil, res, err // refused before the server finished (e.g. client-side verify)
	}
	if err != nil {
		return nil, res, err
	}
	t.Cleanup(func() { conn.Close() })
	if err := echo(conn, "ping"); err != nil {
		return nil, res, err
	}
	return conn, res, nil
}

func echo(conn *tls.Conn, msg string) error {
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return errors.New("echo mismatch: " + string(buf))
	}
	return nil
}

// writePair writes a certificate and key into dir under name.pem/name.key.
func writePair(t *testing.T, dir, name string, certPEM, keyPEM []byte) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
