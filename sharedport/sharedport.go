// Package sharedport serves gRPC and REST on one port, as Milvus does on
// 19530, and also under TLS (which Milvus cannot).
//
// With a gRPC server (the grpc-go core), an HTTP/2 connection whose first
// request has content-type application/grpc goes to the gRPC server, any
// other HTTP/2 connection and every HTTP/1.1 one to the REST handler; the
// port owns what a connection may do before it is known (how long it may
// stay silent, how much it may send while it is sniffed, answered as an
// HTTP/2 server answers) and how fast it may reset streams.
//
// With an HTTP2Server (the frame relay), every HTTP/2 connection goes to
// it from its preface on, and it hands the streams that are not gRPC back
// to REST over an in-memory connection; it owns the connection's bounds
// itself. HTTP/1.1 goes to REST in both cases, what is neither is closed,
// and the port drains REST at shutdown.
package sharedport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
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
	// gRPC cores advertise their own (edge.MaxConcurrentStreams).
	MaxConcurrentStreams = 250
	// IdleTimeout closes a REST connection with no request for this long.
	IdleTimeout = 2 * time.Minute
)

// GRPCServer is what serves the gRPC connections (a *grpc.Server).
type GRPCServer interface {
	Serve(net.Listener) error
}

// HTTP2Server serves every HTTP/2 connection itself (the frame relay).
// It hands the streams that are not gRPC to REST by calling rest (which
// returns at once) with one end of an in-memory HTTP/2 connection, and the client connection they
// came on (whose addresses and TLS state REST then sees). WrapConn wraps
// each accepted connection, under TLS and the mux.
type HTTP2Server interface {
	ServeHTTP2(lis net.Listener, rest func(conn, client net.Conn)) error
	WrapConn(net.Conn) net.Conn
}

// Options configure a Port.
type Options struct {
	// TLS returns the config for a new connection; nil serves plaintext.
	TLS func() *tls.Config
	// GRPC serves connections whose first request is gRPC; or HTTP2 serves
	// every HTTP/2 connection. One of the two is set.
	GRPC  GRPCServer
	HTTP2 HTTP2Server
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
	rest   http.Handler
	logger *slog.Logger
}

// restSettings are the SETTINGS the REST server sends first, read from it
// over an in-memory connection: the sniffer sends them in its place.
func (p *Port) restSettings() ([]http2.Setting, error) {
	server, client := net.Pipe()
	defer client.Close()
	go p.h2.ServeConn(server, &http2.ServeConnOpts{BaseConfig: p.http, Handler: p.rest})
	_ = client.SetDeadline(time.Now().Add(SniffTimeout))
	f, err := http2.NewFramer(nil, client).ReadFrame()
	if err != nil {
		return nil, fmt.Errorf("the REST server's SETTINGS: %w", err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		return nil, fmt.Errorf("the REST server's first frame is %v, not SETTINGS", f.Header())
	}
	var settings []http2.Setting
	_ = sf.ForeachSetting(func(s http2.Setting) error {
		settings = append(settings, s)
		return nil
	})
	return settings, nil
}

// serveREST starts serving REST over HTTP/2 on conn, for a client
// connected on client (conn itself, or the relay's client connection);
// Shutdown waits for it.
func (p *Port) serveREST(conn, client net.Conn) {
	p.h2Conn.Add(1)
	go func() {
		defer p.h2Conn.Done()
		p.h2.ServeConn(conn, &http2.ServeConnOpts{
			Context:    contextWithTLSState(context.Background(), client),
			BaseConfig: p.http,
			Handler:    p.rest,
		})
	}()
}

// Serve starts serving lis; errors of the serving loops (not of single
// connections) go to errc.
func Serve(lis net.Listener, o Options, errc chan<- error) *Port {
	bl := &backoffListener{Listener: lis, logger: o.Logger}
	if o.HTTP2 != nil {
		bl.wrap = o.HTTP2.WrapConn
	}
	lis = bl
	if o.TLS != nil {
		lis = tls.NewListener(lis, &tls.Config{GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			return o.TLS().GetConfigForClient(hello)
		}})
	}
	rest := withTLSState(withBodyDeadline(o.REST))
	p := &Port{logger: o.Logger, rest: rest}
	p.http = &http.Server{
		Handler:           rest,
		ReadHeaderTimeout: SniffTimeout,
		IdleTimeout:       IdleTimeout,
		ConnContext:       contextWithTLSState,
	}
	// The sniffer sends REST's SETTINGS, which a client then holds for the
	// gRPC server too until that server's own arrive: so REST reads frames
	// of 16 KiB, the protocol's default, as grpc-go does, and its stream
	// window (Go's default, 1 MiB) is below the gRPC server's (4 MiB).
	p.h2 = &http2.Server{MaxConcurrentStreams: MaxConcurrentStreams, IdleTimeout: IdleTimeout, MaxReadFrameSize: 16 << 10}
	// Shutdown of the HTTP server now also sends GOAWAY to the HTTP/2
	// connections served below, and lets their streams finish.
	if err := http2.ConfigureServer(p.http, p.h2); err != nil {
		errc <- err
	}

	m := cmux.New(lis)
	p.mux = m
	m.SetReadTimeout(SniffTimeout)
	var grpcLis, sniffedBroken net.Listener
	if o.HTTP2 == nil {
		settings, err := p.restSettings()
		if err != nil {
			errc <- err
		}
		// The sniffer's verdicts come first: gRPC, or an HTTP/2
		// connection to close.
		grpcLis = m.MatchWithWriters(matchGRPC(settings))
		sniffedBroken = m.MatchWithWriters(matchBroken)
	}
	h2Lis := m.Match(cmux.HTTP2())
	http1Lis := m.Match(cmux.HTTP1())
	// What is neither HTTP/2 nor HTTP/1 (a preface that deviates, or
	// silence until the timeout) is closed, as an HTTP/2 server must.
	brokenLis := m.Match(cmux.Any())

	go func() { _ = p.http.Serve(http1Lis) }()
	go closeAll(brokenLis)
	if sniffedBroken != nil {
		go closeAll(sniffedBroken)
	}

	// The server of gRPC (or of every HTTP/2 connection, with the relay).
	serve := func() error { return o.HTTP2.ServeHTTP2(h2Lis, p.serveREST) }
	if o.HTTP2 == nil {
		serve = func() error { return o.GRPC.Serve(&guardListener{Listener: grpcLis}) }
		// REST over HTTP/2 is reset-guarded as gRPC is (see guard.go).
		restLis := &guardListener{Listener: h2Lis, rest: true}
		go func() {
			for {
				c, err := restLis.Accept()
				if err != nil {
					return
				}
				p.serveREST(c, c)
			}
		}()
	}
	go func() {
		if err := serve(); err != nil && !errors.Is(err, cmux.ErrServerClosed) && !errors.Is(err, cmux.ErrListenerClosed) {
			errc <- err
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

// closeAll closes every connection lis accepts, until it is closed.
func closeAll(lis net.Listener) {
	for {
		c, err := lis.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

// backoffListener waits before returning a temporary Accept error (out of
// file descriptors): cmux retries at once, which would spin a CPU. The wait
// doubles from 5 ms to 1 s, as net/http's does.
// It also wraps each connection with wrap, if set.
type backoffListener struct {
	net.Listener
	logger *slog.Logger
	delay  time.Duration
	wrap   func(net.Conn) net.Conn
}

func (l *backoffListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.delay = 0
		if l.wrap != nil {
			c = l.wrap(c)
		}
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
