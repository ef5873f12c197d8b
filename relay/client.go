package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/authproxy/authproxy/admission"
	"github.com/authproxy/authproxy/edge"
)

// prefaceTimeout bounds how long a new connection may take to send its
// preface and its first request, as the port's sniffer does for the
// grpc-go core.
const prefaceTimeout = 10 * time.Second

// restAfter is how long a connection must have waited for a request to
// count as one that rests between requests (see serve).
const restAfter = time.Second

// goAway is an error that ends a client connection with a GOAWAY.
type goAway struct {
	code  http2.ErrCode
	debug string
}

func (g goAway) Error() string { return fmt.Sprintf("GOAWAY %v %s", g.code, g.debug) }

var (
	errTooManyResets = goAway{http2.ErrCodeEnhanceYourCalm, "too many stream resets"}
	errTooManyEmpty  = goAway{http2.ErrCodeEnhanceYourCalm, "too many frames that carry nothing"}
	errTooManyPings  = goAway{http2.ErrCodeEnhanceYourCalm, "too_many_pings"}
)

// clientConn is one client connection's HTTP/2 side: its reader goroutine
// reads the frames, keeps the protocol's rules, the windows and the stream
// states, and does all the forwarding work of the streams it opens. Its
// admission side, admit (admit.go), takes each gRPC stream through the
// admission step.
type clientConn struct {
	r     *Relay
	conn  net.Conn
	br    *readBuf
	fr    *http2.Framer
	w     *wconn
	ctx   context.Context // the peer, for the authenticator and the access log
	admit admitSide

	closing atomic.Bool // GOAWAY sent: no new streams

	// smu guards the stream map: the reader adds, any goroutine removes.
	smu     ownedMutex
	streams map[uint32]*stream

	// Owned by the reader goroutine, readerG (which serve moves to a fresh
	// goroutine on a hand-off).
	readerG goroutineLock
	lastID  uint32
	rest    *upstream // REST for this connection, dialled on its first such request
	flushes flushSet
	// Window refunds not sent yet: the connection's (connRefundDue), and
	// those gathered in a batch of frames for gated streams.
	connRefund  uint32
	connRecvWin int64 // what the client may still send on the connection
	gateRefunds []*stream
	last        *stream // the stream the last lookup found
	// What the client may send that costs work and moves nothing.
	resets, empty edge.FrameBudget
	lastPing      time.Time
	pingStrikes   int
}

func newClientConn(r *Relay, c net.Conn) *clientConn {
	cc := &clientConn{r: r, conn: c, br: newReadBuf(c), streams: map[uint32]*stream{}, connRecvWin: connWindow,
		resets: edge.NewFrameBudget(), empty: edge.NewFrameBudget(), readerG: newGoroutineLock()}
	cc.w, cc.fr = newWconn(c, cc.br)
	// Responses' headers are never indexed, as nginx's are not: a table
	// of them cost each connection about 1.2 KiB for as long as it stays
	// open (the encoder's, which the client's decoder mirrors), to save a
	// few dozen bytes per response.
	cc.w.henc.SetMaxDynamicTableSizeLimit(0)
	cc.br.beforeRead = func() error {
		cc.last = nil // an idle connection keeps no finished call
		return cc.flushes.flushOwnLast(cc.w)
	}
	if cc.w.nb = findNB(c); cc.w.nb != nil {
		writable := cc.onWritable
		cc.w.nb.onDrained.Store(&writable)
	}
	cc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	cc.fr.MaxHeaderListSize = maxHeaderListSize
	cc.fr.SetMaxReadFrameSize(frameSize)
	cc.admit = admitSide{cc: cc, adm: r.opts.Admitter, remote: c.RemoteAddr().String()}
	p := &peer.Peer{Addr: c.RemoteAddr(), LocalAddr: c.LocalAddr()}
	if r.opts.TLSState != nil {
		cc.admit.cert = edge.VerifiedCert(r.opts.TLSState(c))
	}
	cc.ctx = peer.NewContext(context.Background(), p)
	return cc
}

// start reads the client's preface and sends the relay's SETTINGS; false
// means the connection is done.
func (cc *clientConn) start() bool {
	_ = cc.conn.SetReadDeadline(time.Now().Add(prefaceTimeout))
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(cc.br, preface); err != nil || string(preface) != http2.ClientPreface {
		return false
	}
	cc.w.mu.Lock()
	cc.w.note(cc.w.fr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: maxConcurrentStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: streamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: maxHeaderListSize},
	))
	cc.w.note(cc.w.fr.WriteWindowUpdate(0, connWindow-65535))
	cc.w.mu.Unlock()
	return cc.w.flush() == nil
}

// serve reads and handles the client's frames until the connection ends,
// then calls end, which tears it down.
//
// A request's path (authentication, authorization, HPACK) grows the
// reader's stack to 8 KiB, and Go shrinks a parked stack only when less
// than a quarter of it is in use, which a reader waiting under its framer
// never is. So after a request that is likely to be followed by a rest
// (the connection's first, or one that came after a rest of restAfter),
// the reader hands the connection to a fresh goroutine before it waits:
// an idle connection waits on 4 KiB instead, 4 MiB less per thousand,
// and a busy one never pays for the goroutine start.
func (cc *clientConn) serve(end func()) {
	cc.readerG = newGoroutineLock() // the reader's fields move with it
	if cc.readFrames() {
		go cc.serve(end)
		return
	}
	end()
}

// readFrames reads and handles frames: false when the connection has
// ended, true when it handled a request and waits for more (see serve).
func (cc *clientConn) readFrames() (handOff bool) {
	for {
		handled, err := cc.handleBuffered()
		if !handled {
			var waitFrom time.Time
			if cc.br.Buffered() == 0 {
				waitFrom = time.Now() // the read may wait
			}
			var f http2.Frame
			if f, err = cc.fr.ReadFrame(); err == nil {
				if _, ok := f.(*http2.MetaHeadersFrame); ok {
					if cc.lastID == 0 {
						// The first request came in time.
						_ = cc.conn.SetReadDeadline(time.Time{})
						handOff = true
					}
					if !waitFrom.IsZero() && time.Since(waitFrom) >= restAfter {
						handOff = true
					}
				}
				err = cc.handle(f)
			}
		}
		if err != nil && !cc.survives(err) {
			return false
		}
		if cc.br.Buffered() == 0 {
			cc.refundBatch()
			if handOff {
				// Flushed here, not on the fresh goroutine's small stack
				// (otherwise the next read flushes: readBuf.beforeRead).
				return cc.flushes.flushOwnLast(cc.w) == nil
			}
		}
	}
}

// survives answers a failed frame: a stream error resets the stream and
// the connection goes on (true); any other error ends it, with a GOAWAY
// of its code where it has one. Apart from readFrames, whose loop would
// otherwise put the errors.As targets on the heap for every frame.
func (cc *clientConn) survives(err error) bool {
	if se := (http2.StreamError{}); errors.As(err, &se) {
		cc.resetStream(se.StreamID, se.Code)
		return true
	}
	var ce http2.ConnectionError
	ga := goAway{code: http2.ErrCodeProtocol}
	switch {
	case errors.As(err, &ce):
		ga.code = http2.ErrCode(ce)
	case errors.Is(err, http2.ErrFrameTooLarge):
		ga.code = http2.ErrCodeFrameSize
	case !errors.As(err, &ga):
		return false // the connection failed or ended: nothing to say
	}
	cc.w.mu.Lock()
	cc.w.note(cc.w.fr.WriteGoAway(cc.lastID, ga.code, []byte(ga.debug)))
	cc.w.mu.Unlock()
	if cc.w.flush() == nil {
		// Closing with unread input would reset the connection,
		// and the client could lose the GOAWAY: what it still
		// sends is read first, for a second and 1 MiB at most.
		_ = cc.conn.SetReadDeadline(time.Now().Add(time.Second))
		_, _ = io.CopyN(io.Discard, cc.br, 1<<20)
	}
	return false
}

// handle acts on one frame. It returns an http2.StreamError to reset a
// stream, and any other error to end the connection (an
// http2.ConnectionError with a GOAWAY of its code).
func (cc *clientConn) handle(f http2.Frame) error {
	cc.readerG.check()
	if d, ok := f.(*http2.DataFrame); ok {
		return cc.handleData(dataOf(d))
	}
	id := f.Header().StreamID
	if id > cc.lastID {
		// An idle stream: only HEADERS open it, and PRIORITY may name it.
		switch f.(type) {
		case *http2.MetaHeadersFrame, *http2.PriorityFrame:
		case *http2.RSTStreamFrame, *http2.WindowUpdateFrame:
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
	}
	if carriesNothing(f) && !cc.empty.Spend(time.Now()) {
		return errTooManyEmpty
	}
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		if f.HasPriority() && f.Priority.StreamDep == id {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		return cc.onHeaders(f)
	case *http2.WindowUpdateFrame:
		return cc.onWindowUpdate(f)
	case *http2.PriorityFrame:
		if f.StreamDep == id {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
	case *http2.RSTStreamFrame:
		if !cc.resets.Spend(time.Now()) {
			return errTooManyResets
		}
		if s := cc.stream(id); s != nil {
			cc.forget(s)
			cc.cancel(s, &cc.flushes)
		}
	case *http2.SettingsFrame:
		var ms []moved
		var ended []*stream
		err := cc.w.onSettings(f, func(delta int64) {
			cc.smu.Lock()
			for _, st := range cc.streams {
				st.down.win += delta
			}
			if delta > 0 {
				ms = cc.w.drain(cc.streams, toClient)
				ended = cc.ended(ms)
			}
			cc.smu.Unlock()
		}, nil)
		cc.afterSend(ms, ended, &cc.flushes)
		return err
	case *http2.PingFrame:
		if !f.IsAck() && !cc.pingAllowed() {
			return errTooManyPings
		}
		cc.w.onPing(f)
	case *http2.GoAwayFrame:
		// The client opens no more streams; those open finish.
	case *http2.PushPromiseFrame:
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	return nil
}

// carriesNothing says whether a client's frame other than DATA
// (dataFrame.carriesNothing) costs work and moves no call on: within
// edge's FrameBudget.
func carriesNothing(f http2.Frame) bool {
	switch f := f.(type) {
	case *http2.SettingsFrame:
		return !f.IsAck()
	case *http2.PriorityFrame:
		return true
	}
	return false
}

// handleBuffered handles the next frame if it is a DATA frame whole in
// the read buffer, the bulk of an upload: read in place (peekData) and
// forwarded before the buffer is read into again. False leaves the frame
// to the framer. Kept out of readFrames, whose frame is on the stack while
// the reader waits: an idle connection's stack must stay within 4 KiB
// (see serve).
func (cc *clientConn) handleBuffered() (bool, error) {
	d, n, ok := cc.br.joinData(frameSize)
	if !ok {
		return false, nil
	}
	err := cc.handleData(d)
	cc.br.skip(n)
	return true, err
}

// handleData acts on a DATA frame, as handle on the others: the framer's
// or one read in place (peekData).
func (cc *clientConn) handleData(d dataFrame) error {
	cc.readerG.check()
	if d.streamID > cc.lastID {
		// An idle stream: only HEADERS open it.
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if d.carriesNothing() && !cc.empty.Spend(time.Now()) {
		return errTooManyEmpty
	}
	return cc.onData(d)
}

// pingAllowed applies grpc-go's keepalive enforcement to a client's PING:
// closer than edge.PingMinInterval to the previous one, with nothing sent
// to the client in between, is a strike.
func (cc *clientConn) pingAllowed() bool {
	cc.readerG.check()
	now := time.Now()
	defer func() { cc.lastPing = now }()
	cc.w.mu.Lock()
	sent := cc.w.sentStreams
	cc.w.sentStreams = false
	cc.w.mu.Unlock()
	switch {
	case sent:
		cc.pingStrikes = 0
	case !cc.lastPing.IsZero() && now.Sub(cc.lastPing) < edge.PingMinInterval:
		cc.pingStrikes++
	}
	return cc.pingStrikes <= edge.PingStrikes
}

func (cc *clientConn) stream(id uint32) *stream {
	cc.smu.Lock()
	defer cc.smu.Unlock()
	return cc.streams[id]
}

// lookup is stream for the reader, whose frames mostly name the stream
// the one before named: that one is kept until the reader reads its
// connection again (beforeRead), and found again without the map's lock
// while it is still there (IDs are never reused).
func (cc *clientConn) lookup(id uint32) *stream {
	cc.readerG.check()
	if s := cc.last; s != nil && s.cid == id && !s.downGone.Load() {
		return s
	}
	s := cc.stream(id)
	cc.last = s
	return s
}

func (cc *clientConn) forget(s *stream) {
	cc.smu.Lock()
	if _, ok := cc.streams[s.cid]; ok {
		delete(cc.streams, s.cid)
		s.downGone.Store(true)
	}
	cc.smu.Unlock()
}

// cancel ends a call the client reset or left: upstream too, and a check
// still running opens nothing.
func (cc *clientConn) cancel(s *stream, fl *flushSet) {
	s.mu.notHeld()
	s.mu.Lock()
	_, first := s.transition(evCancel)
	bc := s.bc
	s.mu.Unlock()
	if !first {
		return
	}
	if bc != nil {
		bc.reset(s, http2.ErrCodeCancel, fl)
	}
	cc.r.observe(s, codes.Canceled)
}

// resetStream answers a stream error: RST_STREAM to the client, and the
// call canceled.
func (cc *clientConn) resetStream(id uint32, code http2.ErrCode) {
	if s := cc.stream(id); s != nil {
		cc.forget(s)
		cc.cancel(s, &cc.flushes)
	}
	cc.writeRST(id, code)
}

func (cc *clientConn) writeRST(id uint32, code http2.ErrCode) {
	cc.w.mu.Lock()
	cc.w.note(cc.w.fr.WriteRSTStream(id, code))
	cc.w.mu.Unlock()
}

func (cc *clientConn) onHeaders(f *http2.MetaHeadersFrame) (err error) {
	id := f.StreamID
	if s := cc.stream(id); s != nil {
		cc.onTrailers(s, f)
		return nil
	}
	switch {
	case id%2 == 0:
		return http2.ConnectionError(http2.ErrCodeProtocol)
	case id <= cc.lastID:
		return http2.ConnectionError(http2.ErrCodeStreamClosed)
	}
	cc.lastID = id
	cc.smu.Lock()
	open := len(cc.streams)
	cc.smu.Unlock()
	if cc.closing.Load() || open >= maxConcurrentStreams {
		cc.resetStream(id, http2.ErrCodeRefusedStream)
		return nil
	}
	s := &stream{cc: cc, cid: id, method: f.PseudoValue("path"), start: time.Now(), request: f.Fields}
	s.recvWin.Store(streamWindow)
	if f.StreamEnded() {
		s.transition(evRemoteEnd)
	}
	cc.w.mu.Lock()
	s.down.win = cc.w.initWin
	cc.w.mu.Unlock()
	cc.smu.Lock()
	cc.streams[id] = s
	cc.smu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.contentLength, err = checkRequest(f); err != nil {
		return err
	}
	grpc := strings.HasPrefix(fieldValue(f, "content-type"), "application/grpc") && f.PseudoValue("method") == "POST"
	if !grpc && cc.r.rest != nil {
		// REST applies the edge policy and authenticates itself.
		s.rest = true
		if f.Truncated {
			s.transition(evRefuse)
			cc.sendHeaders(s, []hpack.HeaderField{{Name: ":status", Value: "431"}}, true, &cc.flushes)
			cc.downSent(s)
			return nil
		}
		cc.openREST(s, f.Fields, &cc.flushes)
		return nil
	}
	if f.Truncated {
		cc.fail(s, codes.ResourceExhausted, "authproxy: request headers over the limit", &cc.flushes)
		return nil
	}
	if !grpc {
		cc.fail(s, codes.Unimplemented, "authproxy: not a gRPC request", &cc.flushes)
		return nil
	}
	cc.admit.start(s, f)
	return nil
}

// onTrailers takes a HEADERS frame on an open stream: the client's
// trailers, which end its side of the stream. They go upstream, past the
// edge policy, behind the DATA before them.
func (cc *clientConn) onTrailers(s *stream, f *http2.MetaHeadersFrame) {
	s.mu.Lock()
	st := s.state()
	done, opened := st.has(remoteClosed), st.phase() == phaseForwarding
	live := opened && !s.upGone.Load()
	if !done && f.StreamEnded() {
		if now, _ := s.transition(evRemoteEnd); now.closedBothWays() {
			defer cc.forget(s)
		}
	}
	s.mu.Unlock()
	switch {
	case done:
		cc.resetStream(s.cid, http2.ErrCodeStreamClosed)
	case !f.StreamEnded() || len(f.PseudoFields()) > 0 || f.Truncated || s.contentLength >= 0 && s.received != s.contentLength:
		cc.resetStream(s.cid, http2.ErrCodeProtocol)
	case !opened:
		// Not upstream yet (a check or the authorizer still waits): the
		// trailers would have to wait too, which no gRPC client needs.
		cc.resetStream(s.cid, http2.ErrCodeRefusedStream)
	case !live:
		// Already answered: dropped.
	default:
		fields := f.Fields
		if !s.rest {
			fields = fields[:0:0]
			cc.admit.adm.UpstreamTrailers(hpackFields(f.Fields), func(hf admission.Field) {
				fields = append(fields, hpack.HeaderField{Name: hf.Name, Value: hf.Value, Sensitive: hf.Sensitive})
			})
		}
		s.bc.sendTrailers(s, fields, &cc.flushes)
	}
}

// openREST passes a request that is not gRPC, as it is, to REST over this
// connection's in-memory HTTP/2 connection.
func (cc *clientConn) openREST(s *stream, fields []hpack.HeaderField, fl *flushSet) {
	cc.readerG.check()
	s.mu.held()
	if cc.rest == nil {
		cc.rest = &upstream{name: "REST", dial: func(context.Context) (net.Conn, error) {
			a, b := net.Pipe()
			cc.r.rest(pipeConn{b, cc.conn.LocalAddr(), cc.conn.RemoteAddr()}, cc.conn)
			return pipeConn{a, cc.conn.RemoteAddr(), cc.conn.LocalAddr()}, nil
		}}
	}
	bc, err := cc.rest.pick()
	if err != nil {
		// Not resetStream, which takes s.mu (held here): nothing was
		// opened upstream to cancel.
		cc.forget(s)
		s.transition(evCancel)
		cc.writeRST(s.cid, http2.ErrCodeInternal)
		return
	}
	s.transition(evForward)
	bc.open(s, fields, s.state().has(remoteClosed), fl)
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
	s.transition(evForward) // before the backend's reader may see it
	bc.open(s, fields, endStream, fl)
}

// sendUp forwards request bytes to the opened call, unless they carry a
// message over grpc.maxRecvMsgSize: then the call is reset upstream and
// refused as grpc-go refuses it.
func (cc *clientConn) sendUp(s *stream, data []byte, endStream bool, from origin, fl *flushSet) {
	s.mu.held()
	if !s.rest {
		if size, _, over := s.upSizes.feed(data, cc.r.opts.MaxRecvMsgSize); over {
			s.bc.reset(s, http2.ErrCodeCancel, fl)
			cc.fail(s, codes.ResourceExhausted, tooLarge(size, cc.r.opts.MaxRecvMsgSize), fl)
			return
		}
	}
	s.bc.sendData(s, data, endStream, from, fl)
}

// refundBatch sends the window refunds gathered while the reader had
// frames buffered: one update per gated stream.
func (cc *clientConn) refundBatch() {
	cc.readerG.check()
	if len(cc.gateRefunds) == 0 {
		return
	}
	cc.w.mu.Lock()
	for _, s := range cc.gateRefunds {
		// A client that ended its stream sends nothing more on it.
		if s.gateRefund > 0 && !s.state().has(remoteClosed) {
			cc.w.note(cc.w.fr.WriteWindowUpdate(s.cid, uint32(s.gateRefund)))
			s.recvWin.Add(int64(s.gateRefund))
			s.gateRefund = 0
		}
	}
	cc.w.mu.Unlock()
	cc.gateRefunds = cc.gateRefunds[:0]
}

// refund gives the client n bytes of window back on s (in updates of at
// least refundMin), and counts what it may send again.
func (cc *clientConn) refund(s *stream, n int, fl *flushSet) {
	s.recvWin.Add(cc.w.refund(s, toClient, n, fl))
}

func (cc *clientConn) onData(f dataFrame) error {
	flowLen, data := f.flowLen, f.data
	// A client that sends past the windows the relay advertised is cut
	// off: they are what bounds what a stream holds.
	if cc.connRecvWin -= int64(flowLen); cc.connRecvWin < 0 {
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	if given := connRefundDue(&cc.connRefund, flowLen); given > 0 {
		cc.w.mu.Lock()
		cc.w.note(cc.w.fr.WriteWindowUpdate(0, given))
		cc.w.mu.Unlock()
		cc.connRecvWin += int64(given)
	}
	s := cc.lookup(f.streamID)
	if s == nil {
		return http2.StreamError{StreamID: f.streamID, Code: http2.ErrCodeStreamClosed}
	}
	if s.recvWin.Add(-int64(flowLen)) < 0 {
		return http2.StreamError{StreamID: f.streamID, Code: http2.ErrCodeFlowControl}
	}
	cc.refund(s, int(flowLen)-len(data), &cc.flushes) // the padding
	s.mu.Lock()
	done, err := cc.onStreamData(s, f)
	s.mu.Unlock()
	if done {
		cc.forget(s)
	}
	return err
}

// onStreamData is onData's part under s.mu; done says the frame closed
// the stream both ways, and the caller forgets it. (No defer here: one
// taken on a branch would put every call's defers on the slow path.)
func (cc *clientConn) onStreamData(s *stream, f dataFrame) (done bool, err error) {
	s.mu.held()
	data := f.data
	st := s.state()
	if st.has(remoteClosed) {
		return false, http2.StreamError{StreamID: f.streamID, Code: http2.ErrCodeStreamClosed}
	}
	end := f.end
	if end {
		st, _ = s.transition(evRemoteEnd)
	}
	if s.received += int64(len(data)); s.contentLength >= 0 && (s.received > s.contentLength || end && s.received != s.contentLength) {
		return false, http2.StreamError{StreamID: f.streamID, Code: http2.ErrCodeProtocol}
	}
	done = end && st.closedBothWays()
	switch {
	case st.phase() == phaseAuthenticating:
		// Held, unrefunded, until the call is authenticated: the stream
		// window bounds it.
		s.early = append(s.early, data...)
	case st.phase() == phaseDeciding:
		s.gate = append(s.gate, data...)
		// The gathered bytes are refunded by the batch (the reader's).
		if s.gateRefund == 0 {
			cc.gateRefunds = append(cc.gateRefunds, s)
		}
		s.gateRefund += len(data)
		cc.admit.decide(s, &cc.flushes)
	case st.phase() != phaseForwarding || s.upGone.Load():
		// Refused before it was opened, or already answered: dropped.
		// Once the answer has left, the client is told to stop sending.
		if !end && s.state().has(localClosed) {
			return done, http2.StreamError{StreamID: f.streamID, Code: http2.ErrCodeNo}
		}
		cc.refund(s, len(data), &cc.flushes)
	default:
		if err := cc.admit.checkTail(s, data); err != nil {
			// Before the frame that carries it: the backend never gets
			// the whole message.
			s.bc.reset(s, http2.ErrCodeCancel, &cc.flushes)
			cc.fail(s, codes.PermissionDenied, err.Error(), &cc.flushes)
			return done, nil
		}
		from := reused
		if f.inPlace {
			from = inReadBuf
		}
		cc.sendUp(s, data, f.end, from, &cc.flushes)
	}
	return done, nil
}

// maxWindow is the largest flow-control window HTTP/2 allows.
const maxWindow = 1<<31 - 1

func (cc *clientConn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	var one *stream
	if f.StreamID != 0 {
		if one = cc.stream(f.StreamID); one == nil {
			return nil
		}
	}
	cc.w.mu.Lock()
	if one == nil && cc.w.connWin+int64(f.Increment) > maxWindow {
		cc.w.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	if one != nil && one.down.win+int64(f.Increment) > maxWindow {
		cc.w.mu.Unlock()
		return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeFlowControl}
	}
	cc.smu.Lock()
	ms := cc.w.grant(f, cc.streams, one, toClient)
	ended := cc.ended(ms)
	cc.smu.Unlock()
	cc.w.mu.Unlock()
	cc.afterSend(ms, ended, &cc.flushes)
	return nil
}

// onWritable sends what waited while the client's socket had a backlog;
// the goroutine that wrote the backlog out calls it.
func (cc *clientConn) onWritable() {
	var fl flushSet
	cc.w.mu.Lock()
	cc.smu.Lock()
	ms := cc.w.drain(cc.streams, toClient)
	ended := cc.ended(ms)
	cc.smu.Unlock()
	cc.w.mu.Unlock()
	cc.afterSend(ms, ended, &fl)
	fl.add(cc.w)
	fl.flush()
}

// ended picks, of the streams whose queues moved, those the end of the
// response that has now left closed.
func (cc *clientConn) ended(ms []moved) []*stream {
	cc.w.mu.held()
	cc.smu.held()
	var out []*stream
	for _, m := range ms {
		if cc.drained(m.s) {
			out = append(out, m.s)
		}
	}
	return out
}

// afterSend forgets the streams the end of the response closed, and
// refunds the backends for what left.
func (cc *clientConn) afterSend(ms []moved, ended []*stream, fl *flushSet) {
	for _, s := range ended {
		cc.forget(s)
	}
	for _, m := range ms {
		if m.s.bc != nil {
			m.s.bc.w.refund(m.s, toBackend, m.refund, fl)
		}
	}
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

// sendHeaders queues HEADERS for the client behind any DATA waiting. The
// caller's flush set gets the connection.
func (cc *clientConn) sendHeaders(s *stream, fields []hpack.HeaderField, endStream bool, fl *flushSet) {
	cc.w.mu.Lock()
	if _, ok := s.transition(evHeaders); !ok {
		cc.w.mu.Unlock()
		return
	}
	if endStream {
		s.transition(evEnd)
	}
	s.down.q = append(s.down.q, item{headers: fields, endStream: endStream})
	cc.w.send(s.cid, &s.down)
	cc.w.mu.Unlock()
	fl.add(cc.w)
}

// sendData forwards response bytes; it returns how many of those that
// left at once the backend is to be refunded for.
func (cc *clientConn) sendData(s *stream, data []byte, endStream bool, from origin, fl *flushSet) int {
	cc.w.mu.Lock()
	defer cc.w.mu.Unlock()
	fl.add(cc.w)
	if s.state().has(localEnding) {
		return len(data)
	}
	if endStream {
		s.transition(evEnd)
	}
	return cc.w.forward(s, toClient, data, endStream, from).refund
}

func (cc *clientConn) failStatus(s *stream, err error, fl *flushSet) {
	if reply, ok := admission.ReplyOf(err); ok {
		cc.answer(s, reply, fl)
		return
	}
	st := status.Convert(err)
	cc.fail(s, st.Code(), st.Message(), fl)
}

// fail answers a call the relay refuses: trailers only, or trailers after
// the response headers already sent.
func (cc *clientConn) fail(s *stream, code codes.Code, msg string, fl *flushSet) {
	// Refused before it was forwarded; one forwarded stays so (its caller
	// reset it upstream), and the transition is refused.
	s.transition(evRefuse)
	trailersOnly := !s.state().has(headersSent)
	var fields []hpack.HeaderField
	if trailersOnly {
		fields = append(fields, hpack.HeaderField{Name: ":status", Value: "200"}, hpack.HeaderField{Name: "content-type", Value: "application/grpc"})
	}
	fields = append(fields, hpack.HeaderField{Name: "grpc-status", Value: strconv.Itoa(int(code))},
		hpack.HeaderField{Name: "grpc-message", Value: encodeGrpcMessage(msg)})
	cc.sendHeaders(s, fields, true, fl)
	cc.downSent(s)
	cc.r.observe(s, code)
}

// answer replies to a call the relay answers itself with one message
// and status OK, forwarding nothing: a rate-limited call (Milvus's own
// refusal) or a read under row security that no row can match.
func (cc *clientConn) answer(s *stream, msg []byte, fl *flushSet) {
	s.transition(evRefuse) // answered before it was forwarded, as fail
	cc.sendHeaders(s, []hpack.HeaderField{{Name: ":status", Value: "200"}, {Name: "content-type", Value: "application/grpc"}}, false, fl)
	framed := frameMessage(msg, nil)
	cc.sendData(s, framed, false, ownRefunded, fl)
	cc.sendHeaders(s, []hpack.HeaderField{{Name: "grpc-status", Value: "0"}}, true, fl)
	cc.downSent(s)
	cc.r.observe(s, codes.OK)
}

// downSent notes that the end of the response was queued for the client:
// once nothing of it waits for a window, the relay's side of the stream is
// closed; otherwise the window update that drains it does this.
func (cc *clientConn) downSent(s *stream) {
	cc.w.mu.Lock()
	closed := cc.drained(s)
	cc.w.mu.Unlock()
	if closed {
		cc.forget(s)
	}
}

// drained notes, once, that the end of the response has left, and reports
// whether that closed the stream (the client had ended its side): then
// the caller forgets it, once it no longer holds the connection's locks.
// A reset forgets a stream at once instead.
func (cc *clientConn) drained(s *stream) bool {
	cc.w.mu.held()
	if len(s.down.q) > 0 {
		return false
	}
	now, ok := s.transition(evEndLeft)
	return ok && now.closedBothWays()
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
	if cc.rest != nil {
		defer cc.rest.close()
	}
	cc.smu.Lock()
	streams := cc.streams
	cc.streams = map[uint32]*stream{}
	for _, s := range streams {
		s.downGone.Store(true)
	}
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

// checkRequest applies HTTP/2's rules for a request's header block that
// the framer leaves to the server (RFC 9113 8.2 and 8.3): the
// pseudo-headers of a request and no connection-specific fields. It
// returns the declared content-length, -1 if none.
func checkRequest(f *http2.MetaHeadersFrame) (int64, error) {
	bad := http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol}
	method := f.PseudoValue("method")
	for _, hf := range f.PseudoFields() {
		switch hf.Name {
		case ":method", ":scheme", ":path", ":authority", ":protocol":
		default:
			return 0, bad
		}
	}
	if method == "" || method != "CONNECT" && (f.PseudoValue("scheme") == "" || f.PseudoValue("path") == "") {
		return 0, bad
	}
	length := int64(-1)
	for _, hf := range f.RegularFields() {
		switch {
		case edge.ConnectionSpecific(hf.Name), hf.Name == "te" && hf.Value != "trailers":
			return 0, bad
		case hf.Name == "content-length":
			n, err := strconv.ParseInt(hf.Value, 10, 64)
			if err != nil || n < 0 || length >= 0 && n != length {
				return 0, bad
			}
			length = n
		}
	}
	if f.StreamEnded() && length > 0 {
		return 0, bad
	}
	return length, nil
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
