// Package relay forwards gRPC calls at the HTTP/2 frame level: the reader
// of a client connection writes each forwarded stream's frames straight
// onto a backend connection, and the backend connection's reader writes
// the answers straight back. Messages are never parsed on the way, except
// the leading fields of the first request message of a call the
// authorizer must read (prefix.go), and the reply of a call whose list the
// caller may only partly see. Stream IDs are mapped, HEADERS re-encoded
// with the edge policy applied (owned keys removed, the identity added);
// DATA, trailers, RST_STREAM and compressed messages pass unchanged. Flow
// control is honoured and enforced on both sides, so what a stream holds
// is bounded by the window the relay advertises (but for a first message
// the authorizer must read whole: compressed, or its fields out of order,
// up to the message size limit), and writes to a client
// never wait for its socket (nbConn), so one client that does not read
// stalls no other.
//
// Calls the proxy answers itself go the same way to the in-process gRPC
// server, over an in-memory connection (Local); and requests that are not
// gRPC to the REST server the port gives it, over an in-memory connection
// per client connection, so that REST sees the client's address and TLS
// state. The relay takes every HTTP/2 connection of the port, so it is the
// HTTP/2 server clients face: it keeps the protocol's stream states and
// bounds what a connection may cost.
//
// The relay is selected with `forwarding: frames`; the grpc-go path stays
// the default until this one has won every benchmark.
package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/authproxy/authproxy/admission"
	"github.com/authproxy/authproxy/auth"
	"github.com/authproxy/authproxy/edge"
)

// Windows and limits the relay advertises on both sides.
const (
	// What one stream may hold in each direction, and the connection
	// window, refunded on receipt (edge says why).
	streamWindow = edge.StreamWindow
	connWindow   = edge.ConnWindow
	// The bounds both cores put on a client connection (edge).
	maxConcurrentStreams = edge.MaxConcurrentStreams
	maxHeaderListSize    = edge.MaxHeaderListSize
	// frameSize is the DATA frame size used toward a peer that accepts more.
	frameSize = 16 << 10
	// maxFrameLen is the largest frame HTTP/2 can carry (RFC 9113 §4.1),
	// the framer's default limit: the backend's frames are read up to it.
	maxFrameLen = 1<<24 - 1
)

// Options configure a Relay.
type Options struct {
	// Backend is the backend's host:port; BackendTLS, if set, speaks TLS to it.
	Backend    string
	BackendTLS *tls.Config
	// Admitter takes each call through the admission step: on its
	// HEADERS, and on the leading fields of its first request message when
	// the decision reads them (see decisionPrefix). It says which methods
	// the in-process server answers (Local) and builds the header lists.
	Admitter *admission.Admitter
	// LocalListener is where the relay connects for them; the in-process
	// gRPC server serves it.
	LocalListener *PipeListener
	// TLSState finds a client connection's TLS state (nil: plaintext).
	TLSState func(net.Conn) *tls.ConnectionState
	// MaxRecvMsgSize bounds every request message (and a first one the
	// authorizer reads whole), MaxSendMsgSize every reply message, as
	// grpc.maxRecvMsgSize and maxSendMsgSize bound the grpc-go core's.
	MaxRecvMsgSize int
	MaxSendMsgSize int
	// Observe counts a finished call.
	Observe func(ctx context.Context, method string, who *auth.Identity, start time.Time, code codes.Code)
	Logger  *slog.Logger
}

// Relay serves client connections.
type Relay struct {
	opts    Options
	backend *upstream
	local   *upstream

	// rest starts serving REST over HTTP/2 on an in-memory connection (see
	// ServeHTTP2).
	rest func(conn, client net.Conn)

	mu     sync.Mutex
	conns  map[*clientConn]struct{}
	closed bool
}

// New returns a Relay; backend connections are dialled on first use.
func New(opts Options) *Relay {
	r := &Relay{opts: opts, conns: map[*clientConn]struct{}{}}
	r.backend = &upstream{name: opts.Backend, dial: func(ctx context.Context) (net.Conn, error) {
		d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
		c, err := d.DialContext(ctx, "tcp", opts.Backend)
		if err != nil {
			return nil, err
		}
		c = newSysConn(c)
		if opts.BackendTLS == nil {
			return c, nil
		}
		cfg := opts.BackendTLS.Clone()
		cfg.NextProtos = []string{"h2"}
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, err
		}
		return tc, nil
	}}
	r.local = &upstream{name: "in-process server", dial: func(context.Context) (net.Conn, error) {
		return opts.LocalListener.Dial()
	}}
	return r
}

// WrapConn wraps a connection the port accepted, under TLS if any, so
// that the relay's writes to it never wait for its socket (nbConn).
func (r *Relay) WrapConn(c net.Conn) net.Conn { return newNBConn(c) }

// ServeHTTP2 accepts client connections on lis until it is closed; streams
// that are not gRPC go to rest, over an in-memory connection per client
// connection.
func (r *Relay) ServeHTTP2(lis net.Listener, rest func(conn, client net.Conn)) error {
	r.rest = rest
	for {
		c, err := lis.Accept()
		if err != nil {
			return err
		}
		go r.serveConn(c)
	}
}

func (r *Relay) serveConn(c net.Conn) {
	cc := newClientConn(r, c)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		c.Close()
		return
	}
	r.conns[cc] = struct{}{}
	r.mu.Unlock()
	end := func() {
		cc.teardown()
		r.mu.Lock()
		delete(r.conns, cc)
		r.mu.Unlock()
	}
	if !cc.start() {
		end()
		return
	}
	cc.serve(end)
}

// GracefulStop sends GOAWAY to every client, waits until their calls end
// or ctx does, then closes everything.
func (r *Relay) GracefulStop(ctx context.Context) {
	r.mu.Lock()
	r.closed = true
	conns := make([]*clientConn, 0, len(r.conns))
	for cc := range r.conns {
		conns = append(conns, cc)
	}
	r.mu.Unlock()
	for _, cc := range conns {
		cc.goAway()
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		r.mu.Lock()
		n := len(r.conns)
		r.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-ctx.Done():
			r.Stop()
			return
		case <-tick.C:
		}
	}
	r.backend.close()
	r.local.close()
}

// Stop closes every connection at once.
func (r *Relay) Stop() {
	r.mu.Lock()
	r.closed = true
	for cc := range r.conns {
		cc.conn.Close()
	}
	r.mu.Unlock()
	r.backend.close()
	r.local.close()
}

// PipeListener hands in-memory connections to the in-process gRPC server.
type PipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// NewPipeListener returns a listener for Dial's connections.
func NewPipeListener() *PipeListener {
	return &PipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

// PipeAddr is the address of both ends of a relay pipe: the in-process
// server reads the client's real address from the x-authproxy-peer
// metadata the relay sets (edge.PeerKey), and only on such connections.
type PipeAddr struct{}

func (PipeAddr) Network() string { return edge.RelayNetwork }
func (PipeAddr) String() string  { return edge.RelayNetwork }

// pipeConn is one end of an in-memory connection, with the addresses its
// server is to see.
type pipeConn struct {
	net.Conn
	local, remote net.Addr
}

func (c pipeConn) LocalAddr() net.Addr  { return c.local }
func (c pipeConn) RemoteAddr() net.Addr { return c.remote }

// Dial connects to the server that serves the listener.
func (l *PipeListener) Dial() (net.Conn, error) {
	a, b := net.Pipe()
	select {
	case l.conns <- pipeConn{b, PipeAddr{}, PipeAddr{}}:
		return pipeConn{a, PipeAddr{}, PipeAddr{}}, nil
	case <-l.done:
		return nil, errors.New("in-process server stopped")
	}
}

func (l *PipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *PipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *PipeListener) Addr() net.Addr { return PipeAddr{} }

// observe counts a finished call once; REST counts its own.
func (r *Relay) observe(s *stream, code codes.Code) {
	if r.opts.Observe != nil && !s.rest && legal(s.transition(evCount)) {
		r.opts.Observe(s.cc.ctx, s.method, s.who, s.start, code)
	}
}
