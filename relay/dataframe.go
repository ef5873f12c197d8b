package relay

import (
	"encoding/binary"
	"sync"

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
	d, n, ok := dataAt(b.cur[b.r:b.w], max)
	d.inPlace = ok && b.stable()
	return d, n, ok
}

// dataAt reads a DATA frame at the start of buf as peekData does.
func dataAt(buf []byte, max uint32) (dataFrame, int, bool) {
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
	return dataFrame{streamID: id, flowLen: length, data: buf[frameHeaderLen:n:n], end: flags.Has(http2.FlagDataEndStream)}, n, true
}

// joinMax bounds the payload joinData gathers: one frame's worth.
const joinMax = frameSize

// joinPool holds the buffers joinData copies payloads into; a reader
// holds one from its first join until its next read (readBuf.Read).
var joinPool = sync.Pool{New: func() any { b := make([]byte, 0, joinMax); return &b }}

// joinData is peekData for a reader that forwards what it reads: a small
// DATA frame (under borrowMin) is joined with the small ones that follow
// it whole in the buffer on its stream, up to the first that ends the
// stream, one that carries nothing (edge's budget counts those one by
// one) or joinMax, their payloads copied into a pooled buffer. One frame's
// checks, locks and window accounting then serve a read's run of small
// messages, which the relay joins on the way out anyway
// (wconn.extendData): DATA frame boundaries mean nothing (RFC 9113 §6.1).
// The frame returned is their sum (flowLen, payload, the last one's
// END_STREAM), valid until the next read, and the bytes they span.
func (b *readBuf) joinData(max uint32) (dataFrame, int, bool) {
	d, n, ok := b.peekData(max)
	if !ok || !joinable(d) {
		return d, n, ok
	}
	buf := b.cur[b.r:b.w]
	var joined []byte
	for !d.end {
		next, m, ok := dataAt(buf[n:], max)
		if !ok || next.streamID != d.streamID || !joinable(next) || len(d.data)+len(next.data) > joinMax {
			break
		}
		if joined == nil {
			if b.joined == nil {
				b.joined = joinPool.Get().(*[]byte)
			}
			joined = append((*b.joined)[:0], d.data...)
		}
		joined = append(joined, next.data...)
		d.data = joined
		d.flowLen += next.flowLen
		d.end = next.end
		n += m
	}
	if joined != nil {
		*b.joined = joined
		d.inPlace = false
	}
	return d, n, true
}

// joinable says a frame may be joined: small, and carrying something.
func joinable(d dataFrame) bool { return len(d.data) > 0 && len(d.data) < borrowMin }

// skip consumes n buffered bytes (a frame peekData returned, once
// handled).
func (b *readBuf) skip(n int) {
	b.r += n
	if b.r == b.w {
		b.release()
	}
}
