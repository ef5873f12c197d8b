package relay

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"unsafe"
)

// sysConn reads and writes a TCP connection with raw system calls, which
// the runtime does not hear of: a read or a write on a non-blocking socket
// returns at once (EAGAIN waits on the poller, as the net package's would),
// so the scheduler need not hand the P off meanwhile. The net package's
// calls go through entersyscall, whose every first call after the process
// was idle wakes the runtime's monitor thread (sysmon) from its deep sleep;
// at one call at a time that was a thread wake-up, and 20 µs polling after
// it, on every call, taking CPU the backend and the client were waiting for.
type sysConn struct {
	net.Conn
	raw syscall.RawConn
}

// newSysConn wraps c if it is a socket; anything else is returned as is.
func newSysConn(c net.Conn) net.Conn {
	if raw := rawOf(c); raw != nil {
		return &sysConn{Conn: c, raw: raw}
	}
	return c
}

func rawOf(c net.Conn) syscall.RawConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

func (c *sysConn) Read(p []byte) (int, error) { return readRaw(c.raw, p) }

func (c *sysConn) Write(p []byte) (int, error) { return c.writeBuffers([][]byte{p}) }

// writeBuffers writes bufs in order with writev, waiting on the poller for
// room, and returns the bytes written.
func (c *sysConn) writeBuffers(bufs [][]byte) (int, error) {
	var n int
	var werr error
	err := c.raw.Write(func(fd uintptr) bool {
		m, err := writevNow(fd, bufs)
		n += m
		bufs = consumed(bufs, m)
		if errors.Is(err, syscall.EAGAIN) {
			return false // the poller waits for room
		}
		werr = err
		return true
	})
	if err == nil {
		err = werr
	}
	return n, err
}

// readRaw reads what the socket holds, waiting on the poller for it.
func readRaw(raw syscall.RawConn, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var rerr error
	err := raw.Read(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case 0:
				n = int(r)
				if n == 0 {
					rerr = io.EOF
				}
				return true
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false
			default:
				rerr = e
				return true
			}
		}
	})
	if err == nil {
		err = rerr
	}
	return n, err
}

// maxIovecs bounds the buffers one writev is given (Linux's IOV_MAX is
// 1024): what one flush gathers.
const maxIovecs = maxSegs

// iovecs holds the writev arguments, off the writer's stack: 1 KiB there
// would grow the stack of an idle connection's goroutine that answers a
// PING over TLS past 4 KiB, to 8.
var iovecs = sync.Pool{New: func() any { return new([maxIovecs]syscall.Iovec) }}

// writevNow writes bufs, in order, with as few writev calls as the socket
// allows, without waiting; EAGAIN says it took no more. It returns the
// bytes written.
func writevNow(fd uintptr, bufs [][]byte) (int, error) {
	iov := iovecs.Get().(*[maxIovecs]syscall.Iovec)
	n, err := writevWith(iov, fd, bufs)
	clear(iov[:]) // no buffer stays reachable from the pool
	iovecs.Put(iov)
	return n, err
}

func writevWith(iov *[maxIovecs]syscall.Iovec, fd uintptr, bufs [][]byte) (int, error) {
	n := 0
	for {
		k := 0
		for _, b := range bufs {
			if k == len(iov) {
				break
			}
			if len(b) == 0 {
				continue
			}
			iov[k].Base = &b[0]
			iov[k].SetLen(len(b))
			k++
		}
		if k == 0 {
			return n, nil
		}
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(k))
		switch e {
		case 0:
			n += int(r)
			bufs = consumed(bufs, int(r))
		case syscall.EINTR:
		default:
			return n, e
		}
	}
}

// consumed returns what is left of bufs once their first n bytes are
// written (a partial write ends inside a buffer). bufs is not changed.
func consumed(bufs [][]byte, n int) [][]byte {
	for len(bufs) > 0 && n >= len(bufs[0]) {
		n -= len(bufs[0])
		bufs = bufs[1:]
	}
	if len(bufs) > 0 && n > 0 {
		return append([][]byte{bufs[0][n:]}, bufs[1:]...)
	}
	return bufs
}
