package relay

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
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

// selfSigned returns a TLS certificate for 127.0.0.1 and a pool that
// trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// Under TLS the relay reads the socket through nbConn's buffer, and
// defers its flush while holdsRecords says the next read cannot wait: it
// must not, or frames would wait behind a read for a client that waits
// for them. Here the client sends 1 MiB and then waits; every read taken
// while holdsRecords is true returns at once, and all of it arrives.
func TestNBConnUnderTLSHoldsWholeRecords(t *testing.T) {
	nb, peer := tcpPair(t)
	cert, pool := selfSigned(t)
	srv := tls.Server(nb, &tls.Config{Certificates: []tls.Certificate{cert}})
	b := newReadBuf(srv)
	if b.ready == nil || !nb.bufferReads {
		t.Fatal("a TLS connection's reads are not buffered beneath TLS")
	}
	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	cli := tls.Client(peer, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	shook := make(chan error, 1)
	go func() { shook <- cli.Handshake() }()
	if err := srv.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-shook; err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	go func() {
		_, err := cli.Write(want)
		sent <- err // then waits: nothing more comes until the test ends
	}()
	// Read once the data has piled up: the whole MiB sent, or the socket
	// buffers full. A reader that keeps pace with the writer finds one
	// record at a time, and this test is about what it finds beyond one.
	var sendErr error
	sendDone := false
	select {
	case sendErr = <-sent:
		sendDone = true
	case <-time.After(time.Second):
	}
	got := make([]byte, 0, len(want))
	buf := make([]byte, 64<<10)
	deferred := 0
	for len(got) < len(want) {
		ready := b.ready()
		limit := 10 * time.Second
		if ready {
			deferred++
			limit = 2 * time.Second // a read that waits is the bug
		}
		_ = srv.SetReadDeadline(time.Now().Add(limit))
		n, err := srv.Read(buf)
		if err != nil {
			t.Fatalf("read after %d of %d bytes (ready %v): %v", len(got), len(want), ready, err)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the bytes read are not the bytes sent")
	}
	if !sendDone {
		sendErr = <-sent
	}
	if sendErr != nil {
		t.Fatal(sendErr)
	}
	if deferred == 0 {
		t.Fatal("1 MiB sent at once never left whole records buffered")
	}
	t.Logf("%d of the reads could defer the flush", deferred)
}
