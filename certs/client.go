package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// ClientOptions configures the TLS client side, towards the backend.
type ClientOptions struct {
	// CAFile verifies the backend's certificate; "" means the system roots.
	CAFile string
	// ServerName is the name verified in the backend's certificate (a DNS
	// name or an IP address). "" means the name dialled; it is required when
	// dialling an IP address, which sends no SNI.
	ServerName string
	// CertFile and KeyFile are the proxy's client certificate, for backends
	// that require mTLS; both or neither.
	CertFile, KeyFile string
	// InsecureSkipVerify disables verification of the backend (tests only).
	InsecureSkipVerify bool
}

// Client holds the backend CA pool and client certificate and swaps them
// atomically on Reload.
type Client struct {
	opts ClientOptions

	reloadMu sync.Mutex
	current  atomic.Pointer[clientMaterial]
}

type clientMaterial struct {
	roots *x509.CertPool // nil: system roots
	cert  *tls.Certificate
}

// NewClient loads and validates all files now.
func NewClient(opts ClientOptions) (*Client, error) {
	if (opts.CertFile == "") != (opts.KeyFile == "") {
		return nil, errors.New("backend tls: client certificate and key files must be set together")
	}
	c := &Client{opts: opts}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// TLSConfig returns a config for tls.Dial or grpc credentials.NewTLS.
//
// Roots are checked in VerifyConnection against the pool current at each
// handshake, rather than through RootCAs, because a grpc.ClientConn clones
// its tls.Config once and reconnects with that clone for its whole life: a
// rebuilt config would never reach it. InsecureSkipVerify is therefore set on
// the returned config, and VerifyConnection does the full chain and name
// verification (it also runs on resumed sessions).
func (c *Client) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.opts.ServerName,
		InsecureSkipVerify: true, // verified in VerifyConnection, see above
		VerifyConnection:   c.verifyConnection,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if cert := c.current.Load().cert; cert != nil {
				return cert, nil
			}
			return &tls.Certificate{}, nil // no certificate to send
		},
	}
}

func (c *Client) verifyConnection(cs tls.ConnectionState) error {
	if c.opts.InsecureSkipVerify {
		return nil
	}
	if len(cs.PeerCertificates) == 0 {
		return errors.New("backend tls: server sent no certificate")
	}
	name := c.opts.ServerName
	if name == "" {
		name = cs.ServerName
	}
	if name == "" {
		// Without a name any certificate from the CA would pass.
		return errors.New("backend tls: no server name to verify (dialling an IP address sends none): set the backend TLS server name")
	}
	opts := x509.VerifyOptions{
		Roots:         c.current.Load().roots,
		DNSName:       name,
		Intermediates: x509.NewCertPool(),
	}
	for _, ic := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(ic)
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return fmt.Errorf("backend tls: verify server certificate: %w", err)
	}
	return nil
}

// Reload re-reads every file; on any error the material in service is kept.
func (c *Client) Reload() error {
	c.reloadMu.Lock()
	defer c.reloadMu.Unlock()
	m := &clientMaterial{}
	var err error
	if c.opts.CAFile != "" {
		if m.roots, err = LoadCAPool(c.opts.CAFile); err != nil {
			return err
		}
	}
	if c.opts.CertFile != "" {
		if m.cert, err = LoadKeyPair(c.opts.CertFile, c.opts.KeyFile); err != nil {
			return err
		}
	}
	c.current.Store(m)
	return nil
}

// Files lists the files Reload reads, for a watcher.
func (c *Client) Files() []string {
	return nonEmpty(c.opts.CAFile, c.opts.CertFile, c.opts.KeyFile)
}
