package relay

import (
	"bytes"
	"io"
	"net"
	"testing"

	"golang.org/x/net/http2"
)

// peekData is a hand-written reader of DATA frames beside x/net's framer,
// the parser the backend side (grpc-go) reads with: whatever it takes, the
// framer must read the same way (stream, length, payload, END_STREAM,
// bytes consumed). What it declines goes to the framer anyway.
func FuzzPeekDataReadsAsTheFramer(f *testing.F) {
	frame := func(write func(*http2.Framer) error) []byte {
		var b bytes.Buffer
		if err := write(http2.NewFramer(&b, nil)); err != nil {
			f.Fatal(err)
		}
		return b.Bytes()
	}
	f.Add(frame(func(fr *http2.Framer) error { return fr.WriteData(1, false, []byte("hello")) }), uint16(frameSize))
	f.Add(frame(func(fr *http2.Framer) error { return fr.WriteData(3, true, nil) }), uint16(frameSize))
	f.Add(frame(func(fr *http2.Framer) error { return fr.WriteDataPadded(5, true, []byte("x"), make([]byte, 7)) }), uint16(frameSize))
	f.Add(frame(func(fr *http2.Framer) error { return fr.WriteData(7, false, bytes.Repeat([]byte("a"), 300)) }), uint16(256))
	f.Add(frame(func(fr *http2.Framer) error { return fr.WriteRSTStream(1, http2.ErrCodeCancel) }), uint16(frameSize))
	f.Add([]byte("\x00\x00\x02\x00\x01\x80\x00\x00\x01ab"), uint16(frameSize)) // the reserved bit set
	f.Fuzz(func(t *testing.T, in []byte, max uint16) {
		b := &readBuf{cur: in, w: len(in)}
		d, n, ok := b.peekData(uint32(max))
		if !ok {
			return
		}
		r := bytes.NewReader(in)
		fr := http2.NewFramer(nil, r)
		fr.SetMaxReadFrameSize(uint32(max))
		got, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("peekData took a frame the framer refuses: %v", err)
		}
		df, isData := got.(*http2.DataFrame)
		switch {
		case !isData:
			t.Fatalf("peekData took a %v frame", got.Header().Type)
		case df.StreamID != d.streamID || df.Length != d.flowLen || df.StreamEnded() != d.end || !bytes.Equal(df.Data(), d.data):
			t.Fatalf("peekData read stream %d, %d bytes, end %v, payload %q; the framer stream %d, %d bytes, end %v, payload %q",
				d.streamID, d.flowLen, d.end, d.data, df.StreamID, df.Length, df.StreamEnded(), df.Data())
		case len(in)-r.Len() != n:
			t.Fatalf("peekData consumed %d bytes, the framer %d", n, len(in)-r.Len())
		}
	})
}

// joinData, beside x/net's framer: the bytes it takes are whole DATA
// frames of one stream, the framer reads, none but the last ending the
// stream, and it returns their payloads joined, their lengths summed and
// the last one's END_STREAM.
func FuzzJoinDataReadsAsTheFramer(f *testing.F) {
	frames := func(write func(*http2.Framer)) []byte {
		var b bytes.Buffer
		write(http2.NewFramer(&b, nil))
		return b.Bytes()
	}
	f.Add(frames(func(fr *http2.Framer) {
		fr.WriteData(1, false, []byte("a"))
		fr.WriteData(1, false, []byte("bb"))
		fr.WriteData(1, true, []byte("ccc"))
		fr.WriteData(1, false, []byte("d"))
	}), uint16(frameSize))
	f.Add(frames(func(fr *http2.Framer) {
		fr.WriteData(1, false, []byte("a"))
		fr.WriteData(3, false, []byte("b"))
		fr.WriteData(1, false, nil)
	}), uint16(frameSize))
	f.Add(frames(func(fr *http2.Framer) {
		fr.WriteData(1, false, []byte("a"))
		fr.WriteDataPadded(1, false, []byte("b"), []byte{0, 0})
		fr.WriteData(1, false, bytes.Repeat([]byte("c"), borrowMin))
	}), uint16(frameSize))
	f.Add(frames(func(fr *http2.Framer) {
		for range 40 {
			fr.WriteData(1, false, bytes.Repeat([]byte("x"), 500))
		}
	}), uint16(600))
	f.Fuzz(func(t *testing.T, in []byte, max uint16) {
		b := &readBuf{cur: in, w: len(in)}
		d, n, ok := b.joinData(uint32(max))
		if !ok {
			return
		}
		r := bytes.NewReader(in)
		fr := http2.NewFramer(nil, r)
		fr.SetMaxReadFrameSize(uint32(max))
		var data []byte
		var flow uint32
		end := false
		for len(in)-r.Len() < n {
			if end {
				t.Fatalf("joinData went past the end of stream %d", d.streamID)
			}
			got, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("joinData took a frame the framer refuses: %v", err)
			}
			df, isData := got.(*http2.DataFrame)
			if !isData || df.StreamID != d.streamID {
				t.Fatalf("joinData took a %v frame of stream %d into stream %d's", got.Header().Type, got.Header().StreamID, d.streamID)
			}
			data = append(data, df.Data()...)
			flow += df.Length
			end = df.StreamEnded()
		}
		switch {
		case len(in)-r.Len() != n:
			t.Fatalf("joinData took %d bytes, which end inside a frame (the framer is at %d)", n, len(in)-r.Len())
		case !bytes.Equal(data, d.data) || flow != d.flowLen || end != d.end:
			t.Fatalf("joinData read %d bytes, payload %q, end %v; the framer %d bytes, payload %q, end %v", d.flowLen, d.data, d.end, flow, data, end)
		}
	})
}

// gatheringConn records what is written to it, with writev as a socket has
// (so that payloads are borrowed in place, writeBuf.borrow).
type gatheringConn struct{ recordingConn }

func (c *gatheringConn) writeBuffers(bufs [][]byte) (int, error) {
	n := 0
	for _, b := range bufs {
		m, _ := c.written.Write(b)
		n += m
	}
	return n, nil
}

// wconn.data joins DATA frames in the write buffer it also writes other
// frames to and flushes, whole or in part: whatever the order of writes,
// x/net's framer (grpc-go's reader) must read back every stream's bytes in
// order, its end where it was written, and no frame over the peer's size.
// Each input byte is one step: DATA on one of three streams (of a size
// from the next byte, up to the frame size, in place or copied, ending the
// stream or not), a WINDOW_UPDATE, or a flush.
func FuzzJoinedDataReadsAsWritten(f *testing.F) {
	f.Add([]byte{0, 10, 0, 20, 8, 30, 3, 0, 2, 1, 5})
	f.Add([]byte{0, 10, 6, 0, 10}) // a WINDOW_UPDATE between two DATA of one stream
	f.Add(bytes.Repeat([]byte{0, 255, 4, 255}, 40))
	// 31 whole frames on stream 3 nearly fill the buffers; stream 1's
	// frame of 16,191 bytes crosses their end, then 192 more bytes of it.
	f.Add(append(bytes.Repeat([]byte{1, 255}, 31), 0, 252, 0, 3))
	f.Add(bytes.Repeat([]byte{0x44, 1}, 70)) // small in-place payloads on one stream: 64 pieces
	f.Fuzz(func(t *testing.T, steps []byte) {
		for _, gather := range []bool{false, true} {
			var c net.Conn = &recordingConn{}
			if gather {
				c = &gatheringConn{}
			}
			w, _ := newWconn(c, nil)
			w.maxFrame = frameSize
			sent := map[uint32][]byte{}
			ended := map[uint32]bool{}
			w.mu.Lock()
			for i := 0; i < len(steps); i++ {
				op := steps[i]
				switch op % 8 {
				case 6:
					w.note(w.fr.WriteWindowUpdate(0, 1))
				case 7:
					w.mu.Unlock()
					_ = w.flush()
					w.mu.Lock()
				default:
					id := uint32(1 + 2*(op%3))
					if ended[id] {
						continue
					}
					size := 0
					if i+1 < len(steps) {
						i++
						size = int(steps[i]) * frameSize / 255
					}
					end := op&0x10 != 0 && op&0x20 != 0
					p := bytes.Repeat([]byte{byte(id), byte(len(sent[id]))}, size/2+1)[:size]
					w.data(id, end, p, op&0x40 != 0)
					sent[id] = append(sent[id], p...)
					ended[id] = end
				}
			}
			w.mu.Unlock()
			if err := w.flush(); err != nil {
				t.Fatal(err)
			}
			var out *bytes.Buffer
			if gather {
				out = &c.(*gatheringConn).written
			} else {
				out = &c.(*recordingConn).written
			}
			fr := http2.NewFramer(nil, out)
			got := map[uint32][]byte{}
			gotEnd := map[uint32]bool{}
			for {
				fh, err := fr.ReadFrame()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("gather %v: the frames written do not parse: %v", gather, err)
				}
				d, ok := fh.(*http2.DataFrame)
				if !ok {
					continue
				}
				if gotEnd[d.StreamID] {
					t.Fatalf("gather %v: DATA on stream %d after its end", gather, d.StreamID)
				}
				if d.Length > frameSize {
					t.Fatalf("gather %v: a frame of %d bytes, over the peer's %d", gather, d.Length, frameSize)
				}
				got[d.StreamID] = append(got[d.StreamID], d.Data()...)
				gotEnd[d.StreamID] = d.StreamEnded()
			}
			for id, want := range sent {
				if !bytes.Equal(got[id], want) || gotEnd[id] != ended[id] {
					t.Fatalf("gather %v: stream %d read back as %d bytes (end %v), written %d (end %v)", gather, id, len(got[id]), gotEnd[id], len(want), ended[id])
				}
			}
		}
	})
}
