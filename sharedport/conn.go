package sharedport

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/soheilhy/cmux"
	"golang.org/x/net/http2"
)

// answeredConn hands a sniffed HTTP/2 connection to its server (gRPC or
// REST) without answers twice: the sniffer acknowledged the client's
// SETTINGS and PINGs before the first request, and sent SETTINGS (REST's).
//
// Reading, it gives the server what the sniffer read (the preface and the
// frames up to the first HEADERS, at most maxSniffBytes) with the PINGs
// taken out and the SETTINGS frames merged into one, right after the
// preface: servers may acknowledge several SETTINGS with one ACK (Go's
// does), and that one is then known to be the ACK to drop. Merging keeps
// each parameter's last value, as RFC 9113 §6.5.3 reads them in order
// (Go's HTTP/2 server would end a connection whose SETTINGS frame repeats
// a parameter: x/net http2 processSettings). Before the first request no
// stream exists, so moving the SETTINGS before the other frames changes
// nothing.
//
// Writing, it drops the server's first ACK and, when the sniffer's SETTINGS
// were this server's own (spokeForServer: REST), the server's first
// SETTINGS frame: the client's ACK of the sniffer's acknowledges it. The
// first request reaches the server only once that ACK is written: a server
// that acknowledges SETTINGS read together with one ACK (Go's) would
// otherwise fold the ACK of the client's next SETTINGS into the one dropped.
// Past those, bytes pass through unparsed both ways.
type answeredConn struct {
	net.Conn
	spokeForServer bool

	started bool   // the read side: the start is rebuilt
	pending []byte // the rebuilt start still to hand out
	request []byte // then the first HEADERS frame's header, once acked

	mu       sync.Mutex    // the write side
	acked    chan struct{} // closed when the server's ACK is dropped
	ackGone  bool          // the server's ACK of the merged SETTINGS is dropped
	ownGone  bool          // the server's own SETTINGS frame went by (dropped for REST)
	out      frameCursor   // the server's frames
	plainOut atomic.Bool   // nothing more to drop
}

func (c *answeredConn) Read(p []byte) (int, error) {
	if !c.started {
		c.started = true
		if err := c.rebuildStart(); err != nil {
			return 0, err
		}
	}
	if len(c.pending) == 0 && c.request != nil {
		timer := time.NewTimer(SniffTimeout)
		select {
		case <-c.ackedChan():
		case <-timer.C: // a server that never acknowledges; go on
		}
		timer.Stop()
		c.pending, c.request = c.request, nil
	}
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// rebuildStart reads the preface and the frames before the first request's
// HEADERS (the sniffer checked them all) and sets pending to the preface,
// one SETTINGS frame and the other frames but the PINGs, and request to
// the HEADERS frame's header; its payload and what follows are read
// unparsed.
func (c *answeredConn) rebuildStart() error {
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c.Conn, preface); err != nil {
		return err
	}
	settings := make([]byte, 9) // the merged frame's header, then its parameters
	settings[3] = byte(http2.FrameSettings)
	var others []byte
	for {
		hdr := make([]byte, 9) // length(3) type(1) flags(1) stream(4)
		if _, err := io.ReadFull(c.Conn, hdr); err != nil {
			return err
		}
		typ, ack := http2.FrameType(hdr[3]), http2.Flags(hdr[4]).Has(http2.FlagSettingsAck) // PING's ACK is the same bit
		if typ == http2.FrameHeaders {
			n := len(settings) - 9
			settings[0], settings[1], settings[2] = byte(n>>16), byte(n>>8), byte(n)
			c.pending, c.request = slices.Concat(preface, settings, others), hdr
			return nil
		}
		payload := make([]byte, int(hdr[0])<<16|int(hdr[1])<<8|int(hdr[2]))
		if _, err := io.ReadFull(c.Conn, payload); err != nil {
			return err
		}
		switch {
		case typ == http2.FrameSettings && !ack:
			settings = mergeSettings(settings, payload)
		case typ == http2.FramePing && !ack:
			// answered by the sniffer
		default:
			others = slices.Concat(others, hdr, payload)
		}
	}
}

// mergeSettings adds the parameters of a SETTINGS payload to a SETTINGS
// frame, replacing the value of a parameter it has.
func mergeSettings(frame, payload []byte) []byte {
	for i := 0; i+6 <= len(payload); i += 6 {
		j := 9
		for j < len(frame) && !bytes.Equal(frame[j:j+2], payload[i:i+2]) {
			j += 6
		}
		if j == len(frame) {
			frame = append(frame, payload[i:i+6]...)
		} else {
			copy(frame[j+2:j+6], payload[i+2:i+6])
		}
	}
	return frame
}

// ackedChan is closed once the server's ACK of the merged SETTINGS is
// dropped.
func (c *answeredConn) ackedChan() chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ackedChanLocked()
}

func (c *answeredConn) ackedChanLocked() chan struct{} {
	if c.acked == nil {
		c.acked = make(chan struct{})
	}
	return c.acked
}

func (c *answeredConn) Write(p []byte) (int, error) {
	if c.plainOut.Load() {
		return c.Conn.Write(p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	kept := make([]byte, 0, len(p))
	c.out.walk(p, 0, c.keptLocked, func(b []byte) { kept = append(kept, b...) })
	// Plain once nothing is left to drop, and no header or dropped payload
	// is half written.
	c.plainOut.Store(c.ackGone && (c.ownGone || !c.spokeForServer) &&
		c.out.have == 0 && (c.out.skip == 0 || !c.out.dropping))
	if _, err := c.Conn.Write(kept); err != nil {
		return 0, err
	}
	return len(p), nil
}

// keptLocked reports whether the server's frame with header h goes to the
// client: not if the sniffer answered for it already.
func (c *answeredConn) keptLocked(h [9]byte) bool {
	if http2.FrameType(h[3]) != http2.FrameSettings {
		return true
	}
	if http2.Flags(h[4]).Has(http2.FlagSettingsAck) {
		if c.ackGone {
			return true
		}
		c.ackGone = true
		close(c.ackedChanLocked())
		return false
	}
	gone := c.ownGone
	c.ownGone = true
	return gone || !c.spokeForServer
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
		case *answeredConn:
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
