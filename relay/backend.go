package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
)

// upstream is where calls go (the backend, or the in-process server): as
// many connections as its MAX_CONCURRENT_STREAMS needs, each replaced
// when it fails or says GOAWAY.
type upstream struct {
	name string
	dial func(context.Context) (net.Conn, error)

	mu    sync.Mutex
	conns []*backendConn
}

// pick returns a connection with room for one more stream, counted.
func (u *upstream) pick() (*backendConn, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, bc := range u.conns {
		if !bc.dead.Load() && !bc.goingAway.Load() && bc.active.Load() < bc.maxStreams.Load() {
			bc.active.Add(1)
			return bc, nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := u.dial(ctx)
	if err != nil {
		return nil, err
	}
	bc := newBackendConn(u, c)
	// The preface is buffered before the reader starts, so that nothing
	// (an ACK of the server's SETTINGS) can go out ahead of it; it is
	// flushed once the reader runs, since over an in-memory pipe the
	// server's SETTINGS must be read before our preface can be written.
	bc.preface()
	go bc.readLoop()
	if err := bc.w.flush(); err != nil {
		c.Close()
		return nil, err
	}
	u.conns = append(u.conns, bc)
	bc.active.Add(1)
	return bc, nil
}

func (u *upstream) remove(bc *backendConn) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for i, c := range u.conns {
		if c == bc {
			u.conns = append(u.conns[:i], u.conns[i+1:]...)
			return
		}
	}
}

func (u *upstream) close() {
	u.mu.Lock()
	conns := u.conns
	u.conns = nil
	u.mu.Unlock()
	for _, bc := range conns {
		bc.conn.Close()
	}
}

// backendConn is one HTTP/2 connection upstream; its reader forwards
// the answers to the clients' connections.
type backendConn struct {
	up   *upstream
	conn net.Conn
	br   *readBuf
	fr   *http2.Framer
	w    *wconn

	nextID uint32 // under w.mu: IDs go out in order

	// smu guards the stream map.
	smu     sync.Mutex
	streams map[uint32]*stream

	active     atomic.Int32
	maxStreams atomic.Int32
	goingAway  atomic.Bool
	dead       atomic.Bool

	// Owned by the reader goroutine (readerG).
	readerG    goroutineLock
	flushes    flushSet
	connRefund uint32  // connection window not refunded yet
	last       *stream // the stream the last lookup found
}

func newBackendConn(u *upstream, c net.Conn) *backendConn {
	bc := &backendConn{up: u, conn: c, br: newReadBuf(c), nextID: 1, streams: map[uint32]*stream{}}
	bc.w, bc.fr = newWconn(c, bc.br)
	bc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	bc.fr.MaxHeaderListSize = 16 << 20
	bc.fr.SetMaxReadFrameSize(maxFrameLen)
	bc.maxStreams.Store(100) // until the backend's SETTINGS say
	return bc
}

func (bc *backendConn) preface() {
	bc.w.mu.Lock()
	_, err := bc.w.bw.Write([]byte(http2.ClientPreface))
	bc.w.note(err)
	bc.w.note(bc.w.fr.WriteSettings(
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: streamWindow},
	))
	bc.w.note(bc.w.fr.WriteWindowUpdate(0, connWindow-65535))
	bc.w.mu.Unlock()
}

// open sends a call's HEADERS under a new stream ID.
func (bc *backendConn) open(s *stream, fields []hpack.HeaderField, endStream bool, fl *flushSet) {
	bc.w.mu.Lock()
	s.bid = bc.nextID
	bc.nextID += 2
	s.up.win = bc.w.initWin
	s.bc = bc
	bc.smu.Lock()
	bc.streams[s.bid] = s
	bc.smu.Unlock()
	bc.w.headers(s.bid, fields, endStream)
	bc.w.mu.Unlock()
	fl.add(bc.w)
}

// sendData forwards request bytes; what the windows do not take waits,
// and the client is refunded as it leaves, unless it was refunded already
// (ownRefunded: bytes the authorizer gathered).
func (bc *backendConn) sendData(s *stream, data []byte, endStream bool, from origin, fl *flushSet) {
	bc.w.mu.Lock()
	m := bc.w.forward(s, toBackend, data, endStream, from)
	bc.w.mu.Unlock()
	fl.add(bc.w)
	s.cc.refund(s, m.refund, fl)
}

// sendTrailers forwards the client's trailers behind the DATA waiting.
func (bc *backendConn) sendTrailers(s *stream, fields []hpack.HeaderField, fl *flushSet) {
	bc.w.mu.Lock()
	s.up.q = append(s.up.q, item{headers: fields, endStream: true})
	bc.w.send(s.bid, &s.up)
	bc.w.mu.Unlock()
	fl.add(bc.w)
}

// reset cancels a stream upstream (the client reset it or went away).
func (bc *backendConn) reset(s *stream, code http2.ErrCode, fl *flushSet) {
	if !bc.forget(s) {
		return
	}
	bc.w.mu.Lock()
	bc.w.note(bc.w.fr.WriteRSTStream(s.bid, code))
	bc.w.mu.Unlock()
	fl.add(bc.w)
}

// forget removes a stream once; it reports whether it was still there.
func (bc *backendConn) forget(s *stream) bool {
	bc.smu.Lock()
	_, ok := bc.streams[s.bid]
	if ok {
		delete(bc.streams, s.bid)
		s.upGone.Store(true)
	}
	bc.smu.Unlock()
	if ok {
		bc.active.Add(-1)
	}
	return ok
}

func (bc *backendConn) stream(id uint32) *stream {
	bc.smu.Lock()
	defer bc.smu.Unlock()
	return bc.streams[id]
}

// lookup is stream for the reader, whose frames mostly name the stream
// the one before named: that one is kept until the reader reads its
// connection again (beforeRead), and found again without the map's lock
// while it is still there (IDs are never reused).
func (bc *backendConn) lookup(id uint32) *stream {
	bc.readerG.check()
	if s := bc.last; s != nil && s.bid == id && !s.upGone.Load() {
		return s
	}
	s := bc.stream(id)
	bc.last = s
	return s
}

func (bc *backendConn) readLoop() {
	bc.readerG = newGoroutineLock()
	err := bc.serve()
	bc.dead.Store(true)
	bc.up.remove(bc)
	bc.conn.Close()
	bc.smu.Lock()
	streams := bc.streams
	bc.streams = map[uint32]*stream{}
	for _, s := range streams {
		s.upGone.Store(true)
	}
	bc.smu.Unlock()
	msg := fmt.Sprintf("authproxy: backend %s unavailable: %v", bc.up.name, err)
	for _, s := range streams {
		bc.active.Add(-1)
		s.cc.fail(s, codes.Unavailable, msg, &bc.flushes)
	}
	bc.flushes.flush()
}

func (bc *backendConn) serve() error {
	f, err := bc.fr.ReadFrame()
	// From its second read on, the reader flushes before it reads; not
	// before its first: over an in-memory pipe the server's SETTINGS must
	// be read before our preface can be written (see pick).
	bc.br.beforeRead = func() error {
		bc.last = nil // a quiet connection keeps no finished call
		return bc.flushes.flushOwnLast(bc.w)
	}
	for ; err == nil; f, err = bc.fr.ReadFrame() {
		if err := bc.handle(f); err != nil {
			return err
		}
		bc.forwardBuffered()
	}
	return err
}

// forwardBuffered forwards the DATA frames whole in the read buffer from
// it, without the framer's copy (see readBuf.peekData), up to the first
// frame that is not one.
func (bc *backendConn) forwardBuffered() {
	for {
		d, n, ok := bc.br.joinData(maxFrameLen)
		if !ok {
			return
		}
		bc.onData(d)
		bc.br.skip(n)
	}
}

func (bc *backendConn) handle(f http2.Frame) error {
	bc.readerG.check()
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		bc.onHeaders(f)
	case *http2.DataFrame:
		bc.onData(dataOf(f))
	case *http2.WindowUpdateFrame:
		bc.onWindowUpdate(f)
	case *http2.RSTStreamFrame:
		// After the end of its answer, a reset only tells the client to
		// stop sending: the relay does that when it sends more.
		if s := bc.stream(f.StreamID); s != nil && bc.forget(s) {
			s.cc.w.mu.Lock()
			_, reset := s.transition(evResetDown)
			if reset {
				s.down.q = nil
				s.cc.w.note(s.cc.w.fr.WriteRSTStream(s.cid, f.ErrCode))
			}
			s.cc.w.mu.Unlock()
			if reset {
				s.cc.forget(s)
				bc.flushes.add(s.cc.w)
				s.cc.r.observe(s, codes.Canceled)
			}
		}
	case *http2.SettingsFrame:
		var ms []moved
		defer func() { refundClients(ms, &bc.flushes) }()
		return bc.w.onSettings(f, func(delta int64) {
			bc.smu.Lock()
			for _, st := range bc.streams {
				st.up.win += delta
			}
			if delta > 0 {
				ms = bc.w.drain(bc.streams, toBackend)
			}
			bc.smu.Unlock()
		}, func(s http2.Setting) {
			if s.ID == http2.SettingMaxConcurrentStreams {
				bc.maxStreams.Store(int32(min(s.Val, 1<<30)))
			}
		})
	case *http2.PingFrame:
		bc.w.onPing(f)
	case *http2.GoAwayFrame:
		bc.goingAway.Store(true)
		bc.up.remove(bc)
		bc.smu.Lock()
		var refused []*stream
		for id, s := range bc.streams {
			if id > f.LastStreamID {
				refused = append(refused, s)
			}
		}
		bc.smu.Unlock()
		for _, s := range refused {
			if bc.forget(s) {
				s.cc.fail(s, codes.Unavailable, "authproxy: the backend refused the call (GOAWAY); retry", &bc.flushes)
			}
		}
		if bc.active.Load() == 0 {
			return errors.New("GOAWAY")
		}
	}
	return nil
}

func (bc *backendConn) onHeaders(f *http2.MetaHeadersFrame) {
	s := bc.lookup(f.StreamID)
	if s == nil {
		return
	}
	end := f.StreamEnded()
	if end {
		if v := fieldValue(f, "grpc-status"); v != "" {
			if n, err := strconv.Atoi(v); err == nil {
				s.status.Store(int32(n))
			}
		}
		if s.filter != nil && len(s.replyBuf) > 0 {
			out, err := filterReply(s.replyBuf, s.filter)
			s.replyBuf = nil
			if err != nil {
				bc.forget(s)
				s.cc.fail(s, codes.Internal, "authproxy: "+err.Error(), &bc.flushes)
				return
			}
			s.cc.sendData(s, out, false, ownRefunded, &bc.flushes)
		}
	}
	s.cc.sendHeaders(s, f.Fields, end, &bc.flushes)
	if end {
		bc.finish(s)
	}
}

func (bc *backendConn) onData(f dataFrame) {
	flowLen, data := f.flowLen, f.data
	// The connection's refund, and the padding's (at once: the relay
	// never forwards it), take the lock only when there is one to send.
	if given, pad := connRefundDue(&bc.connRefund, flowLen), flowLen-uint32(len(data)); given > 0 || pad > 0 {
		bc.w.mu.Lock()
		if given > 0 {
			bc.w.note(bc.w.fr.WriteWindowUpdate(0, given))
		}
		if pad > 0 {
			bc.w.note(bc.w.fr.WriteWindowUpdate(f.streamID, pad))
		}
		bc.w.mu.Unlock()
	}
	s := bc.lookup(f.streamID)
	if s == nil {
		return
	}
	if limit := s.cc.r.opts.MaxSendMsgSize; !s.rest {
		if size, at, over := s.downSizes.feed(data, limit); over {
			// The whole messages before it go; it and the rest do not.
			if at > 0 && s.filter == nil {
				bc.w.refund(s, toBackend, s.cc.sendData(s, data[:at], false, reused, &bc.flushes), &bc.flushes)
			}
			bc.reset(s, http2.ErrCodeCancel, &bc.flushes)
			s.cc.fail(s, codes.ResourceExhausted, tooLarge(size, limit), &bc.flushes)
			return
		}
	}
	if s.filter != nil {
		s.replyBuf = append(s.replyBuf, data...)
		bc.w.refund(s, toBackend, len(data), &bc.flushes)
		return
	}
	bc.w.refund(s, toBackend, s.cc.sendData(s, data, f.end, reused, &bc.flushes), &bc.flushes)
	if f.end {
		bc.finish(s)
	}
}

// finish ends a call the backend ended: its stream upstream is done, the
// client's once what waits for the client's window has left.
func (bc *backendConn) finish(s *stream) {
	bc.forget(s)
	s.cc.downSent(s)
	s.cc.r.observe(s, codes.Code(s.status.Load()))
}

func (bc *backendConn) onWindowUpdate(f *http2.WindowUpdateFrame) {
	var one *stream
	if f.StreamID != 0 {
		if one = bc.stream(f.StreamID); one == nil {
			return
		}
	}
	bc.w.mu.Lock()
	bc.smu.Lock()
	ms := bc.w.grant(f, bc.streams, one, toBackend)
	bc.smu.Unlock()
	bc.w.mu.Unlock()
	bc.flushes.add(bc.w)
	refundClients(ms, &bc.flushes)
}

// refundClients gives the clients back the window for what left of their
// streams' queues toward the backend.
func refundClients(ms []moved, fl *flushSet) {
	for _, m := range ms {
		m.s.cc.refund(m.s, m.refund, fl)
	}
}
