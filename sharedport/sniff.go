package sharedport

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/soheilhy/cmux"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/authproxy/authproxy/edge"
)

// Bounds on what a connection may send before it is known. A gRPC client
// sends the preface, SETTINGS, perhaps a WINDOW_UPDATE, and the headers of
// its first call: a few hundred bytes.
const (
	maxSniffBytes       = 64 << 10 // everything read while sniffing
	maxHeaderBlockBytes = 16 << 10 // the first request's header block
	maxHeaderString     = 8 << 10  // one header name or value
	maxControlFrames    = 8        // SETTINGS, PING, WINDOW_UPDATE, PRIORITY before the headers
)

var errSniffLimit = errors.New("sniff limit exceeded")

// cappedReader fails once more than n bytes have been read.
type cappedReader struct {
	r io.Reader
	n int
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, errSniffLimit
	}
	if len(p) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= n
	return n, err
}

// verdict is what sniffing a new connection found.
type verdict int

const (
	// other: not gRPC (not HTTP/2, or an HTTP/2 request of another type).
	other verdict = iota
	isGRPC
	// broken: an HTTP/2 connection that broke the protocol, went over a
	// limit, left or stayed silent before its first request. Closed at
	// once (after a GOAWAY saying why, where the protocol calls for one).
	broken
)

// matchGRPC matches connections whose first request is gRPC; the sniffer
// sends settings as its SETTINGS.
func matchGRPC(settings []http2.Setting) cmux.MatchWriter {
	return func(w io.Writer, r io.Reader) bool { return sniff(w, r, settings) == isGRPC }
}

// matchBroken matches the connections to close. It sniffs again what the
// mux buffered, writing nothing: the client has its answers already.
func matchBroken(_ io.Writer, r io.Reader) bool { return sniff(io.Discard, r, nil) == broken }

// sniff reads the start of a connection up to its first request's header
// block, and answers it as an HTTP/2 server must until then: its own
// SETTINGS after the client's first, an ACK for every SETTINGS and PING at
// once (RFC 9113 §6.5.3, §6.7: some clients wait for them before their
// first request), and a GOAWAY for a connection error. Its SETTINGS are
// the REST server's own (settings), which REST then does not send again;
// the gRPC server sends its own after them. The server the connection
// goes to (gRPC or REST) reads the same frames again; answeredConn hides
// its second answers.
//
// It reads at most maxSniffBytes, frames of at most 16 KiB, a header block
// of at most maxHeaderBlockBytes, and calls broken anything a client does
// not send before its first request (DATA, a flood of control frames, a
// CONTINUATION without HEADERS), and a connection that sends nothing. A
// connection that does not start with the HTTP/2 preface is other: the
// port serves it as HTTP/1 or closes it.
func sniff(w io.Writer, r io.Reader, settings []http2.Setting) verdict {
	r = &cappedReader{r: r, n: maxSniffBytes}
	if v, ok := readPreface(r); !ok {
		return v
	}
	var (
		matched, done, settled bool
		out                    bytes.Buffer // answers to one frame
		window                 = int64(initialWindow)
		control                int
		block                  int
	)
	framer := http2.NewFramer(&out, r)
	framer.SetMaxReadFrameSize(16 << 10) // the protocol's minimum, all a first request needs
	var malformed string                 // a field HTTP/2 forbids in a request (RFC 9113 §8.2.2)
	headers := hpack.NewDecoder(4<<10, func(f hpack.HeaderField) {
		switch {
		case f.Name == "content-type":
			matched = strings.HasPrefix(f.Value, "application/grpc")
		case edge.ConnectionSpecific(f.Name), f.Name == "te" && f.Value != "trailers":
			malformed = f.Name
		}
	})
	headers.SetMaxStringLength(maxHeaderString)
	fail := func(code http2.ErrCode, why string) verdict {
		out.Reset()
		_ = framer.WriteGoAway(0, code, []byte(why))
		_, _ = w.Write(out.Bytes())
		return broken
	}
	// fragment adds a piece of the first request's header block.
	fragment := func(b []byte, end bool) (verdict, bool) {
		if block += len(b); block > maxHeaderBlockBytes {
			return fail(http2.ErrCodeEnhanceYourCalm, "the first request's header block is over 16 KiB"), false
		}
		if _, err := headers.Write(b); err != nil {
			return fail(http2.ErrCodeCompression, "the first request's header block cannot be decoded"), false
		}
		done = end
		return other, true
	}
	for !done {
		f, err := framer.ReadFrame()
		if err != nil {
			return readError(err, fail)
		}
		if s, ok := f.(*http2.SettingsFrame); !settled && (!ok || s.IsAck()) {
			return fail(http2.ErrCodeProtocol, "the client preface must end with a SETTINGS frame")
		}
		switch f := f.(type) {
		case *http2.HeadersFrame, *http2.ContinuationFrame:
			// The framer keeps them in order: one HEADERS, then its
			// CONTINUATIONs, and nothing between them.
			var b []byte
			if h, ok := f.(*http2.HeadersFrame); ok {
				b = h.HeaderBlockFragment()
			} else {
				b = f.(*http2.ContinuationFrame).HeaderBlockFragment()
			}
			if v, ok := fragment(b, f.Header().Flags.Has(http2.FlagHeadersEndHeaders)); !ok {
				return v
			}
			continue
		case *http2.SettingsFrame:
			if f.IsAck() {
				break
			}
			var invalid http2.Setting
			if err := f.ForeachSetting(func(s http2.Setting) error { invalid = s; return s.Valid() }); err != nil {
				var code http2.ConnectionError
				errors.As(err, &code)
				return fail(http2.ErrCode(code), fmt.Sprintf("invalid setting %v", invalid))
			}
			if !settled {
				settled = true
				_ = framer.WriteSettings(settings...)
			}
			_ = framer.WriteSettingsAck()
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = framer.WritePing(true, f.Data)
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID != 0 {
				return fail(http2.ErrCodeProtocol, "WINDOW_UPDATE on an idle stream")
			}
			if window += int64(f.Increment); window > 1<<31-1 {
				return fail(http2.ErrCodeFlowControl, "the connection's flow-control window exceeds 2^31-1")
			}
		case *http2.PriorityFrame:
			if f.StreamDep == f.StreamID {
				return fail(http2.ErrCodeProtocol, "a stream cannot depend on itself")
			}
		case *http2.UnknownFrame:
			// Extensions the port does not know are ignored (RFC 9113 §5.5).
		case *http2.GoAwayFrame:
			// The client will open no stream: the sniff timeout ends it.
		default:
			return fail(http2.ErrCodeProtocol, fmt.Sprintf("%v frame before the first request", f.Header().Type))
		}
		if control++; control > maxControlFrames {
			return fail(http2.ErrCodeEnhanceYourCalm, "too many frames before the first request")
		}
		if out.Len() > 0 {
			if _, err := w.Write(out.Bytes()); err != nil {
				return broken
			}
			out.Reset()
		}
	}
	if malformed != "" {
		// A stream error, which the port makes a connection error (RFC 9113
		// §5.4.1): its frames cannot be taken out of what the server reads
		// next without its header compression state.
		return fail(http2.ErrCodeProtocol, fmt.Sprintf("the first request has the field %q, which HTTP/2 forbids", malformed))
	}
	if matched {
		return isGRPC
	}
	return other
}

// initialWindow is the connection's flow-control window before any
// WINDOW_UPDATE (RFC 9113 §6.9.2).
const initialWindow = 65535

// readPreface reads the client preface; ok is false, with the verdict,
// if the connection does not carry it whole. It stops at the first byte
// that differs, so that a short HTTP/1 request is not held until the
// timeout.
func readPreface(r io.Reader) (verdict, bool) {
	buf := make([]byte, len(http2.ClientPreface))
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if string(buf[:n]) != http2.ClientPreface[:n] {
			return other, false
		}
		if err != nil && n < len(buf) {
			if n == 0 {
				return broken, false // silent for the whole sniff timeout
			}
			return other, false // part of a preface: not HTTP/1 either, so closed
		}
	}
	return other, true
}

// readError ends the sniff of a connection whose frames could not be read:
// a timeout or the client leaving before its first request, or a protocol
// error, answered with its GOAWAY.
func readError(err error, fail func(http2.ErrCode, string) verdict) verdict {
	var (
		netErr  net.Error
		connErr http2.ConnectionError
		strErr  http2.StreamError
	)
	switch {
	case errors.As(err, &netErr) && netErr.Timeout() || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return broken // no request in time, or gone
	case errors.Is(err, errSniffLimit):
		return fail(http2.ErrCodeEnhanceYourCalm, "too much before the first request")
	case errors.Is(err, http2.ErrFrameTooLarge):
		return fail(http2.ErrCodeFrameSize, "frame larger than 16 KiB before the first request")
	case errors.As(err, &connErr):
		return fail(http2.ErrCode(connErr), "connection error before the first request")
	case errors.As(err, &strErr):
		// Streams are idle before the first request: a connection error.
		return fail(strErr.Code, "stream error before the first request")
	}
	return fail(http2.ErrCodeProtocol, "the connection cannot be read")
}
