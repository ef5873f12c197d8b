package relay

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/authproxy/authproxy/admission"
	"github.com/authproxy/authproxy/auth"
)

// item is what waits for a window: DATA, or HEADERS that must follow it.
type item struct {
	data      []byte
	headers   []hpack.HeaderField // nil for DATA
	endStream bool
	// inPlace: data stays as it is until the flush after it is written,
	// which may then write it without a copy: in the forwarding reader's
	// buffer (inReadBuf), or in chunk.
	inPlace bool
	// chunk is the pooled buffer (bufPool) that data waits in, if any
	// (queueData); it goes back after the flush that writes its last byte.
	chunk *[]byte
}

// half is one direction of a call: what waits for the peer's window, that
// window, and how many bytes at the head of q the sending side was
// refunded for already (bytes the relay gathered itself), all under the
// connection's mu. owed is the window this connection's peer is owed for
// what it sent on the stream, not yet refunded (wconn.refund): counted
// without the lock by every goroutine that moves the stream's bytes, so
// that a frame forwarded takes the lock of its peer's connection only
// when a refund is due.
type half struct {
	q    []item
	win  int64
	free int64
	owed atomic.Int64
}

// side picks a stream's ID and half on one connection.
type side func(*stream) (uint32, *half)

func toBackend(s *stream) (uint32, *half) { return s.bid, &s.up }
func toClient(s *stream) (uint32, *half)  { return s.cid, &s.down }

// stream is one forwarded call: its IDs on both connections, what waits
// for a window in each direction, its state, and what the admission side
// needs of it. Its fields are grouped by who owns them.
type stream struct {
	// Set on its HEADERS, before another goroutine sees the stream.
	cc      *clientConn
	cid     uint32
	method  string
	rest    bool                // not gRPC: passed to REST as it is
	request []hpack.HeaderField // the client's HEADERS
	start   time.Time

	// Under the backend connection's bc.w.mu: toward the backend. bc is
	// set once, when the call is opened upstream (nil until then).
	bc  *backendConn
	bid uint32
	up  half
	// Under the client connection's cc.w.mu: toward the client.
	down half
	// Set, under the map's lock, when the stream leaves its backend
	// connection's map (upGone) or its client connection's (downGone):
	// a reader that kept the stream from an earlier frame, or holds it
	// opened, reads these instead of taking the map's lock to look again.
	upGone, downGone atomic.Bool

	// The stream's state (state.go), which any goroutine reads, and
	// changes through transition alone.
	st atomic.Uint32
	// recvWin is what the client may still send on the stream: the window
	// the relay advertised, less what came, plus what it refunded.
	recvWin atomic.Int64

	// Under mu, which the client reader and the goroutine of a check that
	// waits both take.
	mu ownedMutex
	// The HTTP/2 side's: the declared content-length (-1: none), the DATA
	// bytes so far, and the request's messages against
	// grpc.maxRecvMsgSize.
	contentLength, received int64
	upSizes                 messageSizes
	// The admission side's (admit.go): the step's record and the caller,
	// what the client sent while authenticating, the first message being
	// gathered while deciding with the fields the decision reads and the
	// HEADERS that wait for it, and the check of the rest of a message
	// decided on its leading fields.
	call           *admission.Call
	who            *auth.Identity // for the call metrics
	grpcEncoding   string
	early          []byte
	gate           []byte
	decisionFields []protowire.Number
	pending        []hpack.HeaderField
	tail           *tailCheck
	// The reply's filter: set under mu before the call is opened, then
	// read by the backend reader alone.
	filter admission.ReplyFilter

	// Owned by the client connection's reader (cc.readerG).
	gateRefund int // gathered bytes not refunded yet

	// Owned by the backend connection's reader (bc.readerG).
	downSizes messageSizes // the reply's, against grpc.maxSendMsgSize
	replyBuf  []byte
	status    atomic.Int32 // the grpc-status seen in the trailers
}

// firstMessage returns the first gRPC message of buf once it is whole:
// its payload (decompressed if it was gzip), and whether it is complete.
func firstMessage(buf []byte, encoding string, limit int) (payload []byte, complete bool, err error) {
	if len(buf) < 5 {
		return nil, false, nil
	}
	n := binary.BigEndian.Uint32(buf[1:5])
	if int64(n) > int64(limit) {
		return nil, false, errors.New(tooLarge(n, limit))
	}
	if len(buf) < 5+int(n) {
		return nil, false, nil
	}
	msg := buf[5 : 5+n]
	if buf[0]&1 == 0 {
		return msg, true, nil
	}
	if encoding != "gzip" {
		return nil, false, fmt.Errorf("authproxy: a message compressed with %q cannot be authorized", encoding)
	}
	zr, err := gzip.NewReader(bytes.NewReader(msg))
	if err != nil {
		return nil, false, fmt.Errorf("authproxy: %w", err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, int64(limit)+1))
	if err != nil {
		return nil, false, fmt.Errorf("authproxy: %w", err)
	}
	if len(out) > limit {
		return nil, false, fmt.Errorf("authproxy: a decompressed request message is over the limit of %d bytes", limit)
	}
	return out, true, nil
}

// filterReply applies a reply filter to every message of a buffered reply;
// compressed messages are decompressed and sent back uncompressed (the
// per-message flag allows it).
func filterReply(buf []byte, filter admission.ReplyFilter) ([]byte, error) {
	var out []byte
	for len(buf) > 0 {
		if len(buf) < 5 {
			return nil, fmt.Errorf("a truncated reply message")
		}
		n := int(binary.BigEndian.Uint32(buf[1:5]))
		if len(buf) < 5+n {
			return nil, fmt.Errorf("a truncated reply message")
		}
		msg := buf[5 : 5+n]
		if buf[0]&1 == 1 {
			zr, err := gzip.NewReader(bytes.NewReader(msg))
			if err != nil {
				return nil, err
			}
			if msg, err = io.ReadAll(zr); err != nil {
				return nil, err
			}
		}
		filtered, err := filter(msg)
		if err != nil {
			return nil, err
		}
		out = append(out, 0, 0, 0, 0, 0)
		binary.BigEndian.PutUint32(out[len(out)-4:], uint32(len(filtered)))
		out = append(out, filtered...)
		buf = buf[5+n:]
	}
	return out, nil
}
