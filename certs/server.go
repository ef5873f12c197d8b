package certs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Client authentication modes of ServerOptions.ClientAuth.
const (
	ClientAuthNone     = "none"
	ClientAuthOptional = "optional" // verify a client certificate if one is sent
	ClientAuthRequire  = "require"  // refuse handshakes without a verified client certificate
)

// ServerOptions configures the TLS server side of the proxy.
type ServerOptions struct {
	CertFile, KeyFile string
	// ClientCAFile is a PEM bundle of CAs that sign client certificates.
	ClientCAFile string
	// ClientAuth is "none", "optional" or "require"; "" means "require" if
	// ClientCAFile is set, else "none".
	ClientAuth string
	// MinVersion is "1.2" (default) or "1.3".
	MinVersion string
	// NextProtos are the ALPN protocols; default {"h2"}. They must be set
	// here: grpc's credentials.NewTLS appends "h2" to the outer config only,
	// which GetConfigForClient replaces for the handshake.
	NextProtos []string
}

// Server holds the server certificate and client CAs and swaps them
// atomically on Reload.
type Server struct {
	opts       ServerOptions
	clientAuth tls.ClientAuthType
	minVersion uint16

	reloadMu sync.Mutex                 // one Reload at a time
	current  atomic.Pointer[tls.Config] // what the next handshake uses
}

// NewServer loads and validates all files now.
func NewServer(opts ServerOptions) (*Server, error) {
	s := &Server{opts: opts}
	if len(s.opts.NextProtos) == 0 {
		s.opts.NextProtos = []string{"h2"}
	}
	var err error
	if s.minVersion, err = ParseMinVersion(opts.MinVersion); err != nil {
		return nil, err
	}
	if s.clientAuth, err = ParseClientAuth(opts.ClientAuth, opts.ClientCAFile); err != nil {
		return nil, err
	}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// ParseMinVersion reads a TLS minimum version, "1.2" (or "") or "1.3";
// config validation uses it too, so both refuse the same values.
func ParseMinVersion(v string) (uint16, error) {
	switch v {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	default:
		return 0, fmt.Errorf("tls min version %q: want \"1.2\" or \"1.3\"", v)
	}
}

// ParseClientAuth reads a client authentication mode with the client CA
// file it goes with; config validation uses it too: one rule, one place.
func ParseClientAuth(mode, caFile string) (tls.ClientAuthType, error) {
	if mode == "" {
		mode = ClientAuthNone
		if caFile != "" {
			mode = ClientAuthRequire
		}
	}
	switch mode {
	case ClientAuthNone:
		if caFile != "" {
			// A CA file that is silently ignored would look like mTLS.
			return 0, fmt.Errorf("client auth %q with client CA file %s: set client auth to %q or %q, or drop the CA file", mode, caFile, ClientAuthOptional, ClientAuthRequire)
		}
		return tls.NoClientCert, nil
	case ClientAuthOptional, ClientAuthRequire:
		if caFile == "" {
			return 0, fmt.Errorf("client auth %q needs a client CA file", mode)
		}
		if mode == ClientAuthOptional {
			return tls.VerifyClientCertIfGiven, nil
		}
		return tls.RequireAndVerifyClientCert, nil
	default:
		return 0, fmt.Errorf("client auth %q: want %q, %q or %q", mode, ClientAuthNone, ClientAuthOptional, ClientAuthRequire)
	}
}

// TLSConfig returns a config for tls.Listen or grpc credentials.NewTLS. Each
// new handshake uses the material current at that moment; established
// connections keep what they negotiated.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: s.minVersion,
		NextProtos: s.opts.NextProtos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.current.Load(), nil
		},
	}
}

// Reload re-reads every file. On any error the material in service is kept
// and the error names the file and the problem.
func (s *Server) Reload() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	cert, err := LoadKeyPair(s.opts.CertFile, s.opts.KeyFile)
	if err != nil {
		return err
	}
	var pool *x509.CertPool
	if s.opts.ClientCAFile != "" {
		if pool, err = LoadCAPool(s.opts.ClientCAFile); err != nil {
			return err
		}
	}
	s.current.Store(&tls.Config{
		Certificates: []tls.Certificate{*cert},
		ClientAuth:   s.clientAuth,
		ClientCAs:    pool,
		MinVersion:   s.minVersion,
		NextProtos:   s.opts.NextProtos,
	})
	return nil
}

// NotAfter is the expiry of the certificate in service.
func (s *Server) NotAfter() time.Time {
	return s.current.Load().Certificates[0].Leaf.NotAfter
}

// Files lists the files Reload reads, for a watcher.
func (s *Server) Files() []string {
	return nonEmpty(s.opts.CertFile, s.opts.KeyFile, s.opts.ClientCAFile)
}

func nonEmpty(files ...string) []string {
	var out []string
	for _, f := range files {
		if f != "" {
			out = append(out, f)
		}
	}
	return out
}
