package relay

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/soheilhy/cmux"
)

// closeLinger bounds how long a closed connection may take to write its
// backlog out (to a client that reads slowly) before it is dropped.
const closeLinger = 2 * time.Second

// maxBacklog bounds what a client connection's backlog holds before a
// write waits for the socket. Only the client's own reader gets there (its
// ACKs and refunds to a client that does not read): what other goroutines
// send a client waits in the streams' queues while the backlog is not
// empty (wconn.send).
const maxBacklog = 1 << 20

// nbConn is a client's TCP connection whose writes never wait for the
// socket: what the socket does not take at once is kept in a backlog that
// a goroutine, started then, writes out; the relay holds back the streams'
// frames meanwhile and sends them when the backlog is empty (onDrained).
// A backend connection's reader writes to many clients, and one client
// that does not read must not stall the others.
//
// It sits under TLS, so that the relay's writes of encrypted records do
// not wait either (see Relay.WrapConn). Its reads are sysConn's.
type nbConn struct {
	sysConn

	mu       sync.Mutex
	wmu      sync.Mutex // one Write at a time, in order
	room     *sync.Cond // a Write waiting for the backlog to shrink
	backlog  []byte
	waiting  atomic.Bool // backlog not empty
	draining bool
	closing  bool // closed with a backlog: drain closes it when done
	err      error
	// onDrained is called by the draining goroutine once the backlog is
	// empty again.
	onDrained atomic.Pointer[func()]

	// Under TLS (bufferReads), a busy connection's reads go through rd:
	// crypto/tls asks for a record at a time, and a read of the socket
	// each would cost a system call per 16 KiB. Only the connection's
	// reader touches these.
	bufferReads bool
	rd          *[]byte // from readPool while it holds something
	rr, rw      int
	busy        int // reads to go before an idle reader reads into the caller's buffer again
}

func newNBConn(c net.Conn) net.Conn {
	raw := rawOf(c)
	if raw == nil {
		return c
	}
	nb := &nbConn{sysConn: sysConn{Conn: c, raw: raw}}
	nb.room = sync.NewCond(&nb.mu)
	return nb
}

// tlsRecordMax is the longest TLS record on the wire: header, 2^14 bytes
// of plaintext and TLS 1.2's largest expansion (RFC 5246 §6.2.3; TLS 1.3
// allows less).
const tlsRecordMax = 5 + 16384 + 2048

func (c *nbConn) Read(p []byte) (int, error) {
	if !c.bufferReads {
		return c.sysConn.Read(p)
	}
	if c.rr == c.rw {
		if c.busy == 0 || len(p) >= readSize {
			// Idle, or a large read: into the caller's buffer, so that a
			// connection waiting for its client holds no buffer of ours.
			n, err := c.sysConn.Read(p)
			if n == len(p) {
				c.busy = busyReads // more may wait: read ahead from now on
			}
			return n, err
		}
		if c.rd == nil {
			c.rd = readPool.Get().(*[]byte)
		}
		n, err := c.sysConn.Read(*c.rd)
		if n >= smallRead {
			c.busy = busyReads
		} else {
			c.busy--
		}
		if n == 0 {
			c.releaseReads()
			return 0, err
		}
		c.rr, c.rw = 0, n
	}
	n := copy(p, (*c.rd)[c.rr:c.rw])
	if c.rr += n; c.rr == c.rw {
		c.releaseReads()
	}
	return n, nil
}

// releaseReads gives the read buffer back once it is consumed: an idle
// connection holds none.
func (c *nbConn) releaseReads() {
	c.rr, c.rw = 0, 0
	if c.rd != nil {
		readPool.Put(c.rd)
		c.rd = nil
	}
}

// holdsRecords says that two whole TLS records wait in the read buffer,
// so that crypto/tls's next Read, which takes one application data
// record (after at most a small post-handshake message), will not wait
// for the socket. The reader may then defer its flush (readBuf.ready).
func (c *nbConn) holdsRecords() bool { return c.rw-c.rr >= 2*tlsRecordMax }

func (c *nbConn) Write(p []byte) (int, error) {
	return c.writeBuffers([][]byte{p})
}

// writeBuffers writes bufs, in order, in one writev if the socket takes
// them; what it does not take goes to the backlog.
func (c *nbConn) writeBuffers(bufs [][]byte) (int, error) {
	total := 0
	for _, b := range bufs {
		total += len(b)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	for len(c.backlog) > maxBacklog && c.err == nil {
		c.room.Wait()
	}
	if c.closing {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	if c.err != nil || len(c.backlog) > 0 {
		err := c.err
		if err == nil {
			for _, b := range bufs {
				c.backlog = append(c.backlog, b...)
			}
		}
		c.mu.Unlock()
		if err != nil {
			return 0, err
		}
		return total, nil
	}
	c.mu.Unlock()
	n, err := c.tryWrite(bufs)
	if err != nil || n == total {
		return n, err
	}
	c.mu.Lock()
	for _, b := range consumed(bufs, n) {
		c.backlog = append(c.backlog, b...)
	}
	c.waiting.Store(true)
	if !c.draining {
		c.draining = true
		go c.drain()
	}
	c.mu.Unlock()
	return total, nil
}

// tryWrite writes what the socket takes now, without waiting.
func (c *nbConn) tryWrite(bufs [][]byte) (int, error) {
	var n int
	var werr error
	err := c.raw.Write(func(fd uintptr) bool {
		n, werr = writevNow(fd, bufs)
		if errors.Is(werr, syscall.EAGAIN) {
			werr = nil
		}
		return true
	})
	if err == nil {
		err = werr
	}
	return n, err
}

// drain writes the backlog out, waiting for the socket, then tells the
// relay there is room again.
func (c *nbConn) drain() {
	for {
		c.mu.Lock()
		buf := c.backlog
		if len(buf) == 0 || c.err != nil {
			c.backlog, c.draining = nil, false
			c.waiting.Store(false)
			c.room.Broadcast()
			failed, closing := c.err != nil, c.closing
			c.mu.Unlock()
			if closing {
				c.Conn.Close()
				return
			}
			if f := c.onDrained.Load(); f != nil && !failed {
				(*f)()
			}
			return
		}
		c.mu.Unlock()
		_, err := c.Conn.Write(buf)
		c.mu.Lock()
		// Writes meanwhile were appended behind buf.
		c.backlog = c.backlog[len(buf):]
		if err != nil {
			c.err = err
		}
		c.room.Broadcast()
		c.mu.Unlock()
	}
}

// Close closes the connection once its backlog is out, within
// closeLinger: what was written before Close (the end of a response, a
// GOAWAY, TLS's close_notify) still reaches a client that reads slowly.
// Reads end at once.
func (c *nbConn) Close() error {
	c.mu.Lock()
	if !c.draining || c.err != nil {
		c.mu.Unlock()
		return c.Conn.Close()
	}
	c.closing = true
	c.mu.Unlock()
	_ = c.Conn.SetReadDeadline(time.Now())
	return c.Conn.SetWriteDeadline(time.Now().Add(closeLinger))
}

// findNB finds the nbConn under the port's and TLS's wrappers (nil if the
// connection has none: its writes then wait for the socket).
func findNB(c net.Conn) *nbConn {
	for {
		switch w := c.(type) {
		case *nbConn:
			return w
		case *cmux.MuxConn:
			c = w.Conn
		case *tls.Conn:
			c = w.NetConn()
		default:
			return nil
		}
	}
}
