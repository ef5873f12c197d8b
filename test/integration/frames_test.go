package integration

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/authproxy/authproxy/test/harness"
)

// rawBackend is an HTTP/2 (h2c) server that speaks gRPC's framing by hand:
// it records the request bytes exactly as they arrived and answers with
// bytes the test chose, so a test can tell whether anything in between
// touched them.
type rawBackend struct {
	addr string

	mu       sync.Mutex
	received map[string][]byte // request body by path
	encoding map[string]string // grpc-encoding by path
}

func startRawBackend(t *testing.T, unaryReply []byte) *rawBackend {
	t.Helper()
	b := &rawBackend{received: map[string][]byte{}, encoding: map[string]string{}}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.encoding[r.URL.Path] = r.Header.Get("grpc-encoding")
		b.mu.Unlock()
		w.Header().Set("content-type", "application/grpc")
		w.Header().Set("grpc-encoding", "gzip")
		w.Header().Set("Trailer", "grpc-status")
		if r.URL.Path == "/grpc.testing.TestService/FullDuplexCall" {
			// Echo each chunk as it comes: a bidirectional stream.
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			buf := make([]byte, 64<<10)
			for {
				n, err := r.Body.Read(buf)
				if n > 0 {
					b.mu.Lock()
					b.received[r.URL.Path] = append(b.received[r.URL.Path], buf[:n]...)
					b.mu.Unlock()
					_, _ = w.Write(buf[:n])
					w.(http.Flusher).Flush()
				}
				if err != nil {
					break
				}
			}
		} else {
			body, _ := io.ReadAll(r.Body)
			b.mu.Lock()
			b.received[r.URL.Path] = body
			b.mu.Unlock()
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(unaryReply)
		}
		w.Header().Set("grpc-status", "0")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h2c.NewHandler(h, &http2.Server{}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	b.addr = ln.Addr().String()
	return b
}

func (b *rawBackend) got(path string) ([]byte, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.received[path]...), b.encoding[path]
}

// gzipMessage is one gRPC message, gzip-compressed with a header name in
// the gzip stream: a proxy that decompressed and compressed again would
// not reproduce these bytes.
func gzipMessage(t *testing.T, payload []byte, marker string) []byte {
	t.Helper()
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, gzip.BestSpeed)
	zw.Name = marker
	if _, err := zw.Write(payload); err != nil {
		t.Fatal(err)
	}
	must(t, zw.Close())
	msg := []byte{1, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(msg[1:], uint32(z.Len()))
	return append(msg, z.Bytes()...)
}

func h2cClient() *http.Client {
	return &http.Client{Timeout: 20 * time.Second, Transport: &http2.Transport{AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}}
}

func grpcRequest(t *testing.T, ctx context.Context, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("content-type", "application/grpc")
	req.Header.Set("te", "trailers")
	req.Header.Set("grpc-encoding", "gzip")
	req.Header.Set("grpc-accept-encoding", "gzip")
	req.Header.Set("authorization", base64.StdEncoding.EncodeToString([]byte("root:Milvus")))
	return req
}

// On the frame relay, compressed messages pass untouched both ways: a
// gzip unary call and a compressed bidirectional stream reach a backend
// that has gzip with the very bytes the client sent, and the backend's
// compressed answers reach the client byte for byte.
func TestFramesPassCompressedBytesUnchanged(t *testing.T) {
	reply := gzipMessage(t, bytes.Repeat([]byte("reply "), 3000), "from-backend")
	b := startRawBackend(t, reply)
	p := harness.Start(t, harness.Options{Backend: b.addr, Extra: "forwarding: frames\n"})
	ctx := testCtx(t, 20*time.Second)
	client := h2cClient()
	base := "http://" + p.Addr

	sent := gzipMessage(t, bytes.Repeat([]byte("request "), 5000), "from-client")
	resp, err := client.Do(grpcRequest(t, ctx, base+"/grpc.testing.TestService/UnaryCall", bytes.NewReader(sent)))
	must(t, err)
	body, err := io.ReadAll(resp.Body)
	must(t, err)
	resp.Body.Close()
	got, enc := b.got("/grpc.testing.TestService/UnaryCall")
	if !bytes.Equal(got, sent) || enc != "gzip" {
		t.Errorf("unary: the backend got %d bytes (grpc-encoding %q), want the client's %d gzip bytes unchanged", len(got), enc, len(sent))
	}
	if !bytes.Equal(body, reply) || resp.Header.Get("grpc-encoding") != "gzip" || resp.Trailer.Get("grpc-status") != "0" {
		t.Errorf("unary: the client got %d bytes (grpc-encoding %q, status %q), want the backend's %d bytes",
			len(body), resp.Header.Get("grpc-encoding"), resp.Trailer.Get("grpc-status"), len(reply))
	}

	pr, pw := io.Pipe()
	go func() {
		// A write the relay does not take must not hang the test.
		<-ctx.Done()
		pr.CloseWithError(ctx.Err())
	}()
	resp, err = client.Do(grpcRequest(t, ctx, base+"/grpc.testing.TestService/FullDuplexCall", pr))
	must(t, err)
	var all []byte
	for i, size := range []int{100, 20000, 70000} {
		msg := gzipMessage(t, bytes.Repeat([]byte{byte('a' + i)}, size), "stream")
		all = append(all, msg...)
		_, err := pw.Write(msg)
		must(t, err)
		echo := make([]byte, len(msg))
		_, err = io.ReadFull(resp.Body, echo)
		must(t, err)
		if !bytes.Equal(echo, msg) {
			t.Fatalf("stream message %d came back changed", i)
		}
	}
	must(t, pw.Close())
	rest, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	got, enc = b.got("/grpc.testing.TestService/FullDuplexCall")
	if !bytes.Equal(got, all) || enc != "gzip" || len(rest) != 0 {
		t.Errorf("stream: the backend got %d bytes (grpc-encoding %q), want the client's %d unchanged; %d bytes after the end", len(got), enc, len(all), len(rest))
	}
}

// A connection that made a call and then waits costs the relay one
// goroutine on a small stack: the request's path grows a reader's stack to
// 8 KiB, so the relay hands the connection to a fresh goroutine before it
// waits (relay.clientConn.serve). Measured from the proxy's own
// go_memstats over 200 such connections, plaintext and over TLS (whose
// reads wait deeper in the stack).
func TestFrameRelayIdleConnectionsHoldSmallStacks(t *testing.T) {
	framesOverBoth(t, func(t *testing.T, dir, extra string, k *pki) {
		_, p := startPair(t, harness.Options{Dir: dir, Extra: extra})
		dial := func() *rawH2 {
			if k != nil {
				return dialH2TLS(t, p.Addr, k.clientTLS(false))
			}
			return dialH2(t, p.Addr)
		}
		warmUpOn(t, dial())
		const conns = 200
		stacks0 := metricValue(t, p, "go_memstats_stack_inuse_bytes")
		heap0 := metricValue(t, p, "go_memstats_heap_inuse_bytes")
		goroutines0 := metricValue(t, p, "go_goroutines")
		for range conns {
			// One call, then a PING, as grpc-go sends after an answer
			// (its BDP probe): the relay's ACK is written on the
			// connection's idle goroutine. Closed by the test's cleanup.
			pingPong(t, authedOn(t, dial()))
		}
		time.Sleep(200 * time.Millisecond) // the last hand-offs
		perConnStack := (metricValue(t, p, "go_memstats_stack_inuse_bytes") - stacks0) / conns
		perConnGoroutines := (metricValue(t, p, "go_goroutines") - goroutines0) / conns
		t.Logf("per idle connection: %.0f bytes of stack, %.2f goroutines, %.0f heap", perConnStack, perConnGoroutines, (metricValue(t, p, "go_memstats_heap_inuse_bytes")-heap0)/conns)
		if perConnGoroutines > 1.05 {
			t.Errorf("%.2f goroutines per idle connection, want 1", perConnGoroutines)
		}
		if perConnStack > 5<<10 {
			t.Errorf("%.0f bytes of stack per idle connection, want at most 5 KiB (one 4 KiB stack)", perConnStack)
		}
	})
}

// pingPong sends a PING on c and reads until its ACK.
func pingPong(t *testing.T, c *floodConn) {
	t.Helper()
	must(t, c.fr.WritePing(false, [8]byte{'b', 'd', 'p'}))
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("no PING ack: %v", err)
		}
		if pf, ok := f.(*http2.PingFrame); ok && pf.IsAck() {
			return
		}
	}
}

// A call whose frames arrived ahead of part of the next frame goes on at
// once: the relay forwards what it has before every read of the
// connection, not only between whole frames (relay's readBuf.beforeRead).
// Before, the request sat in the relay's buffer until the client finished
// the next frame.
func TestFrameRelayForwardsBeforeAPartialFrameCompletes(t *testing.T) {
	_, p := startPair(t, harness.Options{Extra: "forwarding: frames\n"})
	c := authedH2(t, p)
	ping := frameBatch(1, func(fr *http2.Framer) error { return fr.WritePing(false, [8]byte{'p', 'a', 'r', 't'}) })
	call := frameBatch(1, func(fr *http2.Framer) error {
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: grpcHeaderBlock(floodGetVersion, "root:Milvus"), EndHeaders: true}); err != nil {
			return err
		}
		return fr.WriteData(3, true, make([]byte, 5))
	})
	_, err := c.conn.Write(append(call, ping[:4]...))
	must(t, err)
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for answered := false; !answered; {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("no answer to a whole call while the next frame was incomplete: %v", err)
		}
		if h, ok := f.(*http2.MetaHeadersFrame); ok && h.StreamID == 3 && h.StreamEnded() {
			if st := regularValue(h, "grpc-status"); st != "0" {
				t.Fatalf("the call ended with grpc-status %q (%s)", st, regularValue(h, "grpc-message"))
			}
			answered = true
		}
	}
	// The rest of the frame completes it.
	_, err = c.conn.Write(ping[4:])
	must(t, err)
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("no PING ack once the frame was whole: %v", err)
		}
		if pf, ok := f.(*http2.PingFrame); ok && pf.IsAck() && string(pf.Data[:4]) == "part" {
			return
		}
	}
}
