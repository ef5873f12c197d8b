package sharedport

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"

	"github.com/soheilhy/cmux"
	"golang.org/x/net/http2"
)

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

// ConnectionState is the TLS state of a connection the port accepted, nil
// for plaintext.
func ConnectionState(c net.Conn) *tls.ConnectionState {
	if tc, ok := unwrapTLS(c); ok {
		st := tc.ConnectionState()
		return &st
	}
	return nil
}

// unwrapTLS finds the TLS connection under the port's wrappers.
func unwrapTLS(c net.Conn) (*tls.Conn, bool) {
	for {
		switch w := c.(type) {
		case *tls.Conn:
			return w, true
		case *cmux.MuxConn:
			c = w.Conn
		case *guardConn:
			c = w.Conn
		default:
			return nil, false
		}
	}
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
