package relay

import (
	"encoding/binary"

	"golang.org/x/net/http2"
)

// dataFrame is what the relay uses of a DATA frame, read by the framer or
// straight out of the read buffer (readBuf.peekData).
type dataFrame struct {
	streamID uint32
	flowLen  uint32 // the frame's length, padding included: what it costs the windows
	data     []byte // the payload without padding, valid until the next read
	end      bool   // END_STREAM
	// inPlace: data is in a stable read buffer (readBuf.stable), which
	// it may be written from without a copy (inReadBuf).
	inPlace bool
}

func dataOf(f *http2.DataFrame) dataFrame {
	return dataFrame{streamID: f.StreamID, flowLen: f.Length, data: f.Data(), end: f.StreamEnded()}
}

// carriesNothing says whether the frame costs work and moves no call on
// (an empty DATA that does not end its stream): within edge's FrameBudget.
func (d dataFrame) carriesNothing() bool { return d.flowLen == 0 && !d.end }

// frameHeaderLen is the length of an HTTP/2 frame header (RFC 9113 §4.1).
const frameHeaderLen = 9

// peekData returns the next frame in the buffer, and its length on the
// wire, when it is a DATA frame the framer would take as it is: whole in
// the buffer, on a stream, unpadded, at most max long. Its payload is
// then read in place, without the framer's copy; the caller handles it,
// then skips it, before it reads again. Anything else (another type, a
// frame cut by the end of the read, padding, stream 0, a frame over max)
// is left to the framer and its checks.
//
// The framer would also refuse a DATA frame inside a header block; the
// readers' framers read a header block whole (ReadMetaHeaders), so a frame
// after one never is.
func (b *readBuf) peekData(max uint32) (dataFrame, int, bool) {
	buf := b.cur[b.r:b.w]
	if len(buf) < frameHeaderLen || http2.FrameType(buf[3]) != http2.FrameData {
		return dataFrame{}, 0, false
	}
	length := uint32(buf[0])<<16 | uint32(buf[1])<<8 | uint32(buf[2])
	flags := http2.Flags(buf[4])
	id := binary.BigEndian.Uint32(buf[5:]) & (1<<31 - 1)
	n := frameHeaderLen + int(length)
	if id == 0 || flags.Has(http2.FlagDataPadded) || length > max || len(buf) < n {
		return dataFrame{}, 0, false
	}
	return dataFrame{streamID: id, flowLen: length, data: buf[frameHeaderLen:n:n], end: flags.Has(http2.FlagDataEndStream),
		inPlace: b.stable()}, n, true
}

// skip consumes n buffered bytes (a frame peekData returned, once
// handled).
func (b *readBuf) skip(n int) {
	b.r += n
	if b.r == b.w {
		b.release()
	}
}
