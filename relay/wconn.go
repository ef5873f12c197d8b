package relay

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"sync"

	"github.com/soheilhy/cmux"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// wconn is the writing side of one HTTP/2 connection, shared by the
// readers that forward onto it. Everything under mu: the framer's writes,
// the HPACK encoder (whose state must follow the order of the frames), the
// peer's windows for our DATA, and the queues that wait for them.
type wconn struct {
	mu   ownedMutex
	bw   *writeBuf
	fr   *http2.Framer
	henc *hpack.Encoder
	hbuf bytes.Buffer

	maxFrame uint32  // the peer's SETTINGS_MAX_FRAME_SIZE
	connWin  int64   // the peer's connection window for our DATA
	initWin  int64   // the peer's initial stream window
	err      error   // the first write error: the connection is done
	dirty    bool    // written since the last flush
	hdr      [9]byte // a DATA frame's header being written
	// openID is the stream of the DATA frame at the end of what is
	// buffered (writeBuf.openHeader), which its next DATA may extend: 0
	// when that frame ended its stream (stream IDs start at 1).
	openID uint32
	// nb, on a client connection the port accepted, holds what the socket
	// did not take; while it does, the streams' frames wait (send).
	nb *nbConn
	// sentStreams: HEADERS or DATA written since the peer's last PING
	// (which the client's ping policy reads and clears).
	sentStreams bool
}

func newWconn(c net.Conn, br io.Reader) (*wconn, *http2.Framer) {
	w := &wconn{bw: newWriteBuf(c), maxFrame: 16 << 10, connWin: 65535, initWin: 65535}
	w.fr = http2.NewFramer(w.bw, br)
	// A DATA frame read is used before the next read (what waits is
	// copied, see forward), so the framer may reuse it.
	w.fr.SetReuseFrames()
	w.henc = hpack.NewEncoder(&w.hbuf)
	return w, w.fr
}

// headers writes a header block (HEADERS and CONTINUATION as needed).
func (w *wconn) headers(id uint32, fields []hpack.HeaderField, endStream bool) {
	w.mu.held()
	w.hbuf.Reset()
	for _, f := range fields {
		_ = w.henc.WriteField(f)
	}
	block := w.hbuf.Bytes()
	w.sentStreams = true
	first := true
	for first || len(block) > 0 {
		chunk := block
		if len(chunk) > int(w.maxFrame) {
			chunk = chunk[:w.maxFrame]
		}
		block = block[len(chunk):]
		if first {
			w.note(w.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: chunk, EndStream: endStream, EndHeaders: len(block) == 0}))
			first = false
		} else {
			w.note(w.fr.WriteContinuation(id, len(block) == 0, chunk))
		}
	}
}

// data writes a DATA frame: its header, then the payload straight into
// the write buffer (the framer would copy it into its own first), or, if
// inPlace (see inReadBuf), a reference to it that the flush writes.
func (w *wconn) data(id uint32, endStream bool, p []byte, inPlace bool) {
	w.mu.held()
	if w.extendData(id, endStream, len(p)) {
		w.dataPayload(p, inPlace)
		w.bw.endFrame()
		return
	}
	h := w.hdr[:]
	h[0], h[1], h[2] = byte(len(p)>>16), byte(len(p)>>8), byte(len(p))
	h[3] = byte(http2.FrameData)
	h[4] = 0
	if endStream {
		h[4] = byte(http2.FlagDataEndStream)
	}
	binary.BigEndian.PutUint32(h[5:], id)
	w.note(w.bw.writeHeader(h))
	w.openID = id
	if endStream {
		w.openID = 0
	}
	w.dataPayload(p, inPlace)
	w.bw.endFrame()
}

// borrowMin is the smallest payload written in place (inReadBuf); a
// smaller one is copied. An iovec costs the kernel more than copying a
// small payload, and one iovec per small message would fill maxSegs in
// the middle of a read's frames: FullDuplex's 64 messages of 21 bytes in
// flight then left in two writes, not one.
const borrowMin = 1 << 10

func (w *wconn) dataPayload(p []byte, inPlace bool) {
	switch {
	case len(p) == 0:
	case inPlace && len(p) >= borrowMin:
		w.note(w.bw.borrow(p))
	default:
		_, err := w.bw.Write(p)
		w.note(err)
	}
}

// extendData makes the DATA frame at the end of what is buffered n bytes
// longer, and ends the stream with it if endStream, when it is stream id's
// and the peer's frame size allows; the caller then writes the n bytes.
// So the frames that arrive in one read leave as one, as nginx's do. Frame
// boundaries mean nothing in DATA (RFC 9113 §6.1; gRPC messages carry
// their own lengths), and each frame saved is one the peer need not
// parse: a gRPC peer spends more per frame than per byte of a small
// message.
func (w *wconn) extendData(id uint32, endStream bool, n int) bool {
	hdr, room := w.openData(id)
	if hdr == nil || n > room {
		return false
	}
	size := int(w.maxFrame) - room + n
	hdr[0], hdr[1], hdr[2] = byte(size>>16), byte(size>>8), byte(size)
	if endStream {
		hdr[4] |= byte(http2.FlagDataEndStream)
		w.openID = 0
	}
	return true
}

// openData returns the header of stream id's DATA frame open at the end
// of the buffer (see extendData), and the bytes it still takes under the
// peer's frame size; nil if there is none.
func (w *wconn) openData(id uint32) (hdr []byte, room int) {
	hdr = w.bw.openHeader()
	if hdr == nil || w.openID != id {
		return nil, 0
	}
	return hdr, int(w.maxFrame) - (int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2]))
}

func (w *wconn) note(err error) {
	w.dirty = true
	if err != nil && w.err == nil {
		w.err = err
	}
}

// send moves items of q onto the connection while the windows allow, and
// returns the DATA bytes sent.
func (w *wconn) send(id uint32, h *half) (sent int) {
	w.mu.held()
	for len(h.q) > 0 {
		n, done := w.sendItem(id, h, &h.q[0])
		sent += n
		if !done {
			return sent
		}
		if c := h.q[0].chunk; c != nil {
			w.bw.giveBackAfterFlush(c)
		}
		h.q[0] = item{}
		h.q = h.q[1:]
	}
	return sent
}

// sendItem writes what the windows allow of it, and says whether all of
// it left.
func (w *wconn) sendItem(id uint32, h *half, it *item) (sent int, done bool) {
	w.mu.held()
	if w.nb != nil && w.nb.waiting.Load() {
		return 0, false // until the backlog is out (clientConn.onWritable)
	}
	if it.headers != nil {
		w.headers(id, it.headers, it.endStream)
		return 0, true
	}
	if len(it.data) == 0 {
		// An empty DATA that only ends the stream.
		w.data(id, it.endStream, nil, false)
		return 0, true
	}
	for len(it.data) > 0 {
		n := min(int64(len(it.data)), h.win, w.connWin, int64(w.maxFrame))
		if n <= 0 {
			return sent, false
		}
		if _, room := w.openData(id); room > 0 {
			// The open frame is filled first: a payload too long for it
			// whole (joined small messages: readBuf.joinData) does not
			// start a frame of its own there.
			n = min(n, int64(room))
		}
		end := it.endStream && n == int64(len(it.data))
		w.data(id, end, it.data[:n], it.inPlace)
		w.sentStreams = true
		it.data = it.data[n:]
		h.win -= n
		w.connWin -= n
		sent += int(n)
	}
	return sent, true
}

// onSettings ACKs a peer's SETTINGS and applies them to this side of the
// connection: the frame size, the header table size, and the initial
// stream window, whose change adjust applies to the caller's streams (mu
// held); other settings go to other. The ACK goes first, so that it
// precedes any DATA the new window lets out, as the peer expects.
func (w *wconn) onSettings(f *http2.SettingsFrame, adjust func(delta int64), other func(http2.Setting)) error {
	if f.IsAck() {
		return nil // ours, or the one the port's sniffer sent
	}
	if err := f.ForeachSetting(func(s http2.Setting) error { return s.Valid() }); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.note(w.fr.WriteSettingsAck())
	return f.ForeachSetting(func(s http2.Setting) error {
		switch s.ID {
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - w.initWin
			w.initWin = int64(s.Val)
			adjust(delta)
		case http2.SettingMaxFrameSize:
			w.maxFrame = min(s.Val, frameSize)
		case http2.SettingHeaderTableSize:
			// The peer's decoder holds no more (RFC 7541 §4.2); the
			// encoder's limit caps it (a client's: 0, see newClientConn).
			w.henc.SetMaxDynamicTableSize(s.Val)
		default:
			if other != nil {
				other(s)
			}
		}
		return nil
	})
}

// refundMin is the least stream refund sent on its own. A smaller one
// waits for more, as grpc-go's own updates do: the peer keeps at least
// three quarters of the stream window meanwhile, and the last few
// refunds of a call, which its sender no longer needs, are never sent.
// Each update saved is a frame the peer need not read and, on a quiet
// connection, a write and a wake-up on both ends.
const refundMin = streamWindow / 4

// refund gives a stream's sender on this connection back n bytes of
// window, in updates of at least refundMin; of picks the stream's half
// this connection writes, which keeps the count. It returns the window
// given back now (0 while it waits for more). The caller's flush set gets
// the connection.
func (w *wconn) refund(s *stream, of side, n int, fl *flushSet) int64 {
	if n <= 0 {
		return 0
	}
	id, h := of(s)
	if h.owed.Add(int64(n)) < refundMin {
		return 0
	}
	w.mu.Lock()
	// Another goroutine may have sent it meanwhile, or part of it.
	given := h.owed.Swap(0)
	if given < refundMin {
		h.owed.Add(given)
		w.mu.Unlock()
		return 0
	}
	w.note(w.fr.WriteWindowUpdate(id, uint32(given)))
	w.mu.Unlock()
	fl.add(w)
	return given
}

// connRefundDue counts n bytes received on a connection whose window is
// refunded on receipt (what waits is bounded by the stream windows
// instead), and returns the refund to send now: all that is owed once it
// reaches a quarter of connWindow, else 0. owed is the reader's.
func connRefundDue(owed *uint32, n uint32) uint32 {
	*owed += n
	if *owed < connWindow/4 {
		return 0
	}
	given := *owed
	*owed = 0
	return given
}

// onPing answers a peer's PING.
func (w *wconn) onPing(f *http2.PingFrame) {
	if !f.IsAck() {
		w.mu.Lock()
		w.note(w.fr.WritePing(true, f.Data))
		w.mu.Unlock()
	}
}

// origin says whose bytes forward carries: what may be kept of them
// when they wait for a window, and how they may be written.
type origin int

const (
	// reused: bytes the caller reuses once forward returns (the framer's,
	// a read's): what waits is copied.
	reused origin = iota
	// inReadBuf: bytes in the forwarding reader's read buffer, which stays
	// as it is until the reader has flushed its writes (readBuf.stable):
	// what leaves at once is written from there, without a copy; what
	// waits is copied.
	inReadBuf
	// ownRefunded: the relay's own buffer, whose bytes the sender was
	// refunded for already: kept as it is if it waits.
	ownRefunded
)

// forward sends data on a stream behind what waits in its half, as far as
// the windows allow, and returns how many bytes left and how many of those
// the other side is still owed a refund for.
func (w *wconn) forward(s *stream, of side, data []byte, endStream bool, from origin) moved {
	w.mu.held()
	id, h := of(s)
	if len(data) == 0 && !endStream {
		// An empty DATA frame that does not end the stream carries nothing:
		// queued behind a stalled stream, a flood of them would grow
		// without bound.
		return moved{s: s}
	}
	wait := func(b []byte) {
		if from == ownRefunded {
			h.q = append(h.q, item{data: b, endStream: endStream})
			return
		}
		h.q = queueData(h.q, b, endStream)
	}
	var n int
	if len(h.q) == 0 {
		// Nothing waits: straight out, and what the windows leave waits.
		it := item{data: data, endStream: endStream, inPlace: from == inReadBuf}
		var done bool
		if n, done = w.sendItem(id, h, &it); !done {
			wait(it.data)
		}
	} else {
		wait(data)
		n = w.send(id, h)
	}
	if from == ownRefunded {
		h.free += int64(len(data))
	}
	return movedOf(s, n, &h.free)
}

// chunkMin is the least a pooled chunk is taken for (queueData): a chunk
// then never holds less than a quarter of its size, so what a stalled
// stream's small messages hold stays within four times their bytes.
const chunkMin = bufSize / 4

// queueData appends data, which waits for a window, to q and returns q.
// It is copied (the caller reuses it) into pooled chunks (bufPool),
// filling the last one before taking another, and written from there
// without a second copy (inPlace); a remainder under chunkMin gets a copy
// of its own size. Allocating each wait afresh cost a 4 MiB insert held
// by a backend's small window a garbage collection every few inserts.
func queueData(q []item, data []byte, endStream bool) []item {
	if len(data) == 0 {
		return append(q, item{endStream: endStream})
	}
	if n := len(q); n > 0 && q[n-1].chunk != nil {
		last := &q[n-1]
		k := min(len(data), cap(last.data)-len(last.data))
		last.data = append(last.data, data[:k]...)
		data = data[k:]
	}
	for len(data) >= chunkMin {
		c := bufPool.Get().(*[]byte)
		k := min(len(data), bufSize)
		q = append(q, item{data: append((*c)[:0], data[:k]...), inPlace: true, chunk: c})
		data = data[k:]
	}
	if len(data) > 0 {
		q = append(q, item{data: append([]byte(nil), data...)})
	}
	q[len(q)-1].endStream = endStream
	return q
}

// grant applies a peer's WINDOW_UPDATE and sends what now fits: for the
// connection, of every stream in waiting that has something queued; for a
// stream, of that one (nil if it is gone). It returns what left, for the
// refunds to the other side. With whatever guards waiting held.
func (w *wconn) grant(f *http2.WindowUpdateFrame, waiting map[uint32]*stream, one *stream, of side) []moved {
	w.mu.held()
	switch {
	case f.StreamID == 0:
		w.connWin += int64(f.Increment)
		return w.drain(waiting, of)
	case one != nil:
		id, h := of(one)
		h.win += int64(f.Increment)
		if n := w.send(id, h); n > 0 {
			return []moved{movedOf(one, n, &h.free)}
		}
	}
	return nil
}

// drain sends what the windows now allow of every stream in waiting that
// has something queued, after the connection's window or the initial
// stream window grew. With whatever guards waiting held.
func (w *wconn) drain(waiting map[uint32]*stream, of side) []moved {
	w.mu.held()
	var ms []moved
	for _, s := range waiting {
		if id, h := of(s); len(h.q) > 0 {
			if n := w.send(id, h); n > 0 {
				ms = append(ms, movedOf(s, n, &h.free))
			}
		}
	}
	return ms
}

func (w *wconn) flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.dirty {
		return w.err
	}
	w.dirty = false
	if err := w.bw.Flush(); err != nil && w.err == nil {
		w.err = err
	}
	return w.err
}

// flushSet holds the connections a reader wrote to since it last read
// its own; they are flushed before its next read (readBuf.beforeRead), so
// frames that arrive together leave together.
type flushSet []*wconn

func (s *flushSet) add(w *wconn) {
	for _, have := range *s {
		if have == w {
			return
		}
	}
	*s = append(*s, w)
}

// flushOwnLast is flush for a reader whose own connection is own: what
// it forwarded leaves first, its acknowledgements and refunds to its
// peer after. The error is own's: the reader's connection failed.
func (s *flushSet) flushOwnLast(own *wconn) error {
	for _, w := range *s {
		if w != own {
			_ = w.flush()
		}
	}
	*s = (*s)[:0]
	return own.flush()
}

func (s *flushSet) flush() {
	for _, w := range *s {
		_ = w.flush()
	}
	*s = (*s)[:0]
}

// bufSize is the size of the buffers a busy connection reads into and
// writes from. They come from bufPool and go back to it as soon as the
// connection has nothing buffered, so that an idle connection holds
// none: a thousand idle clients would otherwise hold two each.
const bufSize = 64 << 10

// smallRead is what a connection's reader holds while it waits: enough
// for the frames of a small call, read at once; a larger one is followed
// by reads into a pooled buffer. Each idle connection holds it: 2 KiB
// cost 1 MiB more per thousand than 1 KiB, and bought no c=1 latency.
const smallRead = 1 << 10

// busyReads is how many light reads in a row give a reader's pooled
// buffer back.
const busyReads = 16

var bufPool = sync.Pool{New: func() any {
	b := make([]byte, bufSize)
	return &b
}}

// readSize is the buffer a busy connection reads into: what the socket
// holds, up to what nginx reads at once (http2_recv_buffer_size), so that
// a bulk upload costs a read per 256 KiB rather than per 32 KiB write of
// its sender whenever the data piles up.
const readSize = 256 << 10

var readPool = sync.Pool{New: func() any {
	b := make([]byte, readSize)
	return &b
}}

// maxGather is how many pooled buffers a connection's writes gather
// before they are written (one writev) without waiting for the flush.
const maxGather = 8

// maxSegs is how many separate pieces (parts of the pooled buffers, and
// payloads written in place: writeBuf.borrow) a flush writes at most: the
// DATA frames of one read of readSize, a header and a payload each, go
// out in one writev.
const maxSegs = 64

// buffersWriter writes buffers in order with one writev where the socket
// takes them (sysConn, nbConn).
type buffersWriter interface {
	writeBuffers(bufs [][]byte) (int, error)
}

// gatherOf finds the buffersWriter c writes to (cmux's wrapper only
// buffers reads); nil for TLS and anything else that is not a socket.
func gatherOf(c net.Conn) buffersWriter {
	for {
		switch w := c.(type) {
		case buffersWriter:
			return w
		case *cmux.MuxConn:
			c = w.Conn
		default:
			return nil
		}
	}
}

// writeBuf is a connection's write buffer, pooled: what is written
// between two flushes is gathered in up to maxGather buffers taken from
// bufPool, with the payloads borrowed in place, written out by the flush
// with one writev (what frames arrived in one read leave in one write)
// and given back. The wconn's mu guards it.
type writeBuf struct {
	c    net.Conn
	wv   buffersWriter // c's writev, nil if it has none
	bufs []*[]byte     // empty when nothing is buffered
	n    int           // bytes in the last of bufs
	// segs is what the flush writes, in order: parts of bufs, and
	// borrowed payloads. tail says that the last of them ends at n in the
	// last of bufs, so that a Write extends it.
	segs [][]byte
	tail bool
	err  error
	// size counts the bytes buffered since the last flush. hdr is the
	// header of the last frame written (writeHeader), in place in bufs,
	// and hdrEnd the size at that frame's end (endFrame): while nothing
	// follows it, it may be changed (openHeader). The flush forgets it
	// with the buffers it gives back, even in the middle of the frame.
	size   int
	hdr    []byte
	hdrEnd int
	// chunks are waiting items' buffers whose last bytes the next flush
	// writes (giveBackAfterFlush); they go back to bufPool after it.
	chunks []*[]byte
}

func newWriteBuf(c net.Conn) *writeBuf { return &writeBuf{c: c, wv: gatherOf(c)} }

func (b *writeBuf) Write(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	written := len(p)
	for len(p) > 0 {
		if len(b.bufs) == 0 || b.n == bufSize {
			if len(b.bufs) == maxGather {
				if err := b.Flush(); err != nil {
					return written - len(p), err
				}
			}
			b.bufs = append(b.bufs, bufPool.Get().(*[]byte))
			b.n, b.tail = 0, false
		}
		if !b.tail && len(b.segs) == maxSegs {
			if err := b.Flush(); err != nil {
				return written - len(p), err
			}
			continue
		}
		buf := *b.bufs[len(b.bufs)-1]
		k := copy(buf[b.n:], p)
		if b.tail {
			last := &b.segs[len(b.segs)-1]
			*last = (*last)[:len(*last)+k]
		} else {
			b.segs = append(b.segs, buf[b.n:b.n+k])
			b.tail = true
		}
		b.n += k
		b.size += k
		p = p[k:]
	}
	return written, nil
}

// writeHeader writes a frame's header and keeps where it lies in the
// buffer (none if it lies across two buffers), for openHeader.
func (b *writeBuf) writeHeader(h []byte) error {
	b.hdr = nil
	if _, err := b.Write(h); err != nil {
		return err
	}
	if b.n >= len(h) {
		b.hdr = (*b.bufs[len(b.bufs)-1])[b.n-len(h) : b.n]
	}
	return nil
}

// endFrame marks the end of the frame whose header writeHeader wrote.
func (b *writeBuf) endFrame() { b.hdrEnd = b.size }

// openHeader returns the last frame's header, in the buffer, if nothing
// was written after the frame and it was not flushed; else nil.
func (b *writeBuf) openHeader() []byte {
	if b.hdr == nil || b.hdrEnd != b.size {
		return nil
	}
	return b.hdr
}

// borrow adds p to what the next flush writes without copying it: the
// caller leaves p as it is until then. A connection without writev (TLS,
// pipes) copies it, as Write.
func (b *writeBuf) borrow(p []byte) error {
	if b.wv == nil {
		_, err := b.Write(p)
		return err
	}
	if b.err != nil {
		return b.err
	}
	if len(b.segs) == maxSegs {
		if err := b.Flush(); err != nil {
			return err
		}
	}
	b.segs = append(b.segs, p)
	b.tail = false
	b.size += len(p)
	return nil
}

// giveBackAfterFlush gives a waiting item's chunk (queueData) back to
// bufPool once the next flush has written what was borrowed from it.
func (b *writeBuf) giveBackAfterFlush(c *[]byte) { b.chunks = append(b.chunks, c) }

// Flush writes what is buffered and gives the buffers back.
func (b *writeBuf) Flush() error {
	if len(b.segs) == 0 {
		b.giveBackChunks()
		return b.err
	}
	if b.err == nil {
		b.err = b.writeOut(b.segs)
	}
	clear(b.segs)
	b.segs, b.tail = b.segs[:0], false
	for i, buf := range b.bufs {
		bufPool.Put(buf)
		b.bufs[i] = nil
	}
	b.bufs, b.n = b.bufs[:0], 0
	b.giveBackChunks()
	b.size, b.hdr = 0, nil
	return b.err
}

func (b *writeBuf) giveBackChunks() {
	for i, c := range b.chunks {
		bufPool.Put(c)
		b.chunks[i] = nil
	}
	b.chunks = b.chunks[:0]
}

// writeOut writes bufs in one writev if the connection can, else one
// write each (TLS: each record is a write of its own anyway).
func (b *writeBuf) writeOut(bufs [][]byte) error {
	if b.wv != nil && len(bufs) > 1 {
		_, err := b.wv.writeBuffers(bufs)
		return err
	}
	for _, p := range bufs {
		if _, err := b.c.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// readBuf buffers a connection's reads, as a bufio.Reader would, with
// the buffer sized to the traffic: a reader that waits does so on
// smallRead bytes of its own, and a read that fills them is followed by
// reads into a pooled readSize buffer, given back once busyReads reads
// in a row have brought less than smallRead (a reader that switched at
// every short read would read twice as often on a steady stream).
type readBuf struct {
	c net.Conn
	// beforeRead runs before each read of c: the reader flushes there what
	// it forwarded, so that nothing waits behind a read, even one for the
	// rest of a frame. Its error ends the reads.
	beforeRead func() error
	// ready, if set, says that the next read of c will not wait (TLS with
	// whole records buffered beneath it): beforeRead then waits too, so
	// that what many records bring leaves in one write.
	ready func() bool
	small []byte
	big   *[]byte // held while the traffic fills buffers
	cur   []byte  // small or *big
	r, w  int
	busy  int // reads to go before the pooled buffer is given back
	err   error
	// joined holds joinData's payloads, from joinPool, until the next read.
	joined *[]byte
}

func newReadBuf(c net.Conn) *readBuf {
	b := &readBuf{c: c, small: make([]byte, smallRead)}
	if tc := tlsOf(c); tc != nil {
		if nb := findNB(tc.NetConn()); nb != nil {
			nb.bufferReads = true
			b.ready = nb.holdsRecords
		}
	}
	return b
}

// tlsOf finds the TLS connection c reads from, under the port's wrapper.
func tlsOf(c net.Conn) *tls.Conn {
	for {
		switch w := c.(type) {
		case *tls.Conn:
			return w
		case *cmux.MuxConn:
			c = w.Conn
		default:
			return nil
		}
	}
}

// Buffered is how many bytes can be read without a read on the
// connection.
func (b *readBuf) Buffered() int { return b.w - b.r }

// stable says that what the buffer holds stays as it is until the
// reader's writes are flushed: beforeRead flushes them before every read
// of the connection (none deferred, as under TLS), and the pooled buffer
// goes back to the pool only after that. Payloads may then be written
// from the buffer without a copy (inReadBuf).
func (b *readBuf) stable() bool { return b.beforeRead != nil && b.ready == nil }

func (b *readBuf) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if b.r == b.w {
		if b.err != nil {
			err := b.err
			b.err = nil
			return 0, err
		}
		if b.beforeRead != nil && (b.ready == nil || !b.ready()) {
			if err := b.beforeRead(); err != nil {
				return 0, err
			}
		}
		// What was written from the buffer has left (stable): it may go;
		// what was joined was handled, and copied where it waits.
		b.giveBack()
		if b.joined != nil {
			joinPool.Put(b.joined)
			b.joined = nil
		}
		if len(p) >= readSize {
			// As bufio does: a large read goes straight to the caller.
			return b.c.Read(p)
		}
		if b.busy > 0 && b.big == nil {
			b.big = readPool.Get().(*[]byte)
		}
		b.cur = b.small
		if b.big != nil {
			b.cur = *b.big
		}
		n, err := b.c.Read(b.cur)
		b.r, b.w, b.err = 0, n, err
		if n >= smallRead {
			b.busy = busyReads
		} else if b.busy > 0 {
			b.busy--
		}
		if n == 0 {
			b.release()
			err := b.err
			b.err = nil
			return 0, err
		}
	}
	n := copy(p, b.cur[b.r:b.w])
	b.r += n
	if b.r == b.w {
		b.release()
	}
	return n, nil
}

// release notes that the buffer has been consumed; giveBack, before the
// next read, returns it to the pool.
func (b *readBuf) release() { b.r, b.w = 0, 0 }

// giveBack gives the pooled buffer back once the traffic has been light
// for a while.
func (b *readBuf) giveBack() {
	if b.big != nil && b.busy == 0 {
		readPool.Put(b.big)
		b.big = nil
		b.cur = nil
	}
}
