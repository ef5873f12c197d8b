package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"golang.org/x/sys/unix"

	"github.com/authproxy/authproxy/test/harness"
)

// rawH2 is an HTTP/2 client speaking frames to the proxy's port.
type rawH2 struct {
	conn net.Conn
	fr   *http2.Framer
}

func dialH2(t *testing.T, addr string) *rawH2 {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	must(t, err)
	return startH2(t, conn)
}

// dialH2TLS is dialH2 over TLS, with ALPN h2.
func dialH2TLS(t *testing.T, addr string, cfg *tls.Config) *rawH2 {
	t.Helper()
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h2"}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	must(t, err)
	return startH2(t, conn)
}

// startH2 sends the client preface on conn, closed when the test ends.
func startH2(t *testing.T, conn net.Conn) *rawH2 {
	t.Helper()
	t.Cleanup(func() { conn.Close() })
	_, err := conn.Write([]byte(http2.ClientPreface))
	must(t, err)
	return &rawH2{conn: conn, fr: http2.NewFramer(conn, conn)}
}

func grpcHeaderBlock(method, token string) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":path", method}, {":authority", "proxy"},
		{"content-type", "application/grpc"}, {"te", "trailers"},
		{"authorization", base64.StdEncoding.EncodeToString([]byte(token))},
	} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return buf.Bytes()
}

// procCPU is the proxy's user+system CPU time so far.
func procCPU(t *testing.T, p *harness.Proxy) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.PID()))
	must(t, err)
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.Atoi(fields[11])
	stime, _ := strconv.Atoi(fields[12])
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100
}

// Before the first request is known, a connection's floods are bounded:
// 192 MiB of CONTINUATION or of DATA, or one long header value, cost the
// proxy little memory and CPU, and the connection is ended.
func TestUnauthenticatedFloodsAreBounded(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	chunk := bytes.Repeat([]byte{'x'}, 16<<10)
	floods := map[string]func(c *rawH2) error{
		"CONTINUATION": func(c *rawH2) error {
			if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: grpcHeaderBlock("/x/y", "")[:4]}); err != nil {
				return err
			}
			for range 192 << 20 / len(chunk) {
				if err := c.fr.WriteContinuation(1, false, chunk); err != nil {
					return err
				}
			}
			return nil
		},
		"DATA": func(c *rawH2) error {
			for range 192 << 20 / len(chunk) {
				if err := c.fr.WriteData(1, false, chunk); err != nil {
					return err
				}
			}
			return nil
		},
		"long header value": func(c *rawH2) error {
			var buf bytes.Buffer
			enc := hpack.NewEncoder(&buf)
			_ = enc.WriteField(hpack.HeaderField{Name: "content-type", Value: "application/grpc"})
			_ = enc.WriteField(hpack.HeaderField{Name: "x-long", Value: strings.Repeat("v", 32<<20)})
			block := buf.Bytes()
			if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:16<<10]}); err != nil {
				return err
			}
			for off := 16 << 10; off < len(block); off += 16 << 10 {
				if err := c.fr.WriteContinuation(1, off+16<<10 >= len(block), block[off:min(off+16<<10, len(block))]); err != nil {
					return err
				}
			}
			return nil
		},
	}
	for name, flood := range floods {
		t.Run(name, func(t *testing.T) {
			p.ResetPeakRSS(t)
			before, cpuBefore := p.RSS(t), procCPU(t, p)
			c := dialH2(t, p.Addr)
			_ = c.conn.SetDeadline(time.Now().Add(30 * time.Second))
			start := time.Now()
			err := flood(c)
			took := time.Since(start)
			growth, cpu := p.PeakRSS(t)-before, procCPU(t, p)-cpuBefore
			t.Logf("%s flood: the proxy ended it after %v (%v); peak RSS +%d MiB, CPU %v", name, took.Round(time.Millisecond), err, growth>>20, cpu)
			if err == nil {
				t.Errorf("the proxy read the whole %s flood", name)
			}
			if growth > 64<<20 {
				t.Errorf("peak RSS grew by %d MiB, bound 64 MiB", growth>>20)
			}
			if cpu > 2*time.Second {
				t.Errorf("the flood cost %v of CPU, bound 2s", cpu)
			}
		})
	}
}

// One connection may hold at most 1,000 calls at once: the proxy says so in
// its SETTINGS and refuses the streams past it (one connection once held
// 3,000 backend streams).
func TestStreamsPerConnectionAreBounded(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	harness.Password("root", "Milvus")
	c := dialH2(t, p.Addr)
	_ = c.conn.SetDeadline(time.Now().Add(60 * time.Second))
	must(t, c.fr.WriteSettings())
	block := grpcHeaderBlock("/milvus.proto.milvus.MilvusService/GetVersion", "root:Milvus")
	// Open 3,000 calls whose request never comes: each holds its stream.
	go func() {
		for i := range 3000 {
			if c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: block, EndHeaders: true}) != nil {
				return
			}
		}
	}()
	var advertised uint32
	refused := 0
	for refused < 2000 {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d refused streams: %v", refused, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if v, ok := f.Value(http2.SettingMaxConcurrentStreams); ok {
				advertised = v
			}
		case *http2.RSTStreamFrame:
			if f.ErrCode == http2.ErrCodeRefusedStream {
				refused++
			}
		}
	}
	t.Logf("3000 streams on one connection: MAX_CONCURRENT_STREAMS %d advertised, %d refused", advertised, refused)
	if advertised != 1000 {
		t.Fatalf("advertised MAX_CONCURRENT_STREAMS %d, want 1000", advertised)
	}
}

// A gRPC client that resets streams as fast as it opens them gets GOAWAY
// ENHANCE_YOUR_CALM; before, 80k resets a second were served.
func TestRapidResetGetsGoAway(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	c := dialH2(t, p.Addr)
	_ = c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	must(t, c.fr.WriteSettings())
	block := grpcHeaderBlock("/milvus.proto.milvus.MilvusService/GetVersion", "root:Milvus")
	go func() {
		for i := range 100000 {
			id := uint32(2*i + 1)
			if c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndHeaders: true}) != nil ||
				c.fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
				return
			}
		}
	}()
	start := time.Now()
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("the connection ended without a GOAWAY after %v: %v", time.Since(start), err)
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			t.Logf("rapid reset: GOAWAY %v after %v", ga.ErrCode, time.Since(start).Round(time.Millisecond))
			if ga.ErrCode != http2.ErrCodeEnhanceYourCalm {
				t.Fatalf("GOAWAY %v, want ENHANCE_YOUR_CALM", ga.ErrCode)
			}
			return
		}
	}
}

// A connection that says nothing is closed after the 10 s sniff timeout
// (it once lived 40 s); a REST body arriving at a byte a second is cut
// after 10 s without progress (it once stayed open for ever).
func TestSilentAndTricklingConnectionsAreClosed(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	var wg sync.WaitGroup
	closedAfter := func(name string, conn net.Conn, trickle func()) {
		defer wg.Done()
		start := time.Now()
		_ = conn.SetDeadline(start.Add(30 * time.Second))
		done := make(chan struct{})
		if trickle != nil {
			go func() {
				for {
					select {
					case <-done:
						return
					case <-time.After(time.Second):
						trickle()
					}
				}
			}()
		}
		_, err := io.Copy(io.Discard, conn)
		close(done)
		took := time.Since(start)
		t.Logf("%s connection closed by the proxy after %v (%v)", name, took.Round(100*time.Millisecond), err)
		if err != nil || took > 13*time.Second {
			t.Errorf("%s connection: closed after %v (%v), want within 13 s", name, took, err)
		}
	}
	silent, err := net.Dial("tcp", p.Addr)
	must(t, err)
	defer silent.Close()
	slow, err := net.Dial("tcp", p.Addr)
	must(t, err)
	defer slow.Close()
	harness.Password("root", "Milvus")
	_, err = fmt.Fprintf(slow, "POST /v2/vectordb/users/create HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer root:Milvus\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
	must(t, err)
	wg.Add(2)
	go closedAfter("silent", silent, nil)
	go closedAfter("1 byte/s body", slow, func() { _, _ = slow.Write([]byte(" ")) })
	wg.Wait()
}

// SIGTERM drains REST over HTTP/2 as it drains gRPC: a request in flight
// when the signal comes completes.
func TestShutdownDrainsRESTOverHTTP2(t *testing.T) {
	slowBackend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(1500 * time.Millisecond)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"code":0,"data":["books"]}`)
	}))
	defer slowBackend.Close()
	_, p := startPair(t, harness.Options{BackendREST: slowBackend.URL})
	client := &http.Client{Transport: &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}}
	harness.Password("root", "Milvus")
	type result struct {
		status int
		body   string
		err    error
	}
	res := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, "http://"+p.Addr+"/v2/vectordb/collections/list", strings.NewReader(`{}`))
		req.Header.Set("Authorization", "Bearer root:Milvus")
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			res <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{status: resp.StatusCode, body: string(b), err: err}
	}()
	time.Sleep(500 * time.Millisecond)
	p.Signal(syscall.SIGTERM)
	r := <-res
	if r.err != nil || r.status != 200 || !strings.Contains(r.body, "books") {
		t.Fatalf("REST over HTTP/2 during shutdown: %d %q %v", r.status, r.body, r.err)
	}
	eventually(t, 10*time.Second, "proxy exited", func() error {
		if !p.Exited() {
			return fmt.Errorf("still running")
		}
		return nil
	})
}

// Out of file descriptors, the proxy backs off between accepts instead of
// retrying at once: cmux's busy loop once burnt 3.2 s of CPU in 3 s.
func TestAcceptBacksOffWhenOutOfFileDescriptors(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.PID()))
	must(t, err)
	limit := uint64(len(fds) + 8)
	must(t, unix.Prlimit(p.PID(), unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: limit, Max: limit}, nil))
	var conns []net.Conn
	for range 40 {
		c, err := net.DialTimeout("tcp", p.Addr, time.Second)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	time.Sleep(200 * time.Millisecond) // the accepts start failing
	before := procCPU(t, p)
	time.Sleep(3 * time.Second)
	cpu := procCPU(t, p) - before
	t.Logf("out of file descriptors (limit %d, %d connections waiting): %v of CPU in 3 s", limit, len(conns), cpu)
	if cpu > 500*time.Millisecond {
		t.Fatalf("%v of CPU in 3 s while accepts fail: no backoff", cpu)
	}
	if !strings.Contains(p.Logs(), "accept failed; retrying") {
		t.Fatal("the accept failures never happened: the test did not exhaust the descriptors")
	}
}
