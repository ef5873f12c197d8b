package relay

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"testing"
	"testing/synctest"

	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"
)

// peekData takes only what the framer would take as it is; everything
// else is left to the framer.
func TestPeekData(t *testing.T) {
	frameBytes := func(write func(fr *http2.Framer) error) []byte {
		var buf bytes.Buffer
		fr := http2.NewFramer(&buf, nil)
		fr.AllowIllegalWrites = true
		if err := write(fr); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	payload := []byte("payload")
	data := frameBytes(func(fr *http2.Framer) error { return fr.WriteData(3, true, payload) })
	for name, tc := range map[string]struct {
		buf  []byte
		max  uint32
		want bool
	}{
		"whole DATA":           {data, frameSize, true},
		"two frames":           {append(append([]byte(nil), data...), data...), frameSize, true},
		"cut by the read":      {data[:len(data)-1], frameSize, false},
		"header cut":           {data[:frameHeaderLen-1], frameSize, false},
		"over the max":         {data, uint32(len(payload) - 1), false},
		"padded":               {frameBytes(func(fr *http2.Framer) error { return fr.WriteDataPadded(3, false, payload, []byte{0}) }), frameSize, false},
		"stream 0":             {frameBytes(func(fr *http2.Framer) error { return fr.WriteData(0, false, payload) }), frameSize, false},
		"another type":         {frameBytes(func(fr *http2.Framer) error { return fr.WritePing(false, [8]byte{}) }), frameSize, false},
		"nothing buffered":     {nil, frameSize, false},
		"empty, ending stream": {frameBytes(func(fr *http2.Framer) error { return fr.WriteData(5, true, nil) }), frameSize, true},
	} {
		t.Run(name, func(t *testing.T) {
			b := &readBuf{cur: tc.buf, w: len(tc.buf)}
			d, n, ok := b.peekData(tc.max)
			if ok != tc.want {
				t.Fatalf("peekData took it: %v, want %v", ok, tc.want)
			}
			if !ok {
				return
			}
			// As the framer reads it.
			f, err := http2.NewFramer(nil, bytes.NewReader(tc.buf)).ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			if want := dataOf(f.(*http2.DataFrame)); d.streamID != want.streamID || d.flowLen != want.flowLen || d.end != want.end || !bytes.Equal(d.data, want.data) {
				t.Fatalf("peekData read %+v, the framer %+v", d, want)
			}
			if n != frameHeaderLen+int(d.flowLen) {
				t.Fatalf("length on the wire %d", n)
			}
			b.skip(n)
			if b.Buffered() != len(tc.buf)-n {
				t.Fatalf("%d bytes left buffered, want %d", b.Buffered(), len(tc.buf)-n)
			}
		})
	}
}

// joinData joins a run of small DATA frames on one stream, and only that:
// what it takes is counted in frames as the framer reads them.
func TestJoinData(t *testing.T) {
	small, big := []byte("small"), make([]byte, borrowMin)
	frames := func(write func(fr *http2.Framer)) []byte {
		var buf bytes.Buffer
		fr := http2.NewFramer(&buf, nil)
		write(fr)
		return buf.Bytes()
	}
	for name, tc := range map[string]struct {
		buf    []byte
		frames int // joined, 1 for a frame alone
		end    bool
	}{
		"a run of small ones": {frames(func(fr *http2.Framer) {
			for range 5 {
				fr.WriteData(1, false, small)
			}
		}), 5, false},
		"up to the end of the stream": {frames(func(fr *http2.Framer) {
			fr.WriteData(1, false, small)
			fr.WriteData(1, true, small)
			fr.WriteData(1, false, small)
		}), 2, true},
		"not past another stream's": {frames(func(fr *http2.Framer) {
			fr.WriteData(1, false, small)
			fr.WriteData(1, false, small)
			fr.WriteData(3, false, small)
			fr.WriteData(1, false, small)
		}), 2, false},
		"not an empty one (the edge's budget counts it)": {frames(func(fr *http2.Framer) {
			fr.WriteData(1, false, small)
			fr.WriteData(1, false, nil)
		}), 1, false},
		"not a large one (written in place)": {frames(func(fr *http2.Framer) {
			fr.WriteData(1, false, small)
			fr.WriteData(1, false, big)
		}), 1, false},
		"a large one alone": {frames(func(fr *http2.Framer) {
			fr.WriteData(1, false, big)
			fr.WriteData(1, false, small)
		}), 1, false},
		"not past a padded one": {frames(func(fr *http2.Framer) {
			fr.WriteData(1, false, small)
			fr.WriteDataPadded(1, false, small, []byte{0})
		}), 1, false},
		"up to joinMax": {frames(func(fr *http2.Framer) {
			for range joinMax/(borrowMin-1) + 2 {
				fr.WriteData(1, false, big[:borrowMin-1])
			}
		}), joinMax / (borrowMin - 1), false},
	} {
		t.Run(name, func(t *testing.T) {
			b := &readBuf{cur: tc.buf, w: len(tc.buf)}
			d, n, ok := b.joinData(frameSize)
			if !ok {
				t.Fatal("nothing taken")
			}
			fr := http2.NewFramer(nil, bytes.NewReader(tc.buf))
			var want []byte
			at := 0
			for range tc.frames {
				f, err := fr.ReadFrame()
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, f.(*http2.DataFrame).Data()...)
				at += frameHeaderLen + int(f.Header().Length)
			}
			if n != at || !bytes.Equal(d.data, want) || int(d.flowLen) != len(want) || d.end != tc.end {
				t.Fatalf("joined %d bytes of the buffer, %d of payload, end %v; want %d frames: %d bytes, %d of payload, end %v",
					n, len(d.data), d.end, tc.frames, at, len(want), tc.end)
			}
			if d.inPlace != (tc.frames == 1 && b.stable()) {
				t.Fatalf("inPlace %v for %d frames", d.inPlace, tc.frames)
			}
		})
	}
}

// batch sends frames in one write, so that the relay reads them together
// and finds whole DATA frames in its read buffer.
func (rt *relayTester) batch(write func(bf *http2.Framer)) {
	rt.t.Helper()
	writeBatch(rt.t, rt.conn, write)
}

// batch is relayTester.batch from the backend's end.
func (p *backendPeer) batch(write func(bf *http2.Framer)) {
	p.t.Helper()
	writeBatch(p.t, p.conn, write)
}

func writeBatch(t *testing.T, c io.Writer, write func(bf *http2.Framer)) {
	t.Helper()
	var buf bytes.Buffer
	bf := http2.NewFramer(&buf, nil)
	bf.AllowIllegalWrites = true // the tests' frames that break the rules
	write(bf)
	if _, err := c.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
}

// roomy gives the relay all the window it needs toward b.
func roomy(b *backendPeer) {
	b.must(b.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 4 << 20}))
	b.must(b.fr.WriteWindowUpdate(0, 8<<20))
}

// A large upload in one write, in frames of every size, some padded, many
// cut by the ends of the relay's reads: the backend gets exactly the
// bytes sent, without the padding.
func TestRelayForwardsBufferedData(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		b, h := rt.forwarded(nil, 1, []byte("first"))
		rt.answered(b, h, 1, []byte("ok"), codes.OK)
		roomy(b)
		synctest.Wait()

		rnd := rand.New(rand.NewPCG(26, 1))
		body := make([]byte, 600<<10) // over two reads of readSize
		for i := range body {
			body[i] = byte(rnd.Uint32())
		}
		msg := frame(0, body)
		rt.batch(func(bf *http2.Framer) {
			rt.must(bf.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: encode(rt.henc, &rt.hbuf, request()), EndHeaders: true}))
			for rest := msg; len(rest) > 0; {
				n := min(len(rest), 1+rnd.IntN(frameSize))
				if rnd.IntN(8) == 0 {
					n = min(n, frameSize-256)
					rt.must(bf.WriteDataPadded(3, n == len(rest), rest[:n], make([]byte, rnd.IntN(256))))
				} else {
					rt.must(bf.WriteData(3, n == len(rest), rest[:n]))
				}
				rest = rest[n:]
			}
		})
		h = b.wantHeaders()
		b.wantData(true, msg)
		rt.answered(b, h, 3, []byte("ok"), codes.OK)
		rt.wantOpen(0)
	}, func(o *Options) { o.MaxRecvMsgSize = 1 << 20 })
}

// A DATA frame whole in the read buffer is refused as the framer refuses
// it: on stream 0, on an idle stream, over the frame size, with more
// padding than payload.
func TestRelayBufferedDataBreakingTheRules(t *testing.T) {
	for name, tc := range map[string]struct {
		bad  func(rt *relayTester, bf *http2.Framer)
		code http2.ErrCode
	}{
		"DATA on stream 0":  {func(rt *relayTester, bf *http2.Framer) { rt.must(bf.WriteData(0, false, []byte("x"))) }, http2.ErrCodeProtocol},
		"DATA on idle":      {func(rt *relayTester, bf *http2.Framer) { rt.must(bf.WriteData(5, false, []byte("x"))) }, http2.ErrCodeProtocol},
		"over the max size": {func(rt *relayTester, bf *http2.Framer) { rt.must(bf.WriteData(1, false, make([]byte, frameSize+1))) }, http2.ErrCodeFrameSize},
		"padding too long": {func(rt *relayTester, bf *http2.Framer) {
			// Length 4: the pad length byte says 200.
			rt.must(bf.WriteRawFrame(http2.FrameData, http2.FlagDataPadded, 1, []byte{200, 'a', 'b', 'c'}))
		}, http2.ErrCodeProtocol},
	} {
		t.Run(name, func(t *testing.T) {
			runRelay(t, func(rt *relayTester) {
				rt.batch(func(bf *http2.Framer) {
					rt.must(bf.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: encode(rt.henc, &rt.hbuf, request()), EndHeaders: true}))
					// More than the first small read, so that what
					// follows is read whole into the large buffer.
					rt.must(bf.WriteData(1, false, make([]byte, 4<<10)))
					tc.bad(rt, bf)
				})
				rt.wantGoAway(tc.code, "")
			}, func(o *Options) { o.MaxRecvMsgSize = 1 << 20 })
		})
	}
}

// A client past the stream window in one write has the stream reset, as
// frame by frame.
func TestRelayBufferedDataOverTheWindow(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		rt.headers(1, false, request())
		b := rt.backend()
		b.wantHeaders()
		rt.batch(func(bf *http2.Framer) {
			chunk := make([]byte, frameSize)
			for range streamWindow / frameSize {
				rt.must(bf.WriteData(1, false, chunk))
			}
			rt.must(bf.WriteData(1, false, []byte{0}))
		})
		rt.wantRST(1, http2.ErrCodeFlowControl)
		rt.wantOpen(0)
	}, func(o *Options) { o.MaxRecvMsgSize = 4 << 20 })
}

// What waits for the backend's window, and what waits for the decision,
// was read into a buffer the next reads reuse: it is kept as a copy, and
// leaves as it was sent.
func TestRelayHoldsBufferedDataAsACopy(t *testing.T) {
	t.Run("behind the backend's window", func(t *testing.T) {
		runRelay(t, func(rt *relayTester) {
			rt.headers(1, false, request())
			b := rt.backend()
			h := b.wantHeaders()
			body := frame(0, bytes.Repeat([]byte("0123456789abcdef"), 70000/16))
			rt.batch(func(bf *http2.Framer) {
				for rest := body; len(rest) > 0; {
					n := min(len(rest), frameSize)
					rt.must(bf.WriteData(1, false, rest[:n]))
					rest = rest[n:]
				}
			})
			var got []byte
			for len(got) < 65535 {
				got = append(got, b.read().(*http2.DataFrame).Data()...)
			}
			b.quiet()
			// Reads into the same buffers: what waits must not change.
			more := frame(0, bytes.Repeat([]byte("Z"), 8*frameSize-5))
			rt.batch(func(bf *http2.Framer) {
				for rest := more; len(rest) > 0; rest = rest[frameSize:] {
					rt.must(bf.WriteData(1, false, rest[:frameSize]))
				}
			})
			rt.must(rt.fr.WritePing(false, [8]byte{'Z', 'Z', 'Z', 'Z', 'Z', 'Z', 'Z', 'Z'}))
			if f := rt.next(); !isPingAck(f) {
				t.Fatalf("want a PING ACK, got %v", f)
			}
			roomy(b)
			b.must(b.fr.WriteWindowUpdate(h.StreamID, 1<<20))
			want := append(append([]byte(nil), body...), more...)
			for len(got) < len(want) {
				got = append(got, b.read().(*http2.DataFrame).Data()...)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("the backend got %d bytes, not those sent", len(got))
			}
		}, func(o *Options) { o.MaxRecvMsgSize = 1 << 20 })
	})
	t.Run("while deciding", func(t *testing.T) {
		runRelay(t, func(rt *relayTester) {
			msg := frame(0, search(t, "books", 100))
			rt.deciding(1)
			rt.data(1, false, msg[:10])
			rt.quiet()
			// The next reads overwrite the buffer the first bytes came in.
			rt.must(rt.fr.WritePing(false, [8]byte{'Z', 'Z', 'Z', 'Z', 'Z', 'Z', 'Z', 'Z'}))
			if f := rt.next(); !isPingAck(f) {
				t.Fatalf("want a PING ACK, got %v", f)
			}
			rt.data(1, true, msg[10:])
			b := rt.backend()
			b.wantHeaders()
			b.wantData(true, msg)
		}, withAdmission(t, true))
	})
}

func isPingAck(f http2.Frame) bool {
	p, ok := f.(*http2.PingFrame)
	return ok && p.IsAck()
}

// What a flush writes of payloads borrowed in place is what they held
// when borrowed, in order with the bytes copied around them, in one
// write where the connection gathers; without writev, they are copied at
// once.
func TestWriteBufBorrows(t *testing.T) {
	t.Run("gathered", func(t *testing.T) {
		a, b := memPipe()
		wb := newWriteBuf(a)
		payload := []byte("BORROWED")
		if _, err := wb.Write([]byte("head|")); err != nil {
			t.Fatal(err)
		}
		if err := wb.borrow(payload); err != nil {
			t.Fatal(err)
		}
		if _, err := wb.Write([]byte("|tail")); err != nil {
			t.Fatal(err)
		}
		if err := wb.Flush(); err != nil {
			t.Fatal(err)
		}
		copy(payload, "OVERWRIT") // after the flush: changes nothing sent
		got := make([]byte, b.buffered())
		if _, err := io.ReadFull(b, got); err != nil {
			t.Fatal(err)
		}
		if string(got) != "head|BORROWED|tail" {
			t.Fatalf("wrote %q", got)
		}
		if writes, gathered := b.writeCounts(); writes != 1 || gathered != 1 {
			t.Fatalf("%d writes (%d gathered), want one gathered", writes, gathered)
		}
	})
	t.Run("over maxSegs", func(t *testing.T) {
		a, b := memPipe()
		wb := newWriteBuf(a)
		var want []byte
		for i := range 3 * maxSegs {
			p := []byte{byte(i)}
			want = append(want, 'h', p[0])
			if _, err := wb.Write([]byte("h")); err != nil {
				t.Fatal(err)
			}
			if err := wb.borrow(p); err != nil {
				t.Fatal(err)
			}
		}
		if err := wb.Flush(); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, b.buffered())
		if _, err := io.ReadFull(b, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("wrote %v, want %v", got, want)
		}
	})
	t.Run("no writev", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		wb := newWriteBuf(a) // a pipe: no writev
		payload := []byte("BORROWED")
		if err := wb.borrow(payload); err != nil {
			t.Fatal(err)
		}
		copy(payload, "OVERWRIT") // before the flush: copied already
		done := make(chan []byte)
		go func() {
			got := make([]byte, len(payload))
			_, _ = io.ReadFull(b, got)
			done <- got
		}()
		if err := wb.Flush(); err != nil {
			t.Fatal(err)
		}
		if got := <-done; string(got) != "BORROWED" {
			t.Fatalf("wrote %q", got)
		}
	})
}

// The read buffer a reader's payloads were written from in place goes
// back to the pool only once the reader has flushed, before its next
// read: another connection's reader could take it and read into it.
// Under TLS, where flushes wait across reads, nothing is written in place.
func TestReadBufIsStableUntilTheFlush(t *testing.T) {
	a, b := memPipe()
	rb := newReadBuf(a)
	var heldAtFlush []bool
	rb.beforeRead = func() error {
		heldAtFlush = append(heldAtFlush, rb.big != nil)
		return nil
	}
	if !rb.stable() {
		t.Fatal("a reader that flushes before every read is not stable")
	}
	// A busy read (over smallRead), then one into the pooled buffer.
	frames := bytes.Repeat([]byte{0, 0, 0, byte(http2.FrameData), 0, 0, 0, 0, 1}, smallRead/9+1)
	if _, err := b.Write(frames); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(rb, make([]byte, len(frames)-1)); err != nil {
		t.Fatal(err)
	}
	if rb.big == nil {
		t.Fatal("no pooled buffer after a busy read")
	}
	// The traffic goes light, and the last byte is consumed: the buffer
	// is kept until the next read has flushed what was written from it.
	rb.busy = 0
	if _, err := io.ReadFull(rb, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write(frames[:9]); err != nil {
		t.Fatal(err)
	}
	if _, err := rb.Read(make([]byte, 9)); err != nil {
		t.Fatal(err)
	}
	if n := len(heldAtFlush); n < 3 || !heldAtFlush[n-1] {
		t.Fatalf("the pooled buffer went back before the flush (held at each flush: %v)", heldAtFlush)
	}
	if rb.big != nil {
		t.Fatal("the pooled buffer was kept after the traffic went light")
	}

	rb.ready = func() bool { return true } // TLS with records buffered
	if rb.stable() {
		t.Fatal("a reader whose flushes wait across reads is stable")
	}
}

// dataFrames reads the relay's next frames up to one that ends a stream or
// until want bytes came, and returns each DATA frame as "stream:length"
// (with "+end" on the one that ends its stream), in order.
func dataFrames(t *testing.T, next func() http2.Frame, want int) (frames []string, got []byte) {
	t.Helper()
	for len(got) < want {
		d, ok := next().(*http2.DataFrame)
		if !ok {
			t.Fatalf("want DATA, got %v", d)
		}
		f := fmt.Sprintf("%d:%d", d.StreamID, len(d.Data()))
		if d.StreamEnded() {
			f += "+end"
		}
		frames = append(frames, f)
		got = append(got, d.Data()...)
		if d.StreamEnded() {
			break
		}
	}
	return frames, got
}

// The DATA frames of a stream that arrive in one read leave in one frame,
// up to the peer's frame size, in both directions; a frame of another
// stream between them, or a frame the flush has written, is not extended;
// an empty frame that ends the stream ends the one before it.
func TestRelayJoinsTheDataOfOneRead(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		b, h1 := rt.streaming(nil, 1, []byte("open 1"))
		b, h3 := rt.streaming(b, 3, []byte("open 3"))
		roomy(b)
		synctest.Wait()
		b1, b3 := h1.StreamID, h3.StreamID
		msg := func(s string) []byte { return frame(0, []byte(s)) }

		// Three messages of one stream in one read: one frame.
		rt.batch(func(bf *http2.Framer) {
			for _, m := range []string{"a", "bb", "ccc"} {
				rt.must(bf.WriteData(1, false, msg(m)))
			}
		})
		want := slices.Concat(msg("a"), msg("bb"), msg("ccc"))
		if frames, got := dataFrames(t, b.read, len(want)); !slices.Equal(frames, []string{fmt.Sprintf("%d:%d", b1, len(want))}) || !bytes.Equal(got, want) {
			t.Errorf("three frames in one read reached the backend as %v %q, want one frame %q", frames, got, want)
		}

		// Another stream's frame between them: three frames. The padding of
		// a padded frame is not forwarded.
		rt.batch(func(bf *http2.Framer) {
			rt.must(bf.WriteData(1, false, msg("d")))
			rt.must(bf.WriteData(3, false, msg("e")))
			rt.must(bf.WriteDataPadded(3, false, msg("f"), make([]byte, 7)))
			rt.must(bf.WriteData(1, false, msg("g")))
		})
		n := len(msg("d"))
		if frames, _ := dataFrames(t, b.read, 4*n); !slices.Equal(frames, []string{
			fmt.Sprintf("%d:%d", b1, n), fmt.Sprintf("%d:%d", b3, 2*n), fmt.Sprintf("%d:%d", b1, n)}) {
			t.Errorf("interleaved streams reached the backend as %v", frames)
		}

		// An empty frame that ends the stream ends the frame before it.
		rt.batch(func(bf *http2.Framer) {
			rt.must(bf.WriteData(1, false, msg("h")))
			rt.must(bf.WriteData(1, true, nil))
		})
		if frames, _ := dataFrames(t, b.read, n); !slices.Equal(frames, []string{fmt.Sprintf("%d:%d+end", b1, n)}) {
			t.Errorf("the end of the stream reached the backend as %v", frames)
		}

		// Over the backend's frame size (16 KiB, its default): cut there,
		// the frame open filled first (the first read, of a connection
		// that was idle, is a small one: 1 of them, one frame).
		big := make([]byte, 1000-5)
		rt.batch(func(bf *http2.Framer) {
			for range 20 {
				rt.must(bf.WriteData(3, false, frame(0, big)))
			}
		})
		if frames, got := dataFrames(t, b.read, 20*1000); !slices.Equal(frames, []string{
			fmt.Sprintf("%d:%d", b3, 1000), fmt.Sprintf("%d:%d", b3, frameSize), fmt.Sprintf("%d:%d", b3, 19000-frameSize)}) || len(got) != 20000 {
			t.Errorf("20 KB in frames of 1000 reached the backend as %v", frames)
		}

		// The backend's answers, in one write: one frame to the client.
		b.batch(func(bf *http2.Framer) {
			rt.must(bf.WriteHeaders(http2.HeadersFrameParam{StreamID: b1, BlockFragment: encode(b.henc, &b.hbuf, pairs(":status", "200", "content-type", "application/grpc")), EndHeaders: true}))
			for _, m := range []string{"x", "yy", "zzz"} {
				rt.must(bf.WriteData(b1, false, msg(m)))
			}
		})
		if h, ok := rt.next().(*http2.MetaHeadersFrame); !ok || h.StreamID != 1 {
			t.Fatalf("want the response headers on 1, got %v", h)
		}
		want = slices.Concat(msg("x"), msg("yy"), msg("zzz"))
		if frames, got := dataFrames(t, rt.next, len(want)); !slices.Equal(frames, []string{fmt.Sprintf("1:%d", len(want))}) || !bytes.Equal(got, want) {
			t.Errorf("three frames in one read reached the client as %v %q, want one frame %q", frames, got, want)
		}
	}, func(o *Options) { o.MaxRecvMsgSize = 4 << 20 })
}

// recordingConn keeps what is written to it (and has no writev, as TLS).
type recordingConn struct {
	net.Conn
	written bytes.Buffer
}

func (c *recordingConn) Write(p []byte) (int, error) { return c.written.Write(p) }

// A DATA frame whose payload fills the write buffers is written out in
// part, its header included, before the payload's end: it is not extended
// after that. (Were it, its header would be patched in a buffer already
// written and given back, and the bytes joined to it would reach the peer
// without a header.)
func TestDataIsNotJoinedToAFrameAlreadyWritten(t *testing.T) {
	c := &recordingConn{}
	w, _ := newWconn(c, nil)
	w.maxFrame = frameSize
	full := make([]byte, frameSize)
	w.mu.Lock()
	// 31 whole frames of stream 3 fill the buffers (maxGather of bufSize)
	// but 16,105 bytes; a frame of 16,100 on stream 1 crosses their end.
	for range 31 {
		w.data(3, false, full, false)
	}
	crossing := bytes.Repeat([]byte{'a'}, 16100)
	w.data(1, false, crossing, false)
	w.data(1, true, []byte("after the flush"), false)
	w.mu.Unlock()
	if err := w.flush(); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(nil, &c.written)
	var got []string
	for {
		f, err := fr.ReadFrame()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the frames written do not parse after %d frames: %v", len(got), err)
		}
		d := f.(*http2.DataFrame)
		if d.StreamID == 1 {
			got = append(got, string(d.Data()))
		}
	}
	if want := []string{string(crossing), "after the flush"}; !slices.Equal(got, want) {
		t.Errorf("stream 1 reached the peer as %d frames (%.20q...), want 2: the crossing frame, then its own", len(got), got)
	}
}
