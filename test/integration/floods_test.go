package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/proto"

	"github.com/authproxy/authproxy/edge"
	"github.com/authproxy/authproxy/sharedport"
	"github.com/authproxy/authproxy/test/harness"
)

// The HTTP/2 floods, sent by a client that first completed one
// authenticated call, so that they reach the forwarding core (grpc-go's
// server or the frame relay) rather than the port's sniffer, which only
// guards the start of a connection. For each: what the proxy holds while
// the flood runs is bounded (peak RSS, and heap in use sampled from
// /metrics), the flood is ended where a bound says so, and once the
// flooding connection is closed the proxy's goroutines and heap are back
// near where they were before it.

const floodGetVersion = "/milvus.proto.milvus.MilvusService/GetVersion"

// Bounds shared by the floods.
const (
	floodRSSBound   = 48 << 20 // peak RSS growth while a flood runs
	floodHeapBound  = 32 << 20 // peak heap in use growth while a flood runs
	settleGoroutine = 10       // goroutines over the baseline once the flood is gone
	settleHeap      = 16 << 20 // heap in use over the baseline once the flood is gone
	settleWithin    = 10 * time.Second
)

// floodConn is a raw HTTP/2 client connection that completed one call.
type floodConn struct {
	*rawH2
	initWin int64 // the proxy's SETTINGS_INITIAL_WINDOW_SIZE
	connWin int64 // our send window on the connection after the first call
}

// authedH2 dials the proxy, sends settings, and completes one
// authenticated GetVersion call on stream 1 (HEADERS, one empty message,
// END_STREAM, read until the trailers). The connection's deadlines are
// 60 s from then.
func authedH2(t *testing.T, p *harness.Proxy, settings ...http2.Setting) *floodConn {
	t.Helper()
	return authedOn(t, dialH2(t, p.Addr), settings...)
}

// authedOn is authedH2 on a connection already dialled.
func authedOn(t *testing.T, raw *rawH2, settings ...http2.Setting) *floodConn {
	t.Helper()
	harness.Password("root", "Milvus")
	c := &floodConn{rawH2: raw, initWin: 65535, connWin: 65535}
	_ = c.conn.SetDeadline(time.Now().Add(15 * time.Second))
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	must(t, c.fr.WriteSettings(settings...))
	must(t, c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: grpcHeaderBlock(floodGetVersion, "root:Milvus"), EndHeaders: true}))
	must(t, c.fr.WriteData(1, true, make([]byte, 5)))
	c.connWin -= 5
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("the first GetVersion call: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				continue
			}
			if v, ok := f.Value(http2.SettingInitialWindowSize); ok {
				c.initWin = int64(v)
			}
			must(t, c.fr.WriteSettingsAck())
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				c.connWin += int64(f.Increment)
			}
		case *http2.RSTStreamFrame:
			t.Fatalf("the first GetVersion call was reset: %v", f.ErrCode)
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v during the first GetVersion call", f.ErrCode)
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 && f.StreamEnded() {
				if st := regularValue(f, "grpc-status"); st != "0" {
					t.Fatalf("the first GetVersion call ended with grpc-status %q (%s)", st, regularValue(f, "grpc-message"))
				}
				_ = c.conn.SetDeadline(time.Now().Add(60 * time.Second))
				return c
			}
		}
	}
}

func regularValue(f *http2.MetaHeadersFrame, name string) string {
	for _, hf := range f.RegularFields() {
		if hf.Name == name {
			return hf.Value
		}
	}
	return ""
}

// warmUp makes the first call of the proxy's life (the password hash, the
// backend connection) on a connection closed at once, and waits until the
// hash's memory is released, so that a baseline taken next is the
// proxy's resting state.
func warmUp(t *testing.T, p *harness.Proxy) {
	t.Helper()
	warmUpOn(t, dialH2(t, p.Addr))
}

// warmUpOn is warmUp on a connection already dialled.
func warmUpOn(t *testing.T, raw *rawH2) {
	t.Helper()
	authedOn(t, raw).conn.Close()
	time.Sleep(1500 * time.Millisecond)
}

// usage is what the proxy holds, as its /metrics says.
type usage struct {
	goroutines float64
	heap       float64 // go_memstats_heap_inuse_bytes
}

func readUsage(p *harness.Proxy) (usage, error) {
	code, body := p.AdminStatus("/metrics")
	if code != 200 {
		return usage{}, fmt.Errorf("GET /metrics: %d", code)
	}
	var u usage
	seen := 0
	for _, line := range strings.Split(body, "\n") {
		for name, dst := range map[string]*float64{"go_goroutines ": &u.goroutines, "go_memstats_heap_inuse_bytes ": &u.heap} {
			if v, ok := strings.CutPrefix(line, name); ok {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil {
					return usage{}, fmt.Errorf("%s%q: %v", name, v, err)
				}
				*dst = f
				seen++
			}
		}
	}
	if seen != 2 {
		return usage{}, errors.New("go_goroutines or go_memstats_heap_inuse_bytes missing from /metrics")
	}
	return u, nil
}

// meter measures what one flood costs the proxy: peak RSS (VmHWM), peak
// heap in use (sampled every 100 ms) and CPU, against the state before.
type meter struct {
	t      *testing.T
	p      *harness.Proxy
	base   usage
	rss0   int64
	cpu0   time.Duration
	stop   chan struct{}
	done   chan struct{}
	peak   usage
	sample int
}

func startMeter(t *testing.T, p *harness.Proxy) *meter {
	t.Helper()
	base, err := readUsage(p)
	must(t, err)
	p.ResetPeakRSS(t)
	m := &meter{t: t, p: p, base: base, rss0: p.RSS(t), cpu0: procCPU(t, p), stop: make(chan struct{}), done: make(chan struct{}), peak: base}
	go func() {
		defer close(m.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-tick.C:
			}
			if u, err := readUsage(p); err == nil {
				m.peak.goroutines = max(m.peak.goroutines, u.goroutines)
				m.peak.heap = max(m.peak.heap, u.heap)
				m.sample++
			}
		}
	}()
	return m
}

// bounded ends the measurement of the flood and fails the test if the
// proxy's peak RSS or heap grew past their bounds; it returns the CPU the
// proxy spent meanwhile.
func (m *meter) bounded(what string) time.Duration {
	m.t.Helper()
	close(m.stop)
	<-m.done
	if u, err := readUsage(m.p); err == nil {
		m.peak.heap = max(m.peak.heap, u.heap)
		m.peak.goroutines = max(m.peak.goroutines, u.goroutines)
	}
	rss := m.p.PeakRSS(m.t) - m.rss0
	heap := m.peak.heap - m.base.heap
	cpu := procCPU(m.t, m.p) - m.cpu0
	m.t.Logf("%s: peak RSS +%.1f MiB, peak heap in use +%.1f MiB (%d samples), goroutines %.0f -> peak %.0f, proxy CPU %v",
		what, float64(rss)/(1<<20), heap/(1<<20), m.sample, m.base.goroutines, m.peak.goroutines, cpu.Round(10*time.Millisecond))
	if rss > floodRSSBound {
		m.t.Errorf("%s: the proxy's peak RSS grew by %.1f MiB, bound %d MiB", what, float64(rss)/(1<<20), floodRSSBound>>20)
	}
	if heap > floodHeapBound {
		m.t.Errorf("%s: the proxy's heap in use grew by %.1f MiB, bound %d MiB", what, heap/(1<<20), floodHeapBound>>20)
	}
	return cpu
}

// settles fails the test unless, within settleWithin, the proxy's
// goroutines and heap in use are back near the baseline (the flooding
// connection closed by then).
//
// Heap in use counts garbage until a collection runs, and an idle proxy
// may not collect for two minutes. If the heap is not back after 3 s, a
// failed login of an unknown user makes the proxy hash a dummy password;
// a second after the last hash it returns its free memory to the system
// (debug.FreeOSMemory, which collects first): what is still in use then
// is held, not garbage.
func (m *meter) settles(what string) {
	m.t.Helper()
	m.settlesWithin(what, settleWithin)
}

// settlesWithin is settles with another limit.
func (m *meter) settlesWithin(what string, within time.Duration) {
	m.t.Helper()
	start := time.Now()
	var u usage
	var err error
	nudges := 0
	for {
		u, err = readUsage(m.p)
		if err == nil && u.goroutines <= m.base.goroutines+settleGoroutine && u.heap <= m.base.heap+settleHeap {
			m.t.Logf("%s: back to goroutines %.0f (baseline %.0f), heap in use %.1f MiB (baseline %.1f MiB) after %v (%d collections asked for)",
				what, u.goroutines, m.base.goroutines, u.heap/(1<<20), m.base.heap/(1<<20), time.Since(start).Round(100*time.Millisecond), nudges)
			return
		}
		if time.Since(start) > within {
			break
		}
		if elapsed := time.Since(start); nudges < 2 && elapsed > time.Duration(3*(nudges+1))*time.Second {
			nudges++
			m.collect()
		}
		time.Sleep(200 * time.Millisecond)
	}
	m.t.Errorf("%s: %v after the flooding connection closed (%d collections asked for): goroutines %.0f (baseline %.0f, slack %d), heap in use %.1f MiB (baseline %.1f MiB, slack %d MiB); %v",
		what, within, nudges, u.goroutines, m.base.goroutines, settleGoroutine, u.heap/(1<<20), m.base.heap/(1<<20), settleHeap>>20, err)
}

// collect makes the proxy run a garbage collection about a second later
// (see settles), over a connection closed at once, so that it adds no
// goroutines to what is measured.
func (m *meter) collect() {
	conn, err := grpc.NewClient(m.p.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		m.t.Errorf("dial for a collection: %v", err)
		return
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	harness.Password("flood-gc", "not-a-password")
	if err := getVersion(ctx, milvuspb.NewMilvusServiceClient(conn), "flood-gc:not-a-password"); err == nil {
		m.t.Errorf("an unknown user's login was accepted")
	}
}

// watcher reads a connection's frames until it ends, and records how the
// proxy answered: GOAWAY, RST_STREAM per stream, trailers per stream.
type watcher struct {
	start time.Time
	ended chan struct{} // GOAWAY read, or the connection ended
	done  chan struct{} // the reader returned

	mu        sync.Mutex
	endedAt   time.Duration
	goAway    *http2.ErrCode
	goAwayMsg string
	err       error
	rst       map[uint32]http2.ErrCode
	status    map[uint32]string // grpc-status of streams that ended with trailers
}

func watch(c *floodConn) *watcher {
	w := &watcher{start: time.Now(), ended: make(chan struct{}), done: make(chan struct{}), rst: map[uint32]http2.ErrCode{}, status: map[uint32]string{}}
	go func() {
		defer close(w.done)
		var once sync.Once
		end := func() {
			once.Do(func() {
				w.mu.Lock()
				w.endedAt = time.Since(w.start)
				w.mu.Unlock()
				close(w.ended)
			})
		}
		defer end()
		for {
			f, err := c.fr.ReadFrame()
			w.mu.Lock()
			if err != nil {
				w.err = err
				w.mu.Unlock()
				return
			}
			switch f := f.(type) {
			case *http2.GoAwayFrame:
				if w.goAway == nil {
					code := f.ErrCode
					w.goAway, w.goAwayMsg = &code, string(f.DebugData())
				}
				w.mu.Unlock()
				end()
				continue
			case *http2.RSTStreamFrame:
				if _, ok := w.rst[f.StreamID]; !ok {
					w.rst[f.StreamID] = f.ErrCode
				}
			case *http2.MetaHeadersFrame:
				if f.StreamEnded() {
					w.status[f.StreamID] = regularValue(f, "grpc-status")
				}
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// waitEnd waits up to limit for a GOAWAY or the end of the connection and
// describes it; ok is false if neither came.
func (w *watcher) waitEnd(limit time.Duration) (how string, ok bool) {
	select {
	case <-w.ended:
	case <-time.After(limit):
		return fmt.Sprintf("neither GOAWAY nor close within %v", limit), false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.goAway != nil {
		return fmt.Sprintf("GOAWAY %v %q after %v", *w.goAway, w.goAwayMsg, w.endedAt.Round(time.Millisecond)), true
	}
	var ne net.Error
	if errors.As(w.err, &ne) && ne.Timeout() {
		return fmt.Sprintf("neither GOAWAY nor close: the read timed out after %v", w.endedAt.Round(time.Millisecond)), false
	}
	return fmt.Sprintf("connection closed without GOAWAY after %v (%v)", w.endedAt.Round(time.Millisecond), w.err), true
}

// frameBatch is n copies of the frames write writes, as one buffer: a
// flood written a batch at a time costs the test one syscall per batch.
func frameBatch(n int, write func(fr *http2.Framer) error) []byte {
	var buf bytes.Buffer
	fr := http2.NewFramer(&buf, nil)
	for range n {
		if err := write(fr); err != nil {
			panic(err)
		}
	}
	return buf.Bytes()
}

// floodBatches writes batch (perBatch frames) until maxFrames are written,
// limit has passed, or a write fails; it returns the frames written and
// the error that stopped it (nil: all written).
func floodBatches(c *floodConn, batch []byte, perBatch, maxFrames int, limit time.Duration) (int, error) {
	start := time.Now()
	_ = c.conn.SetWriteDeadline(start.Add(limit))
	defer c.conn.SetWriteDeadline(time.Now().Add(60 * time.Second))
	n := 0
	for n < maxFrames {
		if time.Since(start) > limit {
			return n, fmt.Errorf("stopped after %v", limit)
		}
		if _, err := c.conn.Write(batch); err != nil {
			return n, err
		}
		n += perBatch
	}
	return n, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// resetStreams is the most streams a rapid-reset flood opens and resets.
const resetStreams = 100000

// rapidReset opens and resets streams 3, 5, ... on c, from a goroutine:
// HEADERS with block (ending the stream if endStream), then RST_STREAM,
// until resetStreams pairs or a failed write. sent counts the pairs
// written; done is closed when the writer stops.
func rapidReset(c *floodConn, block []byte, endStream bool) (sent *atomic.Int64, done chan struct{}) {
	sent, done = new(atomic.Int64), make(chan struct{})
	go func() {
		defer close(done)
		for i := range resetStreams {
			id := uint32(2*i + 3)
			if c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndHeaders: true, EndStream: endStream}) != nil ||
				c.fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
				return
			}
			sent.Add(1)
		}
	}()
	return sent, done
}

// 1. Rapid reset after a first call: HEADERS and RST_STREAM on stream
// after stream. The proxy ends the connection (GOAWAY ENHANCE_YOUR_CALM,
// or a close) within 10 s and long before 100,000 streams.
func TestFloodRapidResetAfterACall(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	warmUp(t, p)
	m := startMeter(t, p)
	c := authedH2(t, p)
	w := watch(c)
	sent, writer := rapidReset(c, grpcHeaderBlock(floodGetVersion, "root:Milvus"), false)
	how, ok := w.waitEnd(10 * time.Second)
	t.Logf("rapid reset after a call: %s; %d streams opened and reset by then", how, sent.Load())
	if !ok {
		t.Errorf("rapid reset after a call: %s", how)
	}
	w.mu.Lock()
	if w.goAway != nil && *w.goAway != http2.ErrCodeEnhanceYourCalm {
		t.Errorf("GOAWAY %v, want ENHANCE_YOUR_CALM", *w.goAway)
	}
	w.mu.Unlock()
	c.conn.Close()
	<-writer
	if n := sent.Load(); n >= resetStreams {
		t.Errorf("the proxy took all %d reset streams", n)
	}
	m.bounded("rapid reset")
	m.settles("rapid reset")
}

// floodRESTPath is a REST data route the proxy forwards to the backend.
const floodRESTPath = "/v2/vectordb/collections/list"

// restHeaderBlock is the header block of a REST POST with a JSON body.
func restHeaderBlock(path, token string) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":path", path}, {":authority", "proxy"},
		{"content-type", "application/json"}, {"authorization", "Bearer " + token},
	} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return buf.Bytes()
}

// authedREST dials the proxy over h2c and completes one authenticated REST
// call on stream 1 (collections/list, body "{}"), read to its end.
func authedREST(t *testing.T, p *harness.Proxy) *floodConn {
	t.Helper()
	harness.Password("root", "Milvus")
	c := &floodConn{rawH2: dialH2(t, p.Addr)}
	_ = c.conn.SetDeadline(time.Now().Add(15 * time.Second))
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	must(t, c.fr.WriteSettings())
	must(t, c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: restHeaderBlock(floodRESTPath, "root:Milvus"), EndHeaders: true}))
	must(t, c.fr.WriteData(1, true, []byte("{}")))
	status := ""
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("the first REST call: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				must(t, c.fr.WriteSettingsAck())
			}
		case *http2.RSTStreamFrame:
			t.Fatalf("the first REST call was reset: %v", f.ErrCode)
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v during the first REST call", f.ErrCode)
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 {
				status = f.PseudoValue("status")
			}
		}
		if f.Header().StreamID == 1 && f.Header().Flags.Has(http2.FlagDataEndStream) {
			if status != "200" {
				t.Fatalf("the first REST call: HTTP %q", status)
			}
			_ = c.conn.SetDeadline(time.Now().Add(60 * time.Second))
			return c
		}
	}
}

// 1b. Rapid reset on REST over h2c, after a first call: HEADERS (the whole
// request) and RST_STREAM on stream after stream. REST over HTTP/2 gets
// the bound gRPC gets, on both cores: GOAWAY ENHANCE_YOUR_CALM within
// edge's frame budget, a few MiB of RSS, and no more backend calls than
// streams the budget let through. Go's HTTP/2 server alone, on the grpc
// core, never ended such a connection: all 100,000 pairs were taken, RSS
// grew by 160 MiB and 5,564 calls reached the backend.
func TestFloodRapidResetOnREST(t *testing.T) {
	const rssBound = 16 << 20
	fake := startFake(t)
	restAddr, err := fake.StartREST("127.0.0.1:0")
	must(t, err)
	p := harness.Start(t, harness.Options{Backend: fake.Addr(), BackendREST: "http://" + restAddr})
	authedREST(t, p).conn.Close() // the hash, the backend connection
	time.Sleep(1500 * time.Millisecond)
	callsBefore := len(fake.Recorder().CallsTo(floodRESTPath))
	m := startMeter(t, p)
	c := authedREST(t, p)
	w := watch(c)
	sent, writer := rapidReset(c, restHeaderBlock(floodRESTPath, "root:Milvus"), true)
	how, ok := w.waitEnd(10 * time.Second)
	w.mu.Lock()
	goAway := w.goAway
	w.mu.Unlock()
	c.conn.Close()
	<-writer
	// The budget's allowance for the time the flood ran, and the streams
	// that may be open when the last reset arrives.
	allowed := edge.FrameBurst + int(time.Since(w.start).Seconds()*edge.FrameRate) + sharedport.MaxConcurrentStreams
	time.Sleep(time.Second) // calls already forwarded reach the backend
	calls := len(fake.Recorder().CallsTo(floodRESTPath)) - callsBefore - 1
	t.Logf("REST rapid reset: %s; %d streams opened and reset by then, %d backend calls (bound %d)", how, sent.Load(), calls, allowed)
	if !ok || goAway == nil || *goAway != http2.ErrCodeEnhanceYourCalm {
		t.Errorf("REST rapid reset: %s, want GOAWAY ENHANCE_YOUR_CALM", how)
	}
	if n := sent.Load(); n >= resetStreams {
		t.Errorf("the proxy took all %d reset streams", n)
	}
	if calls > allowed {
		t.Errorf("%d REST calls reached the backend during the flood, bound %d", calls, allowed)
	}
	m.bounded("REST rapid reset")
	if rss := p.PeakRSS(t) - m.rss0; rss > rssBound {
		t.Errorf("REST rapid reset: the proxy's peak RSS grew by %.1f MiB, bound %d MiB", float64(rss)/(1<<20), rssBound>>20)
	}
	// The calls forwarded meanwhile opened backend connections, which the
	// proxy keeps idle (two goroutines each) until the backend closes
	// them: fakemilvus's REST server after 10 s.
	m.settlesWithin("REST rapid reset", 20*time.Second)
	// The proxy still serves REST over HTTP/2.
	authedREST(t, p).conn.Close()
}

// floodField is one HPACK literal field without indexing, new name:
// "x-flood: <1000 bytes>", 1012 bytes.
func floodField() []byte {
	b := []byte{0x00, 7}
	b = append(b, "x-flood"...)
	b = appendHpackInt(b, 7, 0, 1000)
	return append(b, bytes.Repeat([]byte{'f'}, 1000)...)
}

// appendHpackInt appends v as an HPACK integer with an n-bit prefix.
func appendHpackInt(b []byte, n uint, first byte, v uint64) []byte {
	limit := uint64(1)<<n - 1
	if v < limit {
		return append(b, first|byte(v))
	}
	b = append(b, first|byte(limit))
	v -= limit
	for v >= 128 {
		b = append(b, byte(v%128)|0x80)
		v /= 128
	}
	return append(b, byte(v))
}

// 2. CONTINUATION flood: HEADERS without END_HEADERS, then CONTINUATION
// frames of valid header fields, up to 64 MiB. The proxy ends the
// connection (its header list limit is 256 KiB) long before that.
func TestFloodContinuationAfterACall(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	warmUp(t, p)
	m := startMeter(t, p)
	c := authedH2(t, p)
	w := watch(c)
	fragment := bytes.Repeat(floodField(), 16) // 16,192 bytes: one frame
	const limit = 64 << 20
	sent := 0
	err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: grpcHeaderBlock(floodGetVersion, "root:Milvus")})
	_ = c.conn.SetWriteDeadline(time.Now().Add(20 * time.Second))
	for err == nil && sent < limit {
		if err = c.fr.WriteContinuation(3, false, fragment); err == nil {
			sent += len(fragment)
		}
	}
	how, ok := w.waitEnd(10 * time.Second)
	t.Logf("CONTINUATION flood after a call: %s; %.1f MiB of CONTINUATION written (%v)", how, float64(sent)/(1<<20), err)
	if !ok {
		t.Errorf("CONTINUATION flood: %s", how)
	}
	if sent >= limit {
		t.Errorf("the proxy read the whole %d MiB of CONTINUATION", limit>>20)
	}
	m.bounded("CONTINUATION flood")
	c.conn.Close()
	m.settles("CONTINUATION flood")
}

// floodUnread floods a connection that never reads after its first call,
// and checks what the proxy holds meanwhile: whatever it must answer
// (ACKs) piles up, so it must stop reading or close the connection
// instead of queueing the answers.
func floodUnread(t *testing.T, what string, batch []byte, perBatch int) {
	_, p := startPair(t, harness.Options{})
	warmUp(t, p)
	m := startMeter(t, p)
	c := authedH2(t, p)
	const maxFrames = 4_000_000
	n, err := floodBatches(c, batch, perBatch, maxFrames, 10*time.Second)
	how := "the proxy read every frame"
	switch {
	case isTimeout(err):
		how = "the proxy stopped reading (back-pressure)"
	case err != nil:
		how = fmt.Sprintf("the connection ended: %v", err)
	}
	t.Logf("%s while never reading: %d frames written; %s", what, n, how)
	m.bounded(what)
	c.conn.Close()
	m.settles(what)
}

// 3. SETTINGS flood while never reading: each SETTINGS must be ACKed, and
// the ACKs cannot leave.
func TestFloodSettingsNeverRead(t *testing.T) {
	batch := frameBatch(4096, func(fr *http2.Framer) error {
		return fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 65535})
	})
	floodUnread(t, "SETTINGS flood", batch, 4096)
}

// 4. PING flood while never reading: each PING must be answered.
func TestFloodPingNeverRead(t *testing.T) {
	batch := frameBatch(4096, func(fr *http2.Framer) error {
		return fr.WritePing(false, [8]byte{1, 2, 3, 4, 5, 6, 7, 8})
	})
	floodUnread(t, "PING flood", batch, 4096)
}

// grpcMessage frames payload as one uncompressed gRPC message.
func grpcMessage(payload []byte) []byte {
	msg := make([]byte, 5, 5+len(payload))
	msg[1], msg[2], msg[3], msg[4] = byte(len(payload)>>24), byte(len(payload)>>16), byte(len(payload)>>8), byte(len(payload))
	return append(msg, payload...)
}

// stalledStream opens stream 3, a bidirectional call whose backend
// handler, on the first request, waits a minute before it answers and
// reads nothing meanwhile, and sends further messages on it, honouring the proxy's
// windows, until the proxy grants no more for 2 s: the request direction
// is then full at every hop (backend, proxy, the client's window). It
// returns the watcher that read the proxy's frames meanwhile (and keeps
// reading) and the bytes sent.
func stalledStream(t *testing.T, c *floodConn) (*watcher, int) {
	t.Helper()
	req, err := proto.Marshal(&testgrpc.StreamingOutputCallRequest{
		ResponseParameters: []*testgrpc.ResponseParameters{{Size: 1, IntervalUs: 60_000_000}}})
	must(t, err)
	first := grpcMessage(req)
	must(t, c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, EndHeaders: true,
		BlockFragment: grpcHeaderBlock("/grpc.testing.TestService/FullDuplexCall", "root:Milvus")}))
	must(t, c.fr.WriteData(3, false, first))

	// Windows, as the proxy grants them.
	var mu sync.Mutex
	granted := make(chan struct{}, 1)
	streamWin, connWin := c.initWin-int64(len(first)), c.connWin-int64(len(first))
	w := &watcher{start: time.Now(), ended: make(chan struct{}), done: make(chan struct{}), rst: map[uint32]http2.ErrCode{}, status: map[uint32]string{}}
	go func() {
		defer close(w.done)
		defer close(w.ended)
		for {
			f, err := c.fr.ReadFrame()
			mu.Lock()
			w.mu.Lock()
			if err != nil {
				w.err, w.endedAt = err, time.Since(w.start)
				w.mu.Unlock()
				mu.Unlock()
				return
			}
			switch f := f.(type) {
			case *http2.WindowUpdateFrame:
				if f.StreamID == 0 {
					connWin += int64(f.Increment)
				} else if f.StreamID == 3 {
					streamWin += int64(f.Increment)
				}
				select {
				case granted <- struct{}{}:
				default:
				}
			case *http2.SettingsFrame:
				if v, ok := f.Value(http2.SettingInitialWindowSize); ok && !f.IsAck() {
					streamWin += int64(v) - c.initWin
					c.initWin = int64(v)
				}
			case *http2.GoAwayFrame:
				code := f.ErrCode
				w.goAway, w.goAwayMsg = &code, string(f.DebugData())
			case *http2.RSTStreamFrame:
				if _, ok := w.rst[f.StreamID]; !ok {
					w.rst[f.StreamID] = f.ErrCode
				}
			case *http2.MetaHeadersFrame:
				if f.StreamEnded() {
					w.status[f.StreamID] = regularValue(f, "grpc-status")
				}
			}
			w.mu.Unlock()
			mu.Unlock()
		}
	}()

	// Messages of 16 KiB, cut where the windows say.
	msg := grpcMessage(make([]byte, 16<<10-5))
	const maxBytes = 64 << 20
	sent, off := 0, 0
	start := time.Now()
	for sent < maxBytes && time.Since(start) < 30*time.Second {
		mu.Lock()
		n := min(streamWin, connWin, int64(len(msg)-off))
		if n > 0 {
			streamWin -= n
			connWin -= n
		}
		mu.Unlock()
		if n <= 0 {
			select {
			case <-granted:
				continue
			case <-time.After(2 * time.Second):
			}
			w.mu.Lock()
			rst, reset := w.rst[3]
			ended := w.err != nil || w.goAway != nil
			w.mu.Unlock()
			if st, done := w.status[3]; reset || ended || done {
				t.Fatalf("the stalled call ended while its request was sent: RST %v (%v), trailers %v (grpc-status %q), connection %v", rst, reset, done, st, w.err)
			}
			t.Logf("stream 3 stalled after %.1f MiB of request messages", float64(sent)/(1<<20))
			return w, sent
		}
		must(t, c.fr.WriteData(3, false, msg[off:off+int(n)]))
		sent += int(n)
		off = (off + int(n)) % len(msg)
	}
	t.Fatalf("the proxy kept granting window for %.1f MiB in %v: the call never stalled", float64(sent)/(1<<20), time.Since(start))
	return nil, 0
}

// 5. Empty frames: each costs the proxy a frame's work and carries nothing.
// Bound: what the proxy holds stays bounded (memory as for every flood),
// and so does the CPU per frame (5 µs, far above what reading a 9-byte
// frame costs); the proxy may also end the connection. "empty DATA" sends
// them on a stream whose request direction is full (the backend reads
// nothing more), where a relay that queues each one behind the waiting
// bytes would grow without bound; "empty CONTINUATION" keeps a header
// block open for ever. "DATA past the window" is the same stalled stream
// sent 64 MiB regardless of the window the proxy granted: the proxy must
// not hold it (RFC 9113 §6.9.1 makes it a FLOW_CONTROL_ERROR).
func TestFloodEmptyFrames(t *testing.T) {
	const cpuPerFrame = 5 * time.Microsecond
	// floodEmpty sends up to 2M copies of one empty frame on c and holds
	// the proxy to its memory and CPU bounds, then to settling back.
	floodEmpty := func(t *testing.T, what string, c *floodConn, w *watcher, m *meter, write func(fr *http2.Framer) error) {
		n, err := floodBatches(c, frameBatch(4096, write), 4096, 2_000_000, 15*time.Second)
		t.Logf("%s: %d frames written (%v)", what, n, err)
		time.Sleep(500 * time.Millisecond) // what is buffered is read
		cpu := m.bounded(what + " flood")
		if n > 0 && cpu > time.Duration(n)*cpuPerFrame {
			t.Errorf("%d %s frames cost the proxy %v of CPU, %v a frame, bound %v", n, what, cpu, cpu/time.Duration(n), cpuPerFrame)
		}
		c.conn.Close()
		<-w.done
		m.settles(what + " flood")
	}
	t.Run("empty DATA on a stalled stream", func(t *testing.T) {
		_, p := startPair(t, harness.Options{})
		warmUp(t, p)
		c := authedH2(t, p)
		w, _ := stalledStream(t, c)
		floodEmpty(t, "empty DATA", c, w, startMeter(t, p), func(fr *http2.Framer) error { return fr.WriteData(3, false, nil) })
	})
	t.Run("empty CONTINUATION", func(t *testing.T) {
		_, p := startPair(t, harness.Options{})
		warmUp(t, p)
		m := startMeter(t, p)
		c := authedH2(t, p)
		w := watch(c)
		must(t, c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: grpcHeaderBlock(floodGetVersion, "root:Milvus")}))
		floodEmpty(t, "empty CONTINUATION", c, w, m, func(fr *http2.Framer) error { return fr.WriteContinuation(3, false, nil) })
	})
	t.Run("DATA past the window on a stalled stream", func(t *testing.T) {
		_, p := startPair(t, harness.Options{})
		warmUp(t, p)
		c := authedH2(t, p)
		w, _ := stalledStream(t, c)
		m := startMeter(t, p)
		batch := frameBatch(4, func(fr *http2.Framer) error { return fr.WriteData(3, false, grpcMessage(make([]byte, 16<<10-5))) })
		n, err := floodBatches(c, batch, 4, 64<<20/(16<<10), 15*time.Second)
		time.Sleep(500 * time.Millisecond)
		w.mu.Lock()
		rst, reset := w.rst[3]
		how := fmt.Sprintf("RST_STREAM %v", rst)
		if !reset {
			how = "no RST_STREAM"
		}
		if w.goAway != nil {
			how += fmt.Sprintf(", GOAWAY %v", *w.goAway)
		}
		w.mu.Unlock()
		t.Logf("DATA past the window: %.1f MiB written (%v); %s", float64(n*16<<10)/(1<<20), err, how)
		m.bounded("DATA past the window")
		c.conn.Close()
		<-w.done
		m.settles("DATA past the window")
	})
}

// hpackBomb is a GetVersion header block that inserts one 4 KiB header into
// the HPACK dynamic table, then refers to it refs times, one byte each:
// 4,038 bytes of header list per byte sent.
func hpackBomb(refs int) []byte {
	b := grpcHeaderBlock(floodGetVersion, "root:Milvus")
	b = append(b, 0x40, 6) // literal with incremental indexing, new name
	b = append(b, "x-bomb"...)
	b = appendHpackInt(b, 7, 0, 4000)
	b = append(b, bytes.Repeat([]byte{'b'}, 4000)...)
	for range refs {
		b = append(b, 0x80|62) // the newest dynamic table entry
	}
	return b
}

// 6. HPACK bomb: a small header block that decodes into a huge header list
// (the dynamic table entry referenced thousands of times). Every such call
// is refused (RST_STREAM, error trailers, or the connection ended; never
// grpc-status 0), and repeated on stream after stream it costs the proxy
// bounded memory.
func TestFloodHPACKBomb(t *testing.T) {
	t.Run("one frame per stream", func(t *testing.T) {
		_, p := startPair(t, harness.Options{})
		warmUp(t, p)
		m := startMeter(t, p)
		c := authedH2(t, p)
		w := watch(c)
		bomb := hpackBomb(12000) // 16 KiB, 48 MB of header list
		sent := 0
		start := time.Now()
		var err error
		for i := range 500 {
			if time.Since(start) > 20*time.Second {
				break
			}
			id := uint32(2*i + 3)
			if err = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: bomb, EndHeaders: true}); err != nil {
				break
			}
			if err = c.fr.WriteData(id, true, make([]byte, 5)); err != nil {
				break
			}
			sent++
		}
		time.Sleep(time.Second)
		m.bounded("HPACK bomb, one frame per stream")
		checkBombs(t, w, sent, err)
		c.conn.Close()
		<-w.done
		m.settles("HPACK bomb, one frame per stream")
	})
	t.Run("HEADERS and CONTINUATION", func(t *testing.T) {
		_, p := startPair(t, harness.Options{})
		warmUp(t, p)
		m := startMeter(t, p)
		c := authedH2(t, p)
		w := watch(c)
		bomb := hpackBomb(60000) // 64 KiB, 242 MB of header list
		err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: bomb[:16<<10]})
		for off := 16 << 10; err == nil && off < len(bomb); off += 16 << 10 {
			err = c.fr.WriteContinuation(3, off+16<<10 >= len(bomb), bomb[off:min(off+16<<10, len(bomb))])
		}
		if err == nil {
			err = c.fr.WriteData(3, true, make([]byte, 5))
		}
		time.Sleep(time.Second)
		m.bounded("HPACK bomb over CONTINUATION")
		checkBombs(t, w, 1, err)
		c.conn.Close()
		<-w.done
		m.settles("HPACK bomb over CONTINUATION")
	})
}

// checkBombs fails the test if a bomb call succeeded, or if the proxy
// neither refused any nor ended the connection.
func checkBombs(t *testing.T, w *watcher, sent int, writeErr error) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	refused, accepted := 0, 0
	var firstRefusal string
	for id := uint32(3); id < uint32(2*sent+3); id += 2 {
		st, ended := w.status[id]
		code, reset := w.rst[id]
		switch {
		case ended && st == "0":
			accepted++
		case ended:
			refused++
			if firstRefusal == "" {
				firstRefusal = "trailers with grpc-status " + st
			}
		case reset:
			refused++
			if firstRefusal == "" {
				firstRefusal = fmt.Sprintf("RST_STREAM %v", code)
			}
		}
	}
	ended := "open"
	if w.goAway != nil {
		ended = fmt.Sprintf("GOAWAY %v %q", *w.goAway, w.goAwayMsg)
	} else if w.err != nil {
		ended = fmt.Sprintf("closed (%v)", w.err)
	}
	t.Logf("%d HPACK bombs sent (write error %v): %d refused (first: %s), %d accepted; connection %s", sent, writeErr, refused, firstRefusal, accepted, ended)
	if accepted > 0 {
		t.Errorf("%d HPACK bomb calls were forwarded and answered", accepted)
	}
	if refused == 0 && w.goAway == nil && w.err == nil {
		t.Errorf("the proxy neither refused an HPACK bomb nor ended the connection")
	}
}

// 7. A slow reader: a client that asks for a 256 MiB server stream,
// grants every window, and never reads its socket. Meanwhile other
// clients, whose calls share the proxy's backend connection, keep getting
// answers: every GetVersion within 2 s for 5 s. One client that does not
// read must not stall the others.
func TestFloodSlowReaderDoesNotStallOthers(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	warmUp(t, p)
	ctx := testCtx(t, 60*time.Second)
	others := []milvuspb.MilvusServiceClient{
		milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil)),
		milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil)),
	}
	for _, o := range others {
		must(t, getVersion(ctx, o, "root:Milvus"))
	}
	m := startMeter(t, p)
	c := authedH2(t, p, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
	must(t, c.fr.WriteWindowUpdate(0, 1<<31-1-65535))
	params := make([]*testgrpc.ResponseParameters, 256)
	for i := range params {
		params[i] = &testgrpc.ResponseParameters{Size: 1 << 20}
	}
	req, err := proto.Marshal(&testgrpc.StreamingOutputCallRequest{ResponseParameters: params})
	must(t, err)
	must(t, c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, EndHeaders: true,
		BlockFragment: grpcHeaderBlock("/grpc.testing.TestService/StreamingOutputCall", "root:Milvus")}))
	must(t, c.fr.WriteData(3, true, grpcMessage(req)))
	time.Sleep(2 * time.Second) // the socket's buffers fill

	var mu sync.Mutex
	var slowest time.Duration
	var calls, failed int
	var firstErr error
	var wg sync.WaitGroup
	end := time.Now().Add(5 * time.Second)
	for _, o := range others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				start := time.Now()
				err := getVersion(cctx, o, "root:Milvus")
				took := time.Since(start)
				cancel()
				mu.Lock()
				calls++
				slowest = max(slowest, took)
				if err != nil {
					failed++
					if firstErr == nil {
						firstErr = err
					}
				}
				mu.Unlock()
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	t.Logf("while one client did not read a 256 MiB stream: %d GetVersion calls by 2 other clients, %d failed (%v), slowest %v",
		calls, failed, firstErr, slowest.Round(time.Millisecond))
	if failed > 0 || slowest > 2*time.Second {
		t.Errorf("a client that does not read stalled the others: %d of %d calls failed (first: %v), slowest %v, bound 2 s",
			failed, calls, firstErr, slowest.Round(time.Millisecond))
	}
	m.bounded("slow reader")
	c.conn.Close()
	m.settles("slow reader")
	// And the others still get answers once it is gone.
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := getVersion(cctx, others[0], "root:Milvus"); err != nil {
		t.Errorf("GetVersion after the slow reader left: %v", err)
	}
}

// grpc-go's ping policy holds on both cores: PINGs closer than 5 s with
// nothing sent to the client in between are struck, and the third strike
// ends the connection with GOAWAY ENHANCE_YOUR_CALM "too_many_pings"
// (edge.PingMinInterval, edge.PingStrikes). A PING after the first call's
// answer is not struck.
func TestTooManyPingsGetGoAway(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	c := authedH2(t, p)
	w := watch(c)
	for i := range 6 {
		if err := c.fr.WritePing(false, [8]byte{byte(i)}); err != nil {
			break // the proxy closed the connection
		}
		time.Sleep(20 * time.Millisecond)
	}
	how, ok := w.waitEnd(5 * time.Second)
	t.Logf("6 PINGs in 120 ms: %s", how)
	w.mu.Lock()
	defer w.mu.Unlock()
	if !ok || w.goAway == nil || *w.goAway != http2.ErrCodeEnhanceYourCalm || w.goAwayMsg != "too_many_pings" {
		t.Fatalf("6 PINGs in 120 ms: %s, want GOAWAY ENHANCE_YOUR_CALM \"too_many_pings\"", how)
	}
}

// The frame relay ends a connection that sends frames that carry nothing
// (empty DATA, SETTINGS, PRIORITY) past edge's frame budget (1,000, then
// 500 a second) with GOAWAY ENHANCE_YOUR_CALM, as it does rapid reset.
// grpc-go has no such bound: it absorbs them (TestFloodEmptyFrames holds
// both cores to memory and CPU bounds).
func TestFrameRelayEndsEmptyFrameFloods(t *testing.T) {
	_, p := startPair(t, harness.Options{Extra: "forwarding: frames\n"})
	c := authedH2(t, p)
	w, _ := stalledStream(t, c)
	n, err := floodBatches(c, frameBatch(1000, func(fr *http2.Framer) error { return fr.WriteData(3, false, nil) }), 1000, 20_000, 10*time.Second)
	how, ok := w.waitEnd(5 * time.Second)
	t.Logf("%d empty DATA frames written (%v): %s", n, err, how)
	w.mu.Lock()
	defer w.mu.Unlock()
	if !ok || w.goAway == nil || *w.goAway != http2.ErrCodeEnhanceYourCalm || w.goAwayMsg != "too many frames that carry nothing" {
		t.Fatalf("empty DATA flood: %s, want GOAWAY ENHANCE_YOUR_CALM \"too many frames that carry nothing\"", how)
	}
}
