package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/authproxy/authproxy/config"
	"github.com/authproxy/authproxy/console"
)

// consoleServer is the web console on its own listener (console.listen).
type consoleServer struct {
	lis     net.Listener
	http    *http.Server
	handler *console.Console
}

// openConsole builds the console and opens its listener; nothing when
// console.listen is empty. Config validation has refused a plaintext
// console off loopback.
func (s *Server) openConsole(cfg *config.Config) error {
	cc := cfg.Console
	if cc.Listen == "" {
		return nil
	}
	lis, err := net.Listen("tcp", cc.Listen)
	if err != nil {
		return fmt.Errorf("console listen %s: %w", cc.Listen, err)
	}
	secure := s.tlsServer.Load() != nil
	if secure {
		lis = tls.NewListener(lis, s.consoleTLS())
	}
	var signIn *console.OpenIDSignIn
	if o := cc.OIDC; o != nil {
		caFile := ""
		for _, is := range cfg.Identities.OIDC.Issuers { // validated: it is there
			if is.Issuer == o.Issuer {
				caFile = is.CAFile
			}
		}
		tlsCfg, err := clientTLS(caFile, "")
		if err != nil {
			lis.Close()
			return fmt.Errorf("console.oidc: %w", err)
		}
		signIn = &console.OpenIDSignIn{Issuer: o.Issuer, ClientID: o.ClientID, RedirectURL: o.RedirectURL, Client: providerClient(tlsCfg)}
	}
	h := console.New(console.Options{
		Authn: s.authn, Users: s.users, Authz: s.authz, Store: s.store, Denials: s.failures.Denials,
		Gatherer: s.registry, Identities: func() config.Identities { return s.cfg.Load().Identities },
		Status: s.consoleStatus, Secure: secure, IdleTimeout: cc.IdleTimeout, MaxSessions: cc.MaxSessions,
		Logger: s.logger, OpenID: signIn,
	})
	s.console = &consoleServer{lis: lis, handler: h, http: &http.Server{
		Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
	}}
	return nil
}

// consoleTLS serves the proxy's certificates (reloaded as they are) but
// asks browsers for no client certificate: the console's sign-in is the
// user's own.
func (s *Server) consoleTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			inner, err := s.tlsServer.Load().TLSConfig().GetConfigForClient(hello)
			if err != nil {
				return nil, err
			}
			c := inner.Clone()
			c.ClientAuth, c.ClientCAs = tls.NoClientCert, nil
			c.NextProtos = []string{"h2", "http/1.1"}
			return c, nil
		},
	}
}

func (s *Server) consoleStatus() console.Status {
	cfg := s.cfg.Load()
	st := console.Status{
		Version: s.version(), Forwarding: cfg.Forwarding,
		Store: cfg.Credentials.Store, StaleSeconds: s.store.staleSeconds(),
	}
	if s.replicas != nil {
		for _, r := range s.replicas.Live() {
			st.Replicas = append(st.Replicas, console.Replica{Name: r.Name, Registered: r.Registered, Self: r.Self})
		}
	}
	return st
}

// serveConsole serves until shutdown; the chart samples until ctx ends.
func (s *Server) serveConsole(ctx context.Context, errc chan<- error) {
	if s.console == nil {
		return
	}
	go s.console.handler.Run(ctx)
	s.logger.Info("console serving", "listen", s.console.lis.Addr().String(), "tls", s.tlsServer.Load() != nil)
	go func() {
		if err := s.console.http.Serve(s.console.lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("console listener: %w", err)
		}
	}()
}

// ConsoleAddr is the console's address, nil when it is off.
func (s *Server) ConsoleAddr() net.Addr {
	if s.console == nil {
		return nil
	}
	return s.console.lis.Addr()
}

func (s *Server) closeConsole(ctx context.Context) {
	if s.console != nil && s.console.http.Shutdown(ctx) != nil {
		s.console.http.Close() // the grace period is over
	}
}
