package server

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/soheilhy/cmux"

	"github.com/authproxy/authproxy/config"
	"github.com/authproxy/authproxy/rest"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
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
	grpcLis := m.MatchWithWriters(matchGRPC)
	h2Lis := m.Match(cmux.HTTP2())
	http1Lis := m.Match(cmux.Any())

	rest = withTLSState(rest)
	httpServer := &http.Server{
		Handler:           rest,
		ReadHeaderTimeout: 30 * time.Second,
		ConnContext:       contextWithTLSState,
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
			go h2.ServeConn(&settingsAckFilter{Conn: c}, &http2.ServeConnOpts{
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

// matchGRPC reports whether an HTTP/2 connection's first request has
// content-type application/grpc. It answers the client's SETTINGS with its
// own, because some gRPC clients (grpc-java) send no request headers before
// they see the server's SETTINGS. Unlike cmux's matcher, that frame already
// says NO_RFC7540_PRIORITIES=1, as the REST server's SETTINGS will: clients
// such as curl (nghttp2) refuse a later change of that setting.
func matchGRPC(w io.Writer, r io.Reader) bool {
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(r, preface); err != nil || string(preface) != http2.ClientPreface {
		return false
	}
	var matched, done bool
	framer := http2.NewFramer(w, r)
	headers := hpack.NewDecoder(4<<10, func(f hpack.HeaderField) {
		if f.Name == "content-type" {
			matched = strings.HasPrefix(f.Value, "application/grpc")
		}
	})
	for !done {
		f, err := framer.ReadFrame()
		if err != nil {
			return false
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if err := framer.WriteSettings(http2.Setting{ID: http2.SettingNoRFC7540Priorities, Val: 1}); err != nil {
					return false
				}
			}
		case *http2.HeadersFrame:
			if _, err := headers.Write(f.HeaderBlockFragment()); err != nil {
				return false
			}
			done = f.HeadersEnded()
		case *http2.ContinuationFrame:
			if _, err := headers.Write(f.HeaderBlockFragment()); err != nil {
				return false
			}
			done = f.HeadersEnded()
		}
	}
	return matched
}

// settingsAckFilter hides from the HTTP/2 REST server the client's ACK of
// the SETTINGS frame the gRPC matcher sent while sniffing: the server never
// sent that frame and would end the connection with PROTOCOL_ERROR. Frames
// are passed through unparsed after that one ACK.
type settingsAckFilter struct {
	net.Conn
	pending []byte // bytes to hand out next: the preface or a frame header
	body    int    // payload bytes of the current frame still to pass
	started bool   // the client preface has been read
	dropped bool   // the ACK is gone: plain pass-through from now on
}

func (c *settingsAckFilter) Read(p []byte) (int, error) {
	for {
		switch {
		case len(c.pending) > 0:
			n := copy(p, c.pending)
			c.pending = c.pending[n:]
			return n, nil
		case c.body > 0:
			n, err := c.Conn.Read(p[:min(len(p), c.body)])
			c.body -= n
			return n, err
		case c.dropped:
			return c.Conn.Read(p)
		case !c.started:
			preface := make([]byte, len(http2.ClientPreface))
			if _, err := io.ReadFull(c.Conn, preface); err != nil {
				return 0, err
			}
			c.pending, c.started = preface, true
		default:
			hdr := make([]byte, 9) // length(3) type(1) flags(1) stream(4)
			if _, err := io.ReadFull(c.Conn, hdr); err != nil {
				return 0, err
			}
			length := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
			if http2.FrameType(hdr[3]) == http2.FrameSettings && http2.Flags(hdr[4]).Has(http2.FlagSettingsAck) && length == 0 {
				c.dropped = true
				continue
			}
			c.pending, c.body = hdr, length
		}
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
	var backendTLS *tls.Config
	if s.backendTLS != nil {
		backendTLS = s.backendTLS.TLSConfig()
	}
	return rest.NewHandler(rest.Options{
		Authn:      s.authn,
		Users:      s.users,
		Backend:    backendURL,
		BackendTLS: backendTLS,
		Headers:    s.headers,
		Logger:     s.logger,
	})
}
