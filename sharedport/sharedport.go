// Package sharedport serves gRPC and REST on one port, as Milvus does on
// 19530, and also under TLS (which Milvus cannot): an HTTP/2 connection
// whose first request has content-type application/grpc goes to the gRPC
// server, any other HTTP/2 connection and every HTTP/1.1 one to the REST
// handler. It owns what a connection may do before it is known: how long it
// may stay silent, how much it may send while it is sniffed, how fast it
// may reset streams, and how it is drained at shutdown.
package sharedport

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/soheilhy/cmux"
	"golang.org/x/net/http2"
)

// Bounds on connections; see the README's "Connections" section.
const (
	// SniffTimeout bounds the TLS handshake and the first request's headers
	// of a new connection; and REST's request headers.
	SniffTimeout = 10 * time.Second
	// MaxConcurrentStreams is advertised on HTTP/2 REST connections; the
	// gRPC server advertises its own (server.maxConcurrentStreams).
	MaxConcurrentStreams = 250
	// IdleTimeout closes a REST connection with no request for this long.
	IdleTimeout = 2 * time.Minute
)

// GRPCServer is what serves the gRPC connections (a *grpc.Server).
type GRPCServer interface {
	Serve(net.Listener) error
}

// Options configure a Port.
type Options struct {
	// TLS returns the config for a new connection; nil serves plaintext.
	TLS func() *tls.Config
	// GRPC serves connections whose first request is gRPC.
	GRPC GRPCServer
	// REST serves every other connection.
	REST   http.Handler
	Logger *slog.Logger
}

// Port is one shared listener being served.
type Port struct {
	mux    cmux.CMux
	http   *http.Server
	h2     *http2.Server
	h2Conn sync.WaitGroup // REST HTTP/2 connections being served
	logger *slog.Logger
}

// Serve starts serving lis; errors of the serving loops (not of single
// connections) go to errc.
func Serve(lis net.Listener, o Options, errc chan<- error) *Port {
	lis = &backoffListener{Listener: lis, logger: o.Logger}
	if o.TLS != nil {
		lis = tls.NewListener(lis, &tls.Config{GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			return o.TLS().GetConfigForClient(hello)
		}})
	}
	m := cmux.New(lis)
	m.SetReadTimeout(SniffTimeout)
	grpcLis := m.MatchWithWriters(matchGRPC)
	brokenLis := m.MatchWithWriters(matchBroken)
	h2Lis := m.Match(cmux.HTTP2())
	http1Lis := m.Match(cmux.Any())

	rest := withTLSState(withBodyDeadline(o.REST))
	p := &Port{mux: m, logger: o.Logger}
	p.http = &http.Server{
		Handler:           rest,
		ReadHeaderTimeout: SniffTimeout,
		IdleTimeout:       IdleTimeout,
		ConnContext:       contextWithTLSState,
	}
	p.h2 = &http2.Server{MaxConcurrentStreams: MaxConcurrentStreams, IdleTimeout: IdleTimeout}
	// Shutdown of the HTTP server now also sends GOAWAY to the HTTP/2
	// connections served below, and lets their streams finish.
	if err := http2.ConfigureServer(p.http, p.h2); err != nil {
		errc <- err
	}

	go func() {
		if err := o.GRPC.Serve(&guardListener{Listener: grpcLis}); err != nil && !errors.Is(err, cmux.ErrServerClosed) && !errors.Is(err, cmux.ErrListenerClosed) {
			errc <- err
		}
	}()
	go func() { _ = p.http.Serve(http1Lis) }()
	go func() {
		for {
			c, err := brokenLis.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	go func() {
		for {
			c, err := h2Lis.Accept()
			if err != nil {
				return
			}
			p.h2Conn.Add(1)
			go func() {
				defer p.h2Conn.Done()
				p.h2.ServeConn(&settingsAckFilter{Conn: c}, &http2.ServeConnOpts{
					Context:    contextWithTLSState(context.Background(), c),
					BaseConfig: p.http,
					Handler:    rest,
				})
			}()
		}
	}()
	go func() {
		if err := m.Serve(); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, cmux.ErrListenerClosed) {
			errc <- err
		}
	}()
	return p
}

// Shutdown stops accepting, lets REST requests in flight on HTTP/1 and
// HTTP/2 finish until ctx ends, then closes what is left. The gRPC server
// is drained by its own GracefulStop.
func (p *Port) Shutdown(ctx context.Context) {
	if err := p.http.Shutdown(ctx); err != nil {
		p.http.Close()
	}
	done := make(chan struct{})
	go func() { p.h2Conn.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	p.mux.Close()
}

// backoffListener waits before returning a temporary Accept error (out of
// file descriptors): cmux retries at once, which would spin a CPU. The wait
// doubles from 5 ms to 1 s, as net/http's does.
type backoffListener struct {
	net.Listener
	logger *slog.Logger
	delay  time.Duration
}

func (l *backoffListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.delay = 0
		return c, nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
		l.delay = min(max(2*l.delay, 5*time.Millisecond), time.Second)
		if l.logger != nil {
			l.logger.Warn("accept failed; retrying", "err", err, "retryIn", l.delay.String())
		}
		time.Sleep(l.delay)
	}
	return nil, err
}

// isTemporary is net/http's test for an accept error worth retrying.
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}
