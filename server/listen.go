package server

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/soheilhy/cmux"

	"github.com/authproxy/authproxy/config"
	"github.com/authproxy/authproxy/rest"
	"golang.org/x/net/http2"
)

// sniffTimeout bounds how long a new connection may take to show what it
// speaks (TLS handshake included), so idle sockets cannot pile up.
const sniffTimeout = 10 * time.Second

// serveShared serves gRPC and REST on one port, as Milvus does on 19530,
// and also under TLS (which Milvus cannot): an HTTP/2 connection whose
// first request has content-type application/grpc goes to the gRPC server,
// any other HTTP/2 connection and every HTTP/1.1 one to the REST handler.
func (s *Server) serveShared(lis net.Listener, rest http.Handler, errc chan<- error) (stop func()) {
	if s.tlsServer.Load() != nil {
		lis = tls.NewListener(lis, &tls.Config{GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			return s.tlsServer.Load().TLSConfig().GetConfigForClient(hello)
		}})
	}
	m := cmux.New(lis)
	m.SetReadTimeout(sniffTimeout)
	// SendSettings: some gRPC clients wait for the server's SETTINGS frame
	// before they send the request headers the match needs.
	grpcLis := m.MatchWithWriters(cmux.HTTP2MatchHeaderFieldPrefixSendSettings("content-type", "application/grpc"))
	h2Lis := m.Match(cmux.HTTP2())
	http1Lis := m.Match(cmux.Any())

	rest = withTLSState(rest)
	httpServer := &http.Server{
		Handler:           rest,
		ReadHeaderTimeout: 30 * time.Second,
		ConnContext:       contextWithTLSState,
		ErrorLog:          nil,
	}
	h2 := &http2.Server{}
	go func() {
		if err := s.grpcServer.Serve(grpcLis); err != nil && !errors.Is(err, cmux.ErrServerClosed) && !errors.Is(err, cmux.ErrListenerClosed) {
			errc <- err
		}
	}()
	go func() { _ = httpServer.Serve(http1Lis) }()
	go func() {
		for {
			c, err := h2Lis.Accept()
			if err != nil {
				return
			}
			go h2.ServeConn(c, &http2.ServeConnOpts{
				Context:    contextWithTLSState(context.Background(), c),
				BaseConfig: httpServer,
				Handler:    rest,
			})
		}
	}()
	go func() {
		if err := m.Serve(); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, cmux.ErrListenerClosed) {
			errc <- err
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = httpServer.Shutdown(ctx)
		m.Close()
	}
}

type tlsStateKey struct{}

// unwrapTLS finds the TLS connection under cmux's wrapper.
func unwrapTLS(c net.Conn) (*tls.Conn, bool) {
	if mc, ok := c.(*cmux.MuxConn); ok {
		c = mc.Conn
	}
	tc, ok := c.(*tls.Conn)
	return tc, ok
}

// contextWithTLSState keeps the connection's TLS state, which net/http
// cannot see through cmux's wrapper, for withTLSState.
func contextWithTLSState(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := unwrapTLS(c); ok {
		st := tc.ConnectionState()
		return context.WithValue(ctx, tlsStateKey{}, &st)
	}
	return ctx
}

// withTLSState restores r.TLS, so REST sees client certificates as gRPC does.
func withTLSState(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if st, ok := r.Context().Value(tlsStateKey{}).(*tls.ConnectionState); ok && r.TLS == nil {
			r.TLS = st
		}
		h.ServeHTTP(w, r)
	})
}

// restHandler answers the Milvus RESTful API v2: users here, the rest
// forwarded to the backend's REST endpoint.
func (s *Server) restHandler(cfg *config.Config) http.Handler {
	base := cfg.Backend.REST
	if base == "" {
		scheme := "http://"
		if s.backendTLS != nil {
			scheme = "https://"
		}
		base = scheme + cfg.Backend.Address
	}
	backendURL, _ := url.Parse(base) // validated with the config
	var transport http.RoundTripper
	if s.backendTLS != nil {
		transport = &http.Transport{
			Proxy:               nil,
			TLSClientConfig:     s.backendTLS.TLSConfig(),
			TLSHandshakeTimeout: 10 * time.Second,
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 64,
		}
	}
	return rest.NewHandler(rest.Options{
		Authn:            s.authn,
		Users:            s.users,
		Backend:          backendURL,
		BackendTransport: transport,
		IdentityHeader:   s.director.IdentityHeader,
		Logger:           s.logger,
	})
}
