package sharedport

import (
	"errors"
	"io"
	"net"
	"strings"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
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
	// other: not gRPC (HTTP/1, or an HTTP/2 request of another type).
	other verdict = iota
	isGRPC
	// broken: silent until the sniff timeout, over a limit, or sending
	// what no client sends before its first request. Closed at once.
	broken
)

// matchGRPC matches connections whose first request is gRPC.
func matchGRPC(w io.Writer, r io.Reader) bool { return sniff(w, r) == isGRPC }

// matchBroken matches the connections to close. It sniffs again what the
// mux buffered, writing nothing: the client has its SETTINGS already.
func matchBroken(_ io.Writer, r io.Reader) bool { return sniff(io.Discard, r) == broken }

// sniff reads the start of a connection. It answers the client's SETTINGS
// with its own, because some gRPC clients (grpc-java) send no request
// headers before they see the server's SETTINGS. Unlike cmux's matcher,
// that frame already says NO_RFC7540_PRIORITIES=1, as the REST server's
// SETTINGS will: clients such as curl (nghttp2) refuse a later change of
// that setting.
//
// It reads at most maxSniffBytes, frames of at most 16 KiB, a header block
// of at most maxHeaderBlockBytes, and calls broken anything a client does
// not send before its first request (DATA, a flood of control frames, a
// CONTINUATION without HEADERS), and a connection that sends nothing.
func sniff(w io.Writer, r io.Reader) verdict {
	r = &cappedReader{r: r, n: maxSniffBytes}
	preface := make([]byte, len(http2.ClientPreface))
	n, err := io.ReadFull(r, preface)
	switch {
	case n == 0 && err != nil:
		return broken // silent for the whole sniff timeout
	case err != nil || string(preface) != http2.ClientPreface:
		return other
	}
	var matched, inHeaders, done bool
	framer := http2.NewFramer(w, r)
	framer.SetMaxReadFrameSize(16 << 10) // the protocol's minimum, all a first request needs
	headers := hpack.NewDecoder(4<<10, func(f hpack.HeaderField) {
		if f.Name == "content-type" {
			matched = strings.HasPrefix(f.Value, "application/grpc")
		}
	})
	headers.SetMaxStringLength(maxHeaderString)
	block, control := 0, 0
	fragment := func(b []byte, end bool) bool {
		block += len(b)
		if block > maxHeaderBlockBytes {
			return false
		}
		if _, err := headers.Write(b); err != nil {
			return false
		}
		done = end
		return true
	}
	for !done {
		f, err := framer.ReadFrame()
		if err != nil {
			var netErr net.Error
			if errors.As(err, &netErr) && netErr.Timeout() || errors.Is(err, io.EOF) {
				return other // slow or gone, not broken: REST's own timeouts apply
			}
			return broken
		}
		switch f := f.(type) {
		case *http2.HeadersFrame:
			if inHeaders || !fragment(f.HeaderBlockFragment(), f.HeadersEnded()) {
				return broken
			}
			inHeaders = true
		case *http2.ContinuationFrame:
			if !inHeaders || !fragment(f.HeaderBlockFragment(), f.HeadersEnded()) {
				return broken
			}
		case *http2.SettingsFrame, *http2.PingFrame, *http2.WindowUpdateFrame, *http2.PriorityFrame:
			if inHeaders {
				return broken // nothing may come between HEADERS and its CONTINUATIONs
			}
			if control++; control > maxControlFrames {
				return broken
			}
			if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
				if err := framer.WriteSettings(http2.Setting{ID: http2.SettingNoRFC7540Priorities, Val: 1}); err != nil {
					return broken
				}
			}
		default:
			return broken // DATA, RST_STREAM, GOAWAY, ... before a first request
		}
	}
	if matched {
		return isGRPC
	}
	return other
}
