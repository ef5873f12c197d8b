package relay

import (
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// memPipe returns the two ends of an in-memory connection whose writes
// never wait (net.Pipe's do, until the peer reads: a test that writes to
// the relay while the relay writes to the backend would then stall
// both). Reads wait on a sync.Cond, which testing/synctest counts as
// durably blocked, so a bubble's clock moves on while the relay waits for
// a frame, and a test that waits for a frame the relay never sends ends
// as a deadlock instead of hanging. x/net/http2 tests its server over a
// connection of the same kind (netconn_test.go, synctestNetConn).
func memPipe() (a, b *memConn) {
	ab, ba := newMemBuf(), newMemBuf()
	return &memConn{in: ba, out: ab}, &memConn{in: ab, out: ba}
}

// memBuf is one direction of a memPipe.
type memBuf struct {
	mu       sync.Mutex
	cond     *sync.Cond
	buf      []byte
	closed   bool // the writer closed: reads drain, then EOF
	readDone bool // the reader closed: writes fail
	deadline time.Time
	timer    *time.Timer
	// writes counts the writes into buf, a writeBuffers as one; gathered
	// counts the writeBuffers of more than one buffer.
	writes, gathered int
}

func newMemBuf() *memBuf {
	b := &memBuf{}
	b.cond = sync.NewCond(&b.mu)
	return b
}

type memConn struct {
	in, out *memBuf
}

func (c *memConn) Read(p []byte) (int, error) {
	b := c.in
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.buf) == 0 {
		switch {
		case b.readDone:
			return 0, net.ErrClosed
		case b.closed:
			return 0, io.EOF
		case !b.deadline.IsZero() && !time.Now().Before(b.deadline):
			return 0, os.ErrDeadlineExceeded
		}
		b.cond.Wait()
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	return n, nil
}

func (c *memConn) Write(p []byte) (int, error) {
	b := c.out
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.readDone {
		return 0, net.ErrClosed
	}
	b.buf = append(b.buf, p...)
	b.writes++
	b.cond.Broadcast()
	return len(p), nil
}

// writeBuffers stands for a socket's writev (buffersWriter): the buffers
// arrive in one write.
func (c *memConn) writeBuffers(bufs [][]byte) (int, error) {
	b := c.out
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.readDone {
		return 0, net.ErrClosed
	}
	n := 0
	for _, p := range bufs {
		b.buf = append(b.buf, p...)
		n += len(p)
	}
	b.writes++
	if len(bufs) > 1 {
		b.gathered++
	}
	b.cond.Broadcast()
	return n, nil
}

// writeCounts returns how many writes, and gathered writes, this end has
// received from its peer.
func (c *memConn) writeCounts() (writes, gathered int) {
	c.in.mu.Lock()
	defer c.in.mu.Unlock()
	return c.in.writes, c.in.gathered
}

// Close ends both directions: the peer reads what was written, then EOF.
func (c *memConn) Close() error {
	for _, b := range []*memBuf{c.in, c.out} {
		b.mu.Lock()
		if b == c.in {
			b.readDone = true
		} else {
			b.closed = true
		}
		if b.timer != nil {
			b.timer.Stop()
		}
		b.cond.Broadcast()
		b.mu.Unlock()
	}
	return nil
}

// buffered is what the peer wrote that this end has not read.
func (c *memConn) buffered() int {
	c.in.mu.Lock()
	defer c.in.mu.Unlock()
	return len(c.in.buf)
}

func (c *memConn) SetReadDeadline(t time.Time) error {
	b := c.in
	b.mu.Lock()
	defer b.mu.Unlock()
	b.deadline = t
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	if !t.IsZero() {
		b.timer = time.AfterFunc(time.Until(t), func() {
			b.mu.Lock()
			b.cond.Broadcast()
			b.mu.Unlock()
		})
	}
	b.cond.Broadcast()
	return nil
}

func (c *memConn) SetDeadline(t time.Time) error    { return c.SetReadDeadline(t) }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }
func (c *memConn) LocalAddr() net.Addr              { return memAddr("relay") }
func (c *memConn) RemoteAddr() net.Addr             { return memAddr("192.0.2.1:5000") }

type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }
