package relay

import (
	"bytes"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// loopbackPair returns the two ends of a loopback TCP connection, closed
// when the test ends.
func loopbackPair(t *testing.T) (dialled, accepted net.Conn) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	dialled, err = net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dialled.Close() })
	accepted, err = lis.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { accepted.Close() })
	return dialled, accepted
}

// tcpPair returns an accepted connection wrapped in an nbConn, and its peer.
func tcpPair(t *testing.T) (*nbConn, net.Conn) {
	t.Helper()
	peer, c := loopbackPair(t)
	nb, ok := newNBConn(c).(*nbConn)
	if !ok {
		t.Fatal("a TCP connection was not wrapped")
	}
	return nb, peer
}

// fill writes to nb, whose peer does not read, until a backlog forms; no
// write may wait for the socket meanwhile.
func fill(t *testing.T, nb *nbConn, chunk []byte) int {
	t.Helper()
	total := 0
	for !nb.waiting.Load() {
		if total > 64<<20 {
			t.Fatal("no backlog after 64 MiB to a peer that does not read")
		}
		start := time.Now()
		n, err := nb.Write(chunk)
		if err != nil || n != len(chunk) {
			t.Fatalf("write: %d, %v", n, err)
		}
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Fatalf("a write waited %v for the socket", d)
		}
		total += n
	}
	return total
}

// Writes to a peer that does not read return at once; the backlog is
// written out once the peer reads, in order, and the relay is told.
func TestNBConnNeverWaitsAndDrainsInOrder(t *testing.T) {
	nb, peer := tcpPair(t)
	var drained atomic.Int32
	f := func() { drained.Add(1) }
	nb.onDrained.Store(&f)
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	total := fill(t, nb, chunk)
	got, err := io.ReadFull(peer, make([]byte, total))
	if err != nil || got != total {
		t.Fatalf("read %d of %d: %v", got, total, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for drained.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if drained.Load() != 1 || nb.waiting.Load() {
		t.Fatalf("drained %d times, backlog left: %v", drained.Load(), nb.waiting.Load())
	}
}

// What was written before Close still reaches a peer that reads late.
func TestNBConnCloseDeliversTheBacklog(t *testing.T) {
	nb, peer := tcpPair(t)
	chunk := bytes.Repeat([]byte{'x'}, 64<<10)
	total := fill(t, nb, chunk)
	if err := nb.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := nb.Write(chunk); err == nil {
		t.Fatal("a write after Close was accepted")
	}
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := io.Copy(io.Discard, peer)
	if err != nil || int(n) != total {
		t.Fatalf("the peer read %d of %d bytes: %v", n, total, err)
	}
}
