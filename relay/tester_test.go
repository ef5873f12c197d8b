package relay

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"

	"github.com/authproxy/authproxy/admission"
	"github.com/authproxy/authproxy/auth"
	"github.com/authproxy/authproxy/credentials"
	"github.com/authproxy/authproxy/edge"
	"github.com/authproxy/authproxy/rbac"
)

// relayTester drives a real Relay frame by frame, as x/net/http2's
// serverTester (v0.62.0, server_common_test.go) drives its server: the
// test writes the client's frames and reads what the relay sends it; on
// the other side, backendPeer is a hand-driven HTTP/2 server the relay
// dials, which reads what the relay forwards and answers frame by frame. Everything runs in a
// testing/synctest bubble over memPipe, so timeouts pass in no time, quiet
// checks that nothing more was sent, and a frame that never comes is a
// deadlock the bubble reports instead of a hung test.
type relayTester struct {
	t    *testing.T
	r    *Relay
	conn *memConn // the client's end
	fr   *http2.Framer
	henc *hpack.Encoder
	hbuf bytes.Buffer

	dials    chan *backendPeer
	dialErr  error
	realDial func(context.Context) (net.Conn, error) // the relay's own

	mu       sync.Mutex
	observed []codes.Code
}

// testMethod is a forwarded method for the tests.
const testMethod = "/milvus.proto.milvus.MilvusService/Search"

// runRelay runs f in a bubble against a fresh Relay built with opts, the
// client's preface and SETTINGS exchanged.
func runRelay(t *testing.T, f func(rt *relayTester), opts ...func(*Options)) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		rt := newRelayTester(t, opts...)
		rt.handshake()
		f(rt)
	})
}

func newRelayTester(t *testing.T, opts ...func(*Options)) *relayTester {
	rt := &relayTester{t: t, dials: make(chan *backendPeer, 8)}
	o := Options{
		Backend:        "backend.test:19530",
		Admitter:       admission.NewAdmitter(admission.Options{}), // authentication off
		MaxRecvMsgSize: 1 << 10,
		MaxSendMsgSize: 1 << 10,
		Observe: func(_ context.Context, _ string, _ *auth.Identity, _ time.Time, code codes.Code) {
			rt.mu.Lock()
			rt.observed = append(rt.observed, code)
			rt.mu.Unlock()
		},
		Logger: slog.New(slog.DiscardHandler),
	}
	for _, f := range opts {
		f(&o)
	}
	rt.r = New(o)
	rt.realDial = rt.r.backend.dial
	rt.r.backend.dial = func(context.Context) (net.Conn, error) {
		if rt.dialErr != nil {
			return nil, rt.dialErr
		}
		a, b := memPipe()
		rt.dials <- newBackendPeer(t, b)
		return a, nil
	}
	client, server := memPipe()
	rt.conn = client
	rt.fr = http2.NewFramer(client, client)
	rt.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	rt.fr.MaxHeaderListSize = 16 << 20
	rt.henc = hpack.NewEncoder(&rt.hbuf)
	go rt.r.serveConn(server)
	t.Cleanup(func() {
		rt.r.Stop()
		client.Close()
	})
	return rt
}

// handshake sends the client's preface and SETTINGS and reads the relay's.
func (rt *relayTester) handshake() {
	rt.t.Helper()
	if _, err := rt.conn.Write([]byte(http2.ClientPreface)); err != nil {
		rt.t.Fatal(err)
	}
	rt.must(rt.fr.WriteSettings())
	sf := rt.read().(*http2.SettingsFrame)
	if v, _ := sf.Value(http2.SettingInitialWindowSize); v != streamWindow {
		rt.t.Fatalf("initial window %d", v)
	}
	if wu := rt.read().(*http2.WindowUpdateFrame); wu.StreamID != 0 || wu.Increment != connWindow-65535 {
		rt.t.Fatalf("connection window update %+v", wu)
	}
	rt.must(rt.fr.WriteSettingsAck())
	if f := rt.read().(*http2.SettingsFrame); !f.IsAck() {
		rt.t.Fatal("our SETTINGS were not acknowledged")
	}
}

func (rt *relayTester) must(err error) {
	rt.t.Helper()
	if err != nil {
		rt.t.Fatal(err)
	}
}

// read returns the relay's next frame.
func (rt *relayTester) read() http2.Frame {
	rt.t.Helper()
	f, err := rt.fr.ReadFrame()
	if err != nil {
		rt.t.Fatalf("reading the relay's next frame: %v", err)
	}
	return f
}

// next returns the relay's next frame but window updates, which depend on
// refund batching the tests that are not about flow control ignore.
func (rt *relayTester) next() http2.Frame {
	rt.t.Helper()
	for {
		if f := rt.read(); !isWindowUpdate(f) {
			return f
		}
	}
}

func isWindowUpdate(f http2.Frame) bool {
	_, ok := f.(*http2.WindowUpdateFrame)
	return ok
}

// quiet checks, once the bubble is idle, that the relay sent nothing more
// (window updates aside).
func (rt *relayTester) quiet() {
	rt.t.Helper()
	synctest.Wait()
	for rt.conn.buffered() > 0 {
		if f := rt.read(); !isWindowUpdate(f) {
			rt.t.Fatalf("unexpected frame %v", f)
		}
	}
}

// request fields for a gRPC call of testMethod, then extra name/value pairs.
func request(extra ...string) []hpack.HeaderField {
	fs := []hpack.HeaderField{
		{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
		{Name: ":path", Value: testMethod}, {Name: ":authority", Value: "milvus"},
		{Name: "content-type", Value: "application/grpc"},
	}
	return append(fs, pairs(extra...)...)
}

func pairs(kv ...string) []hpack.HeaderField {
	var fs []hpack.HeaderField
	for i := 0; i+1 < len(kv); i += 2 {
		fs = append(fs, hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return fs
}

func encode(enc *hpack.Encoder, buf *bytes.Buffer, fields []hpack.HeaderField) []byte {
	buf.Reset()
	for _, f := range fields {
		_ = enc.WriteField(f)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// headers writes a header block: HEADERS, and CONTINUATION past frameSize.
func (rt *relayTester) headers(id uint32, end bool, fields []hpack.HeaderField) {
	rt.t.Helper()
	block := encode(rt.henc, &rt.hbuf, fields)
	first := block[:min(len(block), frameSize)]
	rt.must(rt.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: end, EndHeaders: len(first) == len(block)}))
	for rest := block[len(first):]; len(rest) > 0; {
		n := min(len(rest), frameSize)
		rt.must(rt.fr.WriteContinuation(id, n == len(rest), rest[:n]))
		rest = rest[n:]
	}
}

func (rt *relayTester) data(id uint32, end bool, b []byte) {
	rt.t.Helper()
	rt.must(rt.fr.WriteData(id, end, b))
}

// call opens stream id with a whole unary request: HEADERS, then msg as
// one gRPC message that ends the stream.
func (rt *relayTester) call(id uint32, msg []byte, extra ...string) {
	rt.t.Helper()
	rt.headers(id, false, request(extra...))
	rt.data(id, true, frame(0, msg))
}

// wantStatus reads a refusal the relay answers itself: trailers-only
// HEADERS with grpc-status code, ending the stream; it returns the
// grpc-message.
func (rt *relayTester) wantStatus(id uint32, code codes.Code) string {
	rt.t.Helper()
	got := rt.next()
	h, ok := got.(*http2.MetaHeadersFrame)
	if !ok || h.StreamID != id || !h.StreamEnded() {
		rt.t.Fatalf("want trailers-only on stream %d, got %v", id, got)
	}
	if got := fieldValue(h, "grpc-status"); got != strconv.Itoa(int(code)) {
		rt.t.Fatalf("stream %d: grpc-status %s (%s), want %d", id, got, fieldValue(h, "grpc-message"), code)
	}
	return fieldValue(h, "grpc-message")
}

func (rt *relayTester) wantRST(id uint32, code http2.ErrCode) {
	rt.t.Helper()
	got := rt.next()
	if f, ok := got.(*http2.RSTStreamFrame); !ok || f.StreamID != id || f.ErrCode != code {
		rt.t.Fatalf("want RST_STREAM %v on stream %d, got %v", code, id, got)
	}
}

// wantGoAway reads a GOAWAY, then the end of the connection.
func (rt *relayTester) wantGoAway(code http2.ErrCode, debug string) {
	rt.t.Helper()
	f, ok := rt.next().(*http2.GoAwayFrame)
	if !ok || f.ErrCode != code || string(f.DebugData()) != debug {
		rt.t.Fatalf("want GOAWAY %v %q, got %v", code, debug, f)
	}
	rt.wantClosed()
}

// wantClosed reads to the end of the connection.
func (rt *relayTester) wantClosed() {
	rt.t.Helper()
	for {
		f, err := rt.fr.ReadFrame()
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			rt.t.Fatalf("want the connection closed: %v", err)
		}
		if !isWindowUpdate(f) {
			rt.t.Fatalf("want the connection closed, got %v", f)
		}
	}
}

// wantObserved checks the calls counted so far.
func (rt *relayTester) wantObserved(codes ...codes.Code) {
	rt.t.Helper()
	synctest.Wait()
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if len(rt.observed) != len(codes) {
		rt.t.Fatalf("observed %v, want %v", rt.observed, codes)
	}
	for i := range codes {
		if rt.observed[i] != codes[i] {
			rt.t.Fatalf("observed %v, want %v", rt.observed, codes)
		}
	}
}

// open is how many streams the relay still keeps on the client connection.
func (rt *relayTester) open() int {
	synctest.Wait()
	rt.r.mu.Lock()
	defer rt.r.mu.Unlock()
	n := 0
	for cc := range rt.r.conns {
		cc.smu.Lock()
		n += len(cc.streams)
		cc.smu.Unlock()
	}
	return n
}

func (rt *relayTester) wantOpenConns(n int) {
	rt.t.Helper()
	synctest.Wait()
	rt.r.mu.Lock()
	defer rt.r.mu.Unlock()
	if len(rt.r.conns) != n {
		rt.t.Fatalf("%d client connections, want %d", len(rt.r.conns), n)
	}
}

func (rt *relayTester) wantOpen(n int) {
	rt.t.Helper()
	if got := rt.open(); got != n {
		rt.t.Fatalf("%d streams kept, want %d", got, n)
	}
}

// backend returns the backend connection the relay dialled, handshake done.
func (rt *relayTester) backend() *backendPeer {
	rt.t.Helper()
	p := <-rt.dials
	p.handshake()
	return p
}

// noDial checks that the relay dialled no backend.
func (rt *relayTester) noDial() {
	rt.t.Helper()
	synctest.Wait()
	select {
	case <-rt.dials:
		rt.t.Fatal("the relay dialled the backend")
	default:
	}
}

// backendPeer is the backend's end of a connection the relay dialled: a
// hand-driven HTTP/2 server.
type backendPeer struct {
	t    *testing.T
	conn *memConn
	fr   *http2.Framer
	henc *hpack.Encoder
	hbuf bytes.Buffer
}

func newBackendPeer(t *testing.T, c *memConn) *backendPeer {
	p := &backendPeer{t: t, conn: c, fr: http2.NewFramer(c, c)}
	p.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	p.henc = hpack.NewEncoder(&p.hbuf)
	t.Cleanup(func() { c.Close() })
	return p
}

func (p *backendPeer) must(err error) {
	p.t.Helper()
	if err != nil {
		p.t.Fatal(err)
	}
}

// handshake reads the relay's preface, SETTINGS and window update, and
// answers with the backend's SETTINGS.
func (p *backendPeer) handshake(settings ...http2.Setting) {
	p.t.Helper()
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(p.conn, preface); err != nil || string(preface) != http2.ClientPreface {
		p.t.Fatalf("backend preface %q %v", preface, err)
	}
	if sf, ok := p.read().(*http2.SettingsFrame); !ok || sf.IsAck() {
		p.t.Fatal("no SETTINGS from the relay")
	}
	p.must(p.fr.WriteSettings(settings...))
	p.must(p.fr.WriteSettingsAck())
}

// read returns the next frame the relay forwarded but window updates and
// SETTINGS acknowledgements.
func (p *backendPeer) read() http2.Frame {
	p.t.Helper()
	for {
		f, err := p.fr.ReadFrame()
		if err != nil {
			p.t.Fatalf("backend: reading the relay's next frame: %v", err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && sf.IsAck() {
			continue
		}
		if !isWindowUpdate(f) {
			return f
		}
	}
}

func (p *backendPeer) wantHeaders() *http2.MetaHeadersFrame {
	p.t.Helper()
	h, ok := p.read().(*http2.MetaHeadersFrame)
	if !ok {
		p.t.Fatalf("backend: want HEADERS, got %v", h)
	}
	return h
}

func (p *backendPeer) wantData(end bool, want []byte) {
	p.t.Helper()
	var got []byte
	for {
		d, ok := p.read().(*http2.DataFrame)
		if !ok {
			p.t.Fatalf("backend: want DATA, got %v", d)
		}
		got = append(got, d.Data()...)
		if len(got) >= len(want) {
			if !bytes.Equal(got, want) || d.StreamEnded() != end {
				p.t.Fatalf("backend: DATA %q end %v, want %q end %v", got, d.StreamEnded(), want, end)
			}
			return
		}
	}
}

func (p *backendPeer) wantRST(code http2.ErrCode) {
	p.t.Helper()
	f, ok := p.read().(*http2.RSTStreamFrame)
	if !ok || f.ErrCode != code {
		p.t.Fatalf("backend: want RST_STREAM %v, got %v", code, f)
	}
}

// quiet checks, once the bubble is idle, that the relay forwarded nothing more.
func (p *backendPeer) quiet() {
	p.t.Helper()
	synctest.Wait()
	for p.conn.buffered() > 0 {
		f, err := p.fr.ReadFrame()
		if err != nil {
			p.t.Fatal(err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && sf.IsAck() {
			continue
		}
		if !isWindowUpdate(f) {
			p.t.Fatalf("backend: unexpected frame %v", f)
		}
	}
}

func (p *backendPeer) headers(id uint32, end bool, fields []hpack.HeaderField) {
	p.t.Helper()
	p.must(p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: encode(p.henc, &p.hbuf, fields), EndStream: end, EndHeaders: true}))
}

// answer sends a whole reply on stream id: HEADERS, msg, trailers with code.
func (p *backendPeer) answer(id uint32, msg []byte, code codes.Code) {
	p.t.Helper()
	p.headers(id, false, pairs(":status", "200", "content-type", "application/grpc"))
	p.must(p.fr.WriteData(id, false, frame(0, msg)))
	p.headers(id, true, pairs("grpc-status", strconv.Itoa(int(code))))
}

// wantReply reads the reply answer sent: headers, the message, trailers.
func (rt *relayTester) wantReply(id uint32, msg []byte, code codes.Code) {
	rt.t.Helper()
	if h, ok := rt.next().(*http2.MetaHeadersFrame); !ok || h.StreamID != id || h.StreamEnded() || h.PseudoValue("status") != "200" {
		rt.t.Fatalf("want response headers on %d, got %v", id, h)
	}
	if d, ok := rt.next().(*http2.DataFrame); !ok || d.StreamID != id || !bytes.Equal(d.Data(), frame(0, msg)) {
		rt.t.Fatalf("want the reply message on %d, got %v", id, d)
	}
	rt.wantStatus(id, code)
}

// The unit tests run with the ownership checks on (owner.go), and a run
// of them all checks that the frame tests walked every transition the
// table allows.
func TestMain(m *testing.M) {
	checkOwners = true
	var mu sync.Mutex
	walked := map[[2]int]bool{}
	onTransition = func(from streamState, ev event) {
		mu.Lock()
		walked[[2]int{int(from.phase()), int(ev)}] = true
		mu.Unlock()
	}
	code := m.Run()
	if f := flag.Lookup("test.run"); code == 0 && f != nil && f.Value.String() == "" {
		if missing := unwalked(walked); len(missing) > 0 {
			fmt.Println("FAIL: transitions no frame test walked:", missing)
			code = 1
		}
	}
	os.Exit(code)
}

// unwalked lists the legal (phase, event) pairs not in walked; the events
// of the directions count once in any phase.
func unwalked(walked map[[2]int]bool) []string {
	var missing []string
	for ev := range numEvents {
		if ev >= evRemoteEnd {
			any := false
			for p := phaseAdmitting; p <= phaseRefused; p++ {
				any = any || walked[[2]int{int(p), int(ev)}]
			}
			if !any {
				missing = append(missing, ev.String())
			}
			continue
		}
		for p := phaseAdmitting; p <= phaseRefused; p++ {
			if _, ok := p.next(ev); ok && !walked[[2]int{int(p), int(ev)}] {
				missing = append(missing, p.String()+" "+ev.String())
			}
		}
	}
	return missing
}

// forwarded opens a unary call on id with msg, and reads it where the relay
// forwarded it: on b, or on the backend it dials when b is nil. It returns
// that backend and the upstream HEADERS.
func (rt *relayTester) forwarded(b *backendPeer, id uint32, msg []byte, extra ...string) (*backendPeer, *http2.MetaHeadersFrame) {
	rt.t.Helper()
	rt.call(id, msg, extra...)
	if b == nil {
		b = rt.backend()
	}
	h := b.wantHeaders()
	b.wantData(true, frame(0, msg))
	return b, h
}

// answered has b answer the call of h with msg and code, and reads the
// reply on the client's stream id.
func (rt *relayTester) answered(b *backendPeer, h *http2.MetaHeadersFrame, id uint32, msg []byte, code codes.Code) {
	rt.t.Helper()
	b.answer(h.StreamID, msg, code)
	rt.wantReply(id, msg, code)
}

// streaming opens a call on id with msg as its first message, not ending
// the stream, and reads it as forwarded (see forwarded).
func (rt *relayTester) streaming(b *backendPeer, id uint32, msg []byte) (*backendPeer, *http2.MetaHeadersFrame) {
	rt.t.Helper()
	rt.headers(id, false, request())
	rt.data(id, false, frame(0, msg))
	if b == nil {
		b = rt.backend()
	}
	h := b.wantHeaders()
	b.wantData(false, frame(0, msg))
	return b, h
}

// withAdmission turns authentication on, and with authz the RBAC decision:
// alice (password "pw") holds role reader, which may Search collection
// books in db1; nobody (same password) holds no role.
func withAdmission(t *testing.T, authz bool) func(*Options) {
	logger := slog.New(slog.DiscardHandler)
	store, err := credentials.OpenFile(filepath.Join(t.TempDir(), "credentials.yaml"), credentials.FileOptions{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	hash, err := credentials.HashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Update(context.Background(), func(s *credentials.Set) error {
		s.PutRole(&credentials.Role{Name: "reader"})
		s.PutUser(&credentials.User{Name: "alice", PasswordHash: hash, Roles: []string{"reader"}})
		s.PutUser(&credentials.User{Name: "nobody", PasswordHash: hash})
		s.PutGrant(&credentials.Grant{Role: "reader", Object: "Collection", ObjectName: "books", DB: "db1", Privilege: "Search"})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(auth.VerifierOptions{Store: store, CacheSize: 10, CacheTTL: time.Minute, MaxConcurrentHashes: 1})
	if err != nil {
		t.Fatal(err)
	}
	opts := admission.Options{Authn: auth.NewAuthenticator(v, edge.NewFailureLog(logger), true)}
	if authz {
		table, err := rbac.NewTable()
		if err != nil {
			t.Fatal(err)
		}
		opts.Authz = rbac.NewAuthorizer(store, table, rbac.Options{}, logger, nil)
	}
	return func(o *Options) { o.Admitter = admission.NewAdmitter(opts) }
}

// withAuthn turns authentication on, without RBAC.
func withAuthn(t *testing.T) func(*Options) { return withAdmission(t, false) }

func token(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}
