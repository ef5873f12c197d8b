package relay

import (
	"errors"
	"io"
	"net"
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

func (c *sysConn) Write(p []byte) (int, error) {
	var n int
	var werr error
	err := c.raw.Write(func(fd uintptr) bool {
		m, err := writeNow(fd, p[n:])
		n += m
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

// writeNow writes what the socket takes without waiting; EAGAIN says it
// took no more.
func writeNow(fd uintptr, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[n])), uintptr(len(p)-n))
		switch e {
		case 0:
			n += int(r)
		case syscall.EINTR:
		default:
			return n, e
		}
	}
	return n, nil
}
