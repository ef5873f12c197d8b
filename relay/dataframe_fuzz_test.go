package relay

import (
	"bytes"
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
