package relay

import (
	"bytes"
	"net"
	"runtime"
	"slices"
	"testing"

	"golang.org/x/net/http2"
)

// Data that waits for a peer's window is copied into pooled chunks, each
// filled before the next is taken; a remainder under chunkMin gets a copy
// of its own size, so that no chunk is taken for less than a quarter of
// it, however small the messages that wait.
func TestQueueData(t *testing.T) {
	src := bytes.Repeat([]byte("0123456789abcdef"), 100<<10/16) // 100 KiB
	want := slices.Clone(src)
	q := queueData(nil, src, false)
	if len(q) != 2 || len(q[0].data) != bufSize || len(q[1].data) != 100<<10-bufSize {
		t.Fatalf("100 KiB waits as %d items, want two chunks (%d and %d bytes)", len(q), bufSize, 100<<10-bufSize)
	}
	for i, it := range q {
		if it.chunk == nil || !it.inPlace || it.endStream {
			t.Errorf("item %d: chunk %v, inPlace %v, endStream %v; want a chunk, written in place, not the end", i, it.chunk != nil, it.inPlace, it.endStream)
		}
	}
	src[0] = 'X' // the caller reuses its bytes
	tail := bytes.Repeat([]byte{'z'}, 10<<10)
	q = queueData(q, tail, true)
	if len(q) != 2 || len(q[1].data) != 46<<10 || !q[1].endStream {
		t.Fatalf("10 KiB more that ends the stream: %d items, the last of %d bytes (end %v); want it in the last chunk's room, 46 KiB, the end", len(q), len(q[len(q)-1].data), q[len(q)-1].endStream)
	}
	if got := slices.Concat(q[0].data, q[1].data); !bytes.Equal(got, slices.Concat(want, tail)) {
		t.Errorf("what waits is not what was sent")
	}

	// Small waits: copies of their own size, which later data does not
	// fill; a wait of chunkMin takes a chunk, which the next fills.
	q = queueData(nil, []byte("small"), false)
	if len(q) != 1 || q[0].chunk != nil || q[0].inPlace || cap(q[0].data) > 8 {
		t.Fatalf("5 bytes wait in a chunk (%v) or a buffer of %d", q[0].chunk != nil, cap(q[0].data))
	}
	q = queueData(q, make([]byte, chunkMin-1), false)
	q = queueData(q, make([]byte, chunkMin), false)
	q = queueData(q, make([]byte, chunkMin), false)
	if len(q) != 3 || q[1].chunk != nil || q[2].chunk == nil || len(q[2].data) != 2*chunkMin {
		t.Errorf("5 bytes, then %d, %d and %d wait as %d items; want 5, %d, and one chunk of %d", chunkMin-1, chunkMin, chunkMin, len(q), chunkMin-1, 2*chunkMin)
	}
	// An empty frame that only ends the stream waits as one.
	q = queueData(q, nil, true)
	if last := q[len(q)-1]; len(q) != 4 || len(last.data) != 0 || !last.endStream {
		t.Errorf("an empty end of stream waits as %d items, the last %d bytes (end %v)", len(q), len(last.data), last.endStream)
	}
}

// countingConn takes writes (and writev, as a socket: payloads are then
// written in place) and only counts them.
type countingConn struct {
	net.Conn
	n int
}

func (c *countingConn) Write(p []byte) (int, error) { c.n += len(p); return len(p), nil }

func (c *countingConn) writeBuffers(bufs [][]byte) (int, error) {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	c.n += n
	return n, nil
}

// A message held by a small window (a 4 MiB insert behind grpc-go's
// 64 KiB start) waits in chunks that go back to the pool after the flush
// that writes them: once the pool is warm, the wait allocates nothing of
// the message's size. Each wait allocated a copy of its own before, and
// an insert stream of them a garbage collection every few inserts.
func TestWaitingDataReusesItsChunks(t *testing.T) {
	c := &countingConn{}
	w, s := waitingConn(c)
	msg := make([]byte, 256<<10)
	const rounds = 20
	forward := func() {
		w.mu.Lock()
		s.up.win = frameSize // the rest waits
		w.forward(s, toBackend, msg, false, reused)
		s.up.win = 1 << 40
		w.send(s.bid, &s.up)
		w.mu.Unlock()
		if err := w.flush(); err != nil {
			t.Fatal(err)
		}
	}
	forward() // the pool warms up
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range rounds {
		forward()
	}
	runtime.ReadMemStats(&after)
	// Under half the wait: with the race detector on, sync.Pool drops a
	// quarter of what it is given back (on purpose), so a round there
	// takes a new chunk or so; without it, none.
	wait := len(msg) - frameSize
	if per := (after.TotalAlloc - before.TotalAlloc) / rounds; per > uint64(wait/2) {
		t.Errorf("a wait of %d KiB allocated %d bytes, want its chunks reused (under half of it)", wait>>10, per)
	}
	if frames := (len(msg) + frameSize - 1) / frameSize; c.n != (rounds+1)*(len(msg)+9*frames) {
		t.Errorf("wrote %d bytes, want %d messages of %d in frames of %d", c.n, rounds+1, len(msg), frameSize)
	}
}

// A chunk goes back to the pool only after the flush that writes what was
// borrowed from it: given back when its item left the queue, the next
// wait would take it and overwrite bytes the flush had yet to write.
func TestWaitingDataIsWrittenBeforeItsChunkIsReused(t *testing.T) {
	c := &gatheringConn{}
	w, s := waitingConn(c)
	first, second := bytes.Repeat([]byte{'a'}, 4*frameSize), bytes.Repeat([]byte{'b'}, 4*frameSize)
	w.mu.Lock()
	s.up.win = 0
	w.forward(s, toBackend, first, false, reused) // waits whole
	s.up.win = int64(len(first))
	w.send(s.bid, &s.up)                          // leaves, borrowed from its chunk: not yet written
	w.forward(s, toBackend, second, true, reused) // waits: takes a chunk
	w.mu.Unlock()
	if err := w.flush(); err != nil {
		t.Fatal(err)
	}
	if got := streamsData(&c.written)[s.bid]; !bytes.Equal(got, first) {
		t.Errorf("the backend got %d bytes, %d of them not the first message's", len(got), len(got)-bytes.Count(got, []byte{'a'}))
	}
}

// Forwards, window grants and flushes on two streams, in any order: each
// stream's bytes are read back whole and in order by x/net's framer
// (grpc-go's reader), however they waited, in whichever chunks, and
// although the caller reuses its buffer as soon as forward returns. Each
// step is two bytes: what (forward, grant, flush; which stream) and how
// much.
func FuzzWaitingDataReadsAsForwarded(f *testing.F) {
	f.Add([]byte{0, 200, 2, 10, 4, 0, 2, 255, 0, 1, 2, 100})
	f.Add([]byte{0, 255, 1, 255, 0, 40, 2, 16, 3, 255, 4, 0, 1, 3, 0, 255, 2, 255, 3, 255})
	f.Add(bytes.Repeat([]byte{0, 3, 1, 60, 4, 0, 2, 1, 3, 1}, 20)) // small waits among large ones
	f.Fuzz(func(t *testing.T, steps []byte) {
		c := &gatheringConn{}
		w, first := waitingConn(c)
		streams := [2]*stream{first, {bid: 3}}
		sent := map[uint32][]byte{}
		var mark byte
		for i := 0; i+1 < len(steps); i += 2 {
			op, n := steps[i], int(steps[i+1])
			s := streams[op&1]
			switch op >> 1 % 3 {
			case 0: // n×512 bytes, marked, from a buffer the caller reuses
				mark++
				p := bytes.Repeat([]byte{mark}, n*512)
				sent[s.bid] = append(sent[s.bid], p...)
				w.mu.Lock()
				w.forward(s, toBackend, p, false, reused)
				w.mu.Unlock()
				clear(p)
			case 1: // a WINDOW_UPDATE of n KiB
				w.mu.Lock()
				s.up.win += int64(n) << 10
				w.send(s.bid, &s.up)
				w.mu.Unlock()
			case 2:
				_ = w.flush()
			}
		}
		w.mu.Lock()
		for _, s := range streams {
			s.up.win = 1 << 40
			w.send(s.bid, &s.up)
		}
		w.mu.Unlock()
		_ = w.flush()
		got := streamsData(&c.written)
		for _, s := range streams {
			if !bytes.Equal(got[s.bid], sent[s.bid]) {
				t.Fatalf("stream %d: read back %d bytes, forwarded %d; first difference at %d", s.bid, len(got[s.bid]), len(sent[s.bid]), firstDiff(got[s.bid], sent[s.bid]))
			}
		}
	})
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// waitingConn is a wconn on c with its connection window wide open, and a
// stream whose own window the test sets.
func waitingConn(c net.Conn) (*wconn, *stream) {
	w, _ := newWconn(c, nil)
	w.maxFrame = frameSize
	w.connWin = 1 << 40
	return w, &stream{bid: 1}
}

// streamsData reads written as x/net's framer does (frames up to frameSize)
// and returns each stream's DATA, in order.
func streamsData(written *bytes.Buffer) map[uint32][]byte {
	fr := http2.NewFramer(nil, written)
	fr.SetMaxReadFrameSize(frameSize)
	got := map[uint32][]byte{}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return got
		}
		if d, ok := f.(*http2.DataFrame); ok {
			got[d.StreamID] = append(got[d.StreamID], d.Data()...)
		}
	}
}
