package relay

import (
	"context"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/authproxy/authproxy/auth"
	"github.com/authproxy/authproxy/edge"
)

// prefaceTimeout bounds how long a new connection may take to send its
// preface and first frames.
const prefaceTimeout = 10 * time.Second

// clientConn is one client connection: its reader goroutine does all the
// work of the streams it opens.
type clientConn struct {
	r    *Relay
	conn net.Conn
	br   *readBuf
	fr   *http2.Framer
	w    *wconn
	ctx  context.Context // the peer, for the access log
	peer string
	cert *x509.Certificate

	smu     sync.Mutex
	streams map[uint32]*stream

	lastID  uint32 // reader only
	flushes flushSet
	// Window refunds gathered in a batch of frames (reader only).
	connRefund  uint32
	gateRefunds []*stream
	closing     atomic.Bool // GOAWAY sent: no new streams
}

func newClientConn(r *Relay, c net.Conn) *clientConn {
	cc := &clientConn{r: r, conn: c, br: newReadBuf(c), streams: map[uint32]*stream{}}
	cc.w, cc.fr = newWconn(c, cc.br)
	cc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	cc.fr.MaxHeaderListSize = maxHeaderListSize
	cc.fr.SetMaxReadFrameSize(frameSize)
	cc.peer = auth.HostOf(c.RemoteAddr().String())
	p := &peer.Peer{Addr: c.RemoteAddr(), LocalAddr: c.LocalAddr()}
	if r.opts.TLSState != nil {
		cc.cert = edge.VerifiedCert(r.opts.TLSState(c))
	}
	cc.ctx = peer.NewContext(context.Background(), p)
	return cc
}

func (cc *clientConn) serve() {
	defer cc.teardown()
	_ = cc.conn.SetReadDeadline(time.Now().Add(prefaceTimeout))
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(cc.br, preface); err != nil || string(preface) != http2.ClientPreface {
		return
	}
	cc.w.mu.Lock()
	cc.w.note(cc.w.fr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: maxConcurrentStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: streamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: maxHeaderListSize},
	))
	cc.w.note(cc.w.fr.WriteWindowUpdate(0, connWindow-65535))
	cc.w.mu.Unlock()
	if cc.w.flush() != nil {
		return
	}
	first := true
	for {
		f, err := cc.fr.ReadFrame()
		if first {
			_ = cc.conn.SetReadDeadline(time.Time{})
			first = false
		}
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				cc.resetStream(se.StreamID, se.Code)
				continue
			}
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				cc.w.mu.Lock()
				cc.w.note(cc.w.fr.WriteGoAway(cc.lastID, http2.ErrCode(ce), nil))
				cc.w.mu.Unlock()
				_ = cc.w.flush()
			}
			return
		}
		if err := cc.handle(f); err != nil {
			cc.w.mu.Lock()
			cc.w.note(cc.w.fr.WriteGoAway(cc.lastID, http2.ErrCodeProtocol, []byte(err.Error())))
			cc.w.mu.Unlock()
			_ = cc.w.flush()
			return
		}
		if cc.br.Buffered() == 0 {
			cc.refundBatch()
			cc.flushes.flushOwnLast(cc.w)
			if cc.w.err != nil {
				return
			}
		}
	}
}

func (cc *clientConn) handle(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		return cc.onHeaders(f)
	case *http2.DataFrame:
		cc.onData(f)
	case *http2.WindowUpdateFrame:
		cc.onWindowUpdate(f)
	case *http2.RSTStreamFrame:
		if s := cc.stream(f.StreamID); s != nil {
			cc.forget(s)
			cc.cancel(s, &cc.flushes)
		}
	case *http2.SettingsFrame:
		return cc.w.onSettings(f, func(delta int64) {
			cc.smu.Lock()
			for _, st := range cc.streams {
				st.down.win += delta
			}
			cc.smu.Unlock()
		}, nil)
	case *http2.PingFrame:
		cc.w.onPing(f)
	case *http2.GoAwayFrame:
		// The client opens no more streams; those open finish.
	case *http2.PushPromiseFrame:
		return errors.New("PUSH_PROMISE from a client")
	}
	return nil
}

func (cc *clientConn) stream(id uint32) *stream {
	cc.smu.Lock()
	defer cc.smu.Unlock()
	return cc.streams[id]
}

func (cc *clientConn) forget(s *stream) {
	cc.smu.Lock()
	delete(cc.streams, s.cid)
	cc.smu.Unlock()
}

// cancel ends a call the client reset or left: upstream too, and a check
// still running opens nothing. Not with s.mu held.
func (cc *clientConn) cancel(s *stream, fl *flushSet) {
	s.mu.Lock()
	s.canceled = true
	bc := s.bc
	s.mu.Unlock()
	if bc != nil {
		bc.reset(s, http2.ErrCodeCancel, fl)
	}
	cc.r.observe(s, codes.Canceled)
}

// resetStream answers a stream error: RST_STREAM to the client, and the
// call canceled. Not with the stream's mu held.
func (cc *clientConn) resetStream(id uint32, code http2.ErrCode) {
	if s := cc.stream(id); s != nil {
		cc.forget(s)
		cc.cancel(s, &cc.flushes)
	}
	cc.w.mu.Lock()
	cc.w.note(cc.w.fr.WriteRSTStream(id, code))
	cc.w.mu.Unlock()
}

func (cc *clientConn) onHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	if s := cc.stream(id); s != nil {
		// gRPC clients send no trailers.
		cc.resetStream(id, http2.ErrCodeProtocol)
		return nil
	}
	if id%2 == 0 || id <= cc.lastID {
		return fmt.Errorf("stream ID %d after %d", id, cc.lastID)
	}
	cc.lastID = id
	cc.smu.Lock()
	open := len(cc.streams)
	cc.smu.Unlock()
	if cc.closing.Load() || open >= maxConcurrentStreams {
		cc.resetStream(id, http2.ErrCodeRefusedStream)
		return nil
	}
	s := &stream{cc: cc, cid: id, method: f.PseudoValue("path"), start: time.Now(), clientDone: f.StreamEnded(), request: f.Fields}
	cc.w.mu.Lock()
	s.down.win = cc.w.initWin
	cc.w.mu.Unlock()
	cc.smu.Lock()
	cc.streams[id] = s
	cc.smu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Truncated {
		cc.fail(s, codes.ResourceExhausted, "authproxy: request headers over the limit", &cc.flushes)
		return nil
	}
	if ct := fieldValue(f, "content-type"); !strings.HasPrefix(ct, "application/grpc") || f.PseudoValue("method") != "POST" {
		cc.fail(s, codes.Unimplemented, "authproxy: not a gRPC request", &cc.flushes)
		return nil
	}
	s.grpcEncoding = fieldValue(f, "grpc-encoding")
	authn := cc.r.opts.Authn
	if authn == nil || !authn.Enabled() {
		cc.proceed(s, &cc.flushes)
		return nil
	}
	token := fieldValue(f, "authorization")
	call := auth.Call{Protocol: "grpc", Target: s.method, Peer: cc.peer, Cert: cc.cert}
	who, err, done := authn.QuickCheckToken(cc.ctx, token, call)
	if !done {
		// A hash, a bind or a key fetch: off this reader, so that the
		// connection's other calls go on meanwhile.
		s.authPending = true
		go cc.authenticate(s, token, call)
		return nil
	}
	cc.authenticated(s, who, err, &cc.flushes)
	return nil
}

// authenticate runs a check that waits, then carries on with the call.
func (cc *clientConn) authenticate(s *stream, token string, call auth.Call) {
	who, err := cc.r.opts.Authn.CheckToken(cc.ctx, token, call)
	var fl flushSet
	s.mu.Lock()
	s.authPending = false
	if !s.canceled {
		cc.authenticated(s, who, err, &fl)
	}
	s.mu.Unlock()
	fl.flush()
}

// authenticated refuses the call or carries it on. s.mu held.
func (cc *clientConn) authenticated(s *stream, who auth.Identity, err error, fl *flushSet) {
	if err != nil {
		cc.failStatus(s, auth.Status(err), fl)
		return
	}
	s.who = &who
	cc.proceed(s, fl)
}

// proceed authorizes the call and opens it upstream with what the client
// sent meanwhile. s.mu held.
func (cc *clientConn) proceed(s *stream, fl *flushSet) {
	ctx := cc.ctx
	if s.who != nil {
		ctx = auth.WithIdentity(ctx, *s.who)
	}
	for _, hf := range s.request {
		if hf.Name == "dbname" {
			ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("dbname", hf.Value))
			break
		}
	}
	s.ctx = ctx
	local := cc.r.opts.Local != nil && cc.r.opts.Local(s.method)
	fields := cc.upstreamFields(s, local)
	early := s.early
	s.early = nil
	if !local && cc.r.opts.Authorize != nil {
		if cc.r.opts.NeedsMessage(s.method) {
			s.gated, s.gate, s.pending = true, early, fields
			cc.w.windowUpdate(s.cid, len(early), fl)
			cc.decide(s, fl)
			return
		}
		filter, err := cc.r.opts.Authorize(ctx, s.method, nil)
		if err != nil {
			cc.failStatus(s, err, fl)
			return
		}
		s.filter = filter
	}
	cc.open(s, local, fields, s.clientDone && len(early) == 0, fl)
	if len(early) > 0 && s.bc != nil {
		s.bc.sendData(s, early, s.clientDone, false, fl)
	}
}

// upstreamFields is the header list sent upstream: the pseudo-headers,
// te, then the client's keys the edge policy lets through, then the
// identity. The in-process server gets the identity established here and
// the client's address instead.
func (cc *clientConn) upstreamFields(s *stream, local bool) []hpack.HeaderField {
	out := make([]hpack.HeaderField, 0, len(s.request)+3)
	for _, hf := range s.request {
		if hf.IsPseudo() {
			out = append(out, hf)
		}
	}
	out = append(out, hpack.HeaderField{Name: "te", Value: "trailers"})
	policy := cc.r.opts.Headers
	for _, hf := range s.request {
		if !hf.IsPseudo() && !policy.Strips(hf.Name) {
			out = append(out, hf)
		}
	}
	if local {
		out = append(out, hpack.HeaderField{Name: edge.PeerKey, Value: cc.conn.RemoteAddr().String()})
		if s.who != nil {
			out = append(out, hpack.HeaderField{Name: edge.RelayedIdentityKey, Value: auth.EncodeRelayedIdentity(*s.who), Sensitive: true})
		}
		return out
	}
	if key := policy.IdentityHeader(); key != "" && s.who != nil {
		out = append(out, hpack.HeaderField{Name: key, Value: s.who.User})
	}
	return out
}

// open sends the call upstream.
func (cc *clientConn) open(s *stream, local bool, fields []hpack.HeaderField, endStream bool, fl *flushSet) {
	up := cc.r.backend
	if local {
		up = cc.r.local
	}
	bc, err := up.pick()
	if err != nil {
		cc.fail(s, codes.Unavailable, fmt.Sprintf("authproxy: backend %s unavailable: %v", up.name, err), fl)
		return
	}
	bc.open(s, fields, endStream, fl)
}

// decide runs the authorizer on the first request message once it is
// whole, then opens the call with the message. s.mu held.
func (cc *clientConn) decide(s *stream, fl *flushSet) {
	payload, complete, err := firstMessage(s.gate, s.grpcEncoding, cc.r.opts.MaxRecvMsgSize)
	if err != nil {
		cc.fail(s, codes.ResourceExhausted, "authproxy: "+err.Error(), fl)
		return
	}
	if !complete && !s.clientDone {
		return
	}
	filter, err := cc.r.opts.Authorize(s.ctx, s.method, mem.BufferSlice{mem.SliceBuffer(payload)})
	if err != nil {
		cc.failStatus(s, err, fl)
		return
	}
	s.filter, s.gated = filter, false
	gathered, fields := s.gate, s.pending
	s.gate, s.pending = nil, nil
	cc.open(s, false, fields, s.clientDone && len(gathered) == 0, fl)
	if len(gathered) > 0 && s.bc != nil {
		s.bc.sendData(s, gathered, s.clientDone, true, fl)
	}
}

// refundBatch sends the window refunds gathered while the reader had
// frames buffered: one update per gated stream.
func (cc *clientConn) refundBatch() {
	if len(cc.gateRefunds) == 0 {
		return
	}
	cc.w.mu.Lock()
	for _, s := range cc.gateRefunds {
		// A client that ended its stream sends nothing more on it.
		if s.gateRefund > 0 && !s.clientDone {
			cc.w.note(cc.w.fr.WriteWindowUpdate(s.cid, uint32(s.gateRefund)))
			s.gateRefund = 0
		}
	}
	cc.w.mu.Unlock()
	cc.gateRefunds = cc.gateRefunds[:0]
}

func (cc *clientConn) onData(f *http2.DataFrame) {
	flowLen := f.Header().Length
	data := f.Data()
	// The connection window is refunded on receipt (what waits is bounded
	// by the stream windows instead), a quarter of it at a time.
	cc.connRefund += flowLen
	cc.w.mu.Lock()
	if cc.connRefund >= connWindow/4 {
		cc.w.note(cc.w.fr.WriteWindowUpdate(0, cc.connRefund))
		cc.connRefund = 0
	}
	if pad := flowLen - uint32(len(data)); pad > 0 {
		cc.w.note(cc.w.fr.WriteWindowUpdate(f.StreamID, pad))
	}
	cc.w.mu.Unlock()
	s := cc.stream(f.StreamID)
	if s == nil {
		if f.StreamID <= cc.lastID {
			cc.resetStream(f.StreamID, http2.ErrCodeStreamClosed)
		}
		return
	}
	s.mu.Lock()
	if s.clientDone {
		s.mu.Unlock()
		cc.resetStream(f.StreamID, http2.ErrCodeStreamClosed)
		return
	}
	defer s.mu.Unlock()
	s.clientDone = f.StreamEnded()
	switch {
	case s.authPending:
		// Held, unrefunded, until the call is authenticated: the stream
		// window bounds it.
		s.early = append(s.early, data...)
	case s.gated:
		if len(s.gate) == 0 && len(data) >= 5 {
			// The message's length is known: one allocation for all of it.
			n := int(binary.BigEndian.Uint32(data[1:5]))
			s.gate = make([]byte, 0, 5+min(n, cc.r.opts.MaxRecvMsgSize))
		}
		s.gate = append(s.gate, data...)
		// The gathered bytes are refunded by the batch (the reader's).
		if s.gateRefund == 0 {
			cc.gateRefunds = append(cc.gateRefunds, s)
		}
		s.gateRefund += len(data)
		cc.decide(s, &cc.flushes)
	case s.bc == nil || s.bc.stream(s.bid) != s:
		// Refused before it was opened, or already answered.
	default:
		s.bc.sendData(s, data, f.StreamEnded(), false, &cc.flushes)
	}
}

func (cc *clientConn) onWindowUpdate(f *http2.WindowUpdateFrame) {
	var one *stream
	if f.StreamID != 0 {
		if one = cc.stream(f.StreamID); one == nil {
			return
		}
	}
	cc.w.mu.Lock()
	cc.smu.Lock()
	ms := cc.w.grant(f, cc.streams, one, toClient)
	for _, m := range ms {
		// A call the backend ended is forgotten once its end has left.
		if m.s.closedToUser && len(m.s.down.q) == 0 {
			delete(cc.streams, m.s.cid)
		}
	}
	cc.smu.Unlock()
	cc.w.mu.Unlock()
	cc.refundBackends(ms)
}

// moved is how many bytes of a stream's queue left, and how many of
// those the sending side still has to be refunded for.
type moved struct {
	s      *stream
	refund int
}

func movedOf(s *stream, n int, free *int64) moved {
	f := min(int64(n), *free)
	*free -= f
	return moved{s: s, refund: n - int(f)}
}

func (cc *clientConn) refundBackends(ms []moved) {
	for _, m := range ms {
		if m.s.bc != nil {
			m.s.bc.w.refund(m.s, toBackend, m.refund, &cc.flushes)
		}
	}
}

// sendHeaders queues HEADERS for the client behind any DATA waiting. The
// caller's flush set gets the connection.
func (cc *clientConn) sendHeaders(s *stream, fields []hpack.HeaderField, endStream bool, fl *flushSet) {
	cc.w.mu.Lock()
	if s.closedToUser {
		cc.w.mu.Unlock()
		return
	}
	s.headersToUser = true
	s.closedToUser = endStream
	s.down.q = append(s.down.q, item{headers: fields, endStream: endStream})
	cc.w.send(s.cid, &s.down)
	cc.w.mu.Unlock()
	fl.add(cc.w)
}

// sendData forwards response bytes; it returns how many of those that
// left at once the backend is to be refunded for.
func (cc *clientConn) sendData(s *stream, data []byte, endStream, refunded bool, fl *flushSet) int {
	cc.w.mu.Lock()
	defer cc.w.mu.Unlock()
	fl.add(cc.w)
	if s.closedToUser {
		return len(data)
	}
	s.closedToUser = endStream
	return cc.w.forward(s, toClient, data, endStream, refunded).refund
}

func (cc *clientConn) failStatus(s *stream, err error, fl *flushSet) {
	st := status.Convert(err)
	cc.fail(s, st.Code(), st.Message(), fl)
}

// fail answers a call the relay refuses: trailers only, or trailers after
// the response headers already sent.
func (cc *clientConn) fail(s *stream, code codes.Code, msg string, fl *flushSet) {
	cc.w.mu.Lock()
	trailersOnly := !s.headersToUser
	cc.w.mu.Unlock()
	var fields []hpack.HeaderField
	if trailersOnly {
		fields = append(fields, hpack.HeaderField{Name: ":status", Value: "200"}, hpack.HeaderField{Name: "content-type", Value: "application/grpc"})
	}
	fields = append(fields, hpack.HeaderField{Name: "grpc-status", Value: strconv.Itoa(int(code))},
		hpack.HeaderField{Name: "grpc-message", Value: encodeGrpcMessage(msg)})
	cc.sendHeaders(s, fields, true, fl)
	cc.forgetWhenDrained(s)
	cc.r.observe(s, code)
}

// forgetWhenDrained drops a stream the client has been sent the end of,
// once nothing of it waits for a window; otherwise the last window update
// that drains it does.
func (cc *clientConn) forgetWhenDrained(s *stream) {
	cc.w.mu.Lock()
	drained := len(s.down.q) == 0
	cc.w.mu.Unlock()
	if drained {
		cc.forget(s)
	}
}

// goAway tells the client to open no more streams.
func (cc *clientConn) goAway() {
	cc.closing.Store(true)
	cc.w.mu.Lock()
	cc.w.note(cc.w.fr.WriteGoAway(1<<31-1, http2.ErrCodeNo, nil))
	cc.w.mu.Unlock()
	_ = cc.w.flush()
	go func() {
		// Close once the streams are done.
		for {
			cc.smu.Lock()
			n := len(cc.streams)
			cc.smu.Unlock()
			if n == 0 {
				cc.conn.Close()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
}

// teardown cancels what is still open upstream.
func (cc *clientConn) teardown() {
	cc.conn.Close()
	cc.smu.Lock()
	streams := cc.streams
	cc.streams = map[uint32]*stream{}
	cc.smu.Unlock()
	var fl flushSet
	for _, s := range streams {
		cc.cancel(s, &fl)
	}
	fl.flush()
}

// encodeGrpcMessage percent-encodes a status message as gRPC requires.
func encodeGrpcMessage(msg string) string {
	var b strings.Builder
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c >= ' ' && c <= '~' && c != '%' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// fieldValue is the first value of a regular header field ("" if absent).
func fieldValue(f *http2.MetaHeadersFrame, name string) string {
	for _, hf := range f.RegularFields() {
		if hf.Name == name {
			return hf.Value
		}
	}
	return ""
}
