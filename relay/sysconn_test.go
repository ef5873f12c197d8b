package relay

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// sysPair returns a loopback TCP connection wrapped in a sysConn, and its
// peer.
func sysPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	c, peer := loopbackPair(t)
	sc := newSysConn(c)
	if _, ok := sc.(*sysConn); !ok {
		t.Fatal("a TCP connection was not wrapped")
	}
	return sc, peer
}

// A write larger than the socket's buffers waits for the peer to read
// and arrives whole and in order; reads wait for data and see the end.
func TestSysConnWaitsForRoomAndData(t *testing.T) {
	sc, peer := sysPair(t)
	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB
	got := make(chan []byte)
	go func() {
		time.Sleep(50 * time.Millisecond) // the writer meets a full socket first
		b, _ := io.ReadAll(peer)
		got <- b
	}()
	n, err := sc.Write(want)
	if err != nil || n != len(want) {
		t.Fatalf("write: %d of %d, %v", n, len(want), err)
	}
	_ = sc.(*sysConn).Conn.(*net.TCPConn).CloseWrite()
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("the peer read %d bytes, not the %d written", len(b), len(want))
	}

	go func() {
		time.Sleep(50 * time.Millisecond) // the reader waits on the poller first
		_, _ = peer.Write([]byte("answer"))
		peer.Close()
	}()
	b, err := io.ReadAll(sc)
	if err != nil || string(b) != "answer" {
		t.Fatalf("read %q, %v; want \"answer\" then the end", b, err)
	}
}

// A read deadline and Close end a waiting read, as the net package's do:
// the relay ends a connection's reader with them.
func TestSysConnReadEndsOnDeadlineAndClose(t *testing.T) {
	sc, _ := sysPair(t)
	_ = sc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := sc.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
	_ = sc.SetReadDeadline(time.Time{})
	done := make(chan error)
	go func() {
		_, err := sc.Read(make([]byte, 10))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	sc.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read on a closed connection: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a waiting read")
	}
}

// gatherOf16MiB returns 16 MiB in buffers of odd sizes, so that the
// socket's partial writes end inside a buffer, and their concatenation.
func gatherOf16MiB() (bufs [][]byte, whole []byte) {
	whole = make([]byte, 16<<20)
	for i := range whole {
		whole[i] = byte(i * 7 / 3)
	}
	for rest := whole; len(rest) > 0; {
		n := min(len(rest), 64<<10+17)
		bufs = append(bufs, rest[:n])
		rest = rest[n:]
	}
	return bufs, whole
}

// A writev larger than the socket's buffers is taken in parts, each
// ending anywhere in a buffer: it waits for room and arrives whole and in
// order, and leaves the caller's buffers as they were.
func TestSysConnWriteBuffersPartially(t *testing.T) {
	sc, peer := sysPair(t)
	bufs, want := gatherOf16MiB()
	kept := append([][]byte(nil), bufs...)
	got := make(chan []byte)
	go func() {
		time.Sleep(50 * time.Millisecond) // the writer meets a full socket first
		b, _ := io.ReadAll(peer)
		got <- b
	}()
	n, err := sc.(*sysConn).writeBuffers(bufs)
	if err != nil || n != len(want) {
		t.Fatalf("writev: %d of %d, %v", n, len(want), err)
	}
	_ = sc.(*sysConn).Conn.(*net.TCPConn).CloseWrite()
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("the peer read %d bytes, not the %d written in order", len(b), len(want))
	}
	for i := range bufs {
		if len(bufs[i]) != len(kept[i]) {
			t.Fatalf("buffer %d was cut to %d bytes", i, len(bufs[i]))
		}
	}
}

// What the socket does not take of a writev goes to the backlog, after
// what it took and before later writes, without waiting.
func TestNBConnWriteBuffersPartially(t *testing.T) {
	nb, peer := tcpPair(t)
	bufs, want := gatherOf16MiB()
	start := time.Now()
	n, err := nb.writeBuffers(bufs)
	if err != nil || n != len(want) {
		t.Fatalf("writev: %d of %d, %v", n, len(want), err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the writev waited %v for the socket", d)
	}
	if !nb.waiting.Load() {
		t.Fatal("16 MiB to a peer that does not read left no backlog")
	}
	tail := []byte("after")
	want = append(want, tail...)
	got := make(chan error)
	b := make([]byte, len(want))
	go func() {
		_ = peer.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := io.ReadFull(peer, b)
		got <- err
	}()
	// The backlog is over maxBacklog: this write waits for the peer.
	if _, err := nb.Write(tail); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil || !bytes.Equal(b, want) {
		t.Fatalf("the peer read %d bytes in the wrong order or not all: %v", len(b), err)
	}
}
