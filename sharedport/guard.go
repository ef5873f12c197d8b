package sharedport

import (
	"bytes"
	"encoding/binary"
	"net"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"github.com/authproxy/authproxy/edge"
)

// Rapid reset (CVE-2023-44487): grpc-go never ends a connection that
// resets streams as fast as it opens them, and neither does Go's HTTP/2
// server (golang.org/x/net/http2 v0.62.0, server.go scheduleHandler: it
// bounds the handlers running at once, advMaxStreams, and ends the
// connection only past 4×advMaxStreams handlers waiting to start; handlers
// that return at once, as a reset request's does, never queue, so a client
// could reset 164,000 REST streams in 5 s). The guard ends both, for every
// HTTP/2 connection of the grpc-go core, gRPC and REST, within edge's
// FrameBudget (the frame relay keeps the same budget itself).

// goAwayWait is how long a tripped connection waits for a frame boundary
// on its write side before it is closed without a GOAWAY.
const goAwayWait = time.Second

// guardListener wraps each HTTP/2 connection in a guardConn, over the
// answeredConn that hides what the sniffer answered; rest marks REST's
// listener (the sniffer sent REST's SETTINGS).
type guardListener struct {
	net.Listener
	rest bool
}

func (l *guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &guardConn{Conn: &answeredConn{Conn: c, spokeForServer: l.rest}, resets: edge.NewFrameBudget()}, nil
}

// guardConn follows the frames in both directions without changing them:
// it counts the client's RST_STREAM frames, and knows where the server's
// frames begin, so that a GOAWAY can be slipped in between two of them.
type guardConn struct {
	net.Conn
	in frameCursor // client to server, after the preface

	mu       sync.Mutex // the write side
	out      frameCursor
	resets   edge.FrameBudget
	lastID   uint32 // the highest stream the client opened
	tripped  bool
	finished bool
}

// frameCursor tracks frame boundaries in a byte stream.
type frameCursor struct {
	skip     int     // bytes left of the preface or of a payload
	header   [9]byte // a frame header being read
	have     int
	begun    bool
	dropping bool // the current frame is left out
}

// walk walks b and calls frame with each complete frame header; frame says
// whether the frame is kept. keep, if not nil, gets the bytes of the
// preface and of the kept frames, in order.
func (c *frameCursor) walk(b []byte, preface int, frame func(h [9]byte) bool, keep func([]byte)) {
	if !c.begun {
		c.begun, c.skip = true, preface
	}
	for len(b) > 0 {
		if c.skip > 0 {
			n := min(c.skip, len(b))
			if !c.dropping && keep != nil {
				keep(b[:n])
			}
			c.skip -= n
			b = b[n:]
			continue
		}
		n := copy(c.header[c.have:], b)
		c.have += n
		b = b[n:]
		if c.have == len(c.header) {
			c.have = 0
			c.skip = int(c.header[0])<<16 | int(c.header[1])<<8 | int(c.header[2])
			if c.dropping = !frame(c.header); !c.dropping && keep != nil {
				keep(c.header[:])
			}
		}
	}
}

func (c *frameCursor) atBoundary() bool { return c.skip == 0 && c.have == 0 }

func (g *guardConn) Read(p []byte) (int, error) {
	n, err := g.Conn.Read(p)
	var trip bool
	g.in.walk(p[:n], len(http2.ClientPreface), func(h [9]byte) bool {
		stream := binary.BigEndian.Uint32(h[5:]) & 0x7fffffff
		switch http2.FrameType(h[3]) {
		case http2.FrameHeaders:
			g.mu.Lock()
			g.lastID = max(g.lastID, stream)
			g.mu.Unlock()
		case http2.FrameRSTStream:
			trip = !g.resets.Spend(time.Now()) || trip
		}
		return true
	}, nil)
	if trip {
		g.trip()
	}
	return n, err
}

func (g *guardConn) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.finished {
		return 0, net.ErrClosed
	}
	n, err := g.Conn.Write(p)
	g.out.walk(p[:n], 0, func([9]byte) bool { return true }, nil)
	if g.tripped && g.out.atBoundary() {
		g.goAwayLocked()
	}
	return n, err
}

// trip ends the connection with GOAWAY ENHANCE_YOUR_CALM: now if the
// server's output is between frames, else at its next frame boundary, and
// after goAwayWait in any case.
func (g *guardConn) trip() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.tripped {
		return
	}
	g.tripped = true
	if g.out.atBoundary() {
		g.goAwayLocked()
		return
	}
	time.AfterFunc(goAwayWait, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if !g.finished {
			g.finished = true
			g.Conn.Close()
		}
	})
}

func (g *guardConn) goAwayLocked() {
	if g.finished {
		return
	}
	var buf bytes.Buffer
	_ = http2.NewFramer(&buf, nil).WriteGoAway(g.lastID, http2.ErrCodeEnhanceYourCalm, []byte("too many stream resets"))
	_, _ = g.Conn.Write(buf.Bytes())
	g.finished = true
	g.Conn.Close()
}
