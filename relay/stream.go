package relay

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
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
}

// half is one direction of a call: what waits for the peer's window, that
// window, and how many bytes at the head of q the sending side was
// refunded for already (bytes the relay gathered itself). owed is the
// window this connection's peer is owed for what it sent on the stream,
// not yet refunded (wconn.refund).
type half struct {
	q    []item
	win  int64
	free int64
	owed int64
}

// side picks a stream's ID and half on one connection.
type side func(*stream) (uint32, *half)

func toBackend(s *stream) (uint32, *half) { return s.bid, &s.up }
func toClient(s *stream) (uint32, *half)  { return s.cid, &s.down }

// stream is one forwarded call: its IDs on both connections, what waits
// for a window in each direction, and the state the authorizer needs.
type stream struct {
	cc  *clientConn
	cid uint32
	bc  *backendConn // nil until the call is opened upstream
	bid uint32

	method       string
	rest         bool                // not gRPC: passed to REST as it is
	request      []hpack.HeaderField // the client's HEADERS
	call         *admission.Call     // the admission step's record, once opened
	who          *auth.Identity      // the authenticated caller, for the call metrics
	start        time.Time
	grpcEncoding string

	// recvWin is what the client may still send on the stream: the window
	// the relay advertised, less what came, plus what it refunded.
	recvWin atomic.Int64

	up            half // toward the backend; guarded by bc.w.mu
	down          half // toward the client; guarded by cc.w.mu
	headersToUser bool // response headers sent to the client
	closedToUser  bool // END_STREAM or RST queued for the client
	downDone      bool // and nothing of the response waits any more
	// ends counts the closed sides: the client's (it sent END_STREAM) and
	// the response's (downDone). At two, the stream is forgotten.
	ends atomic.Int32

	// The client side's state: the client reader, and the goroutine of a
	// check that waits, take mu.
	mu          sync.Mutex
	authPending bool   // a check that waits is running
	early       []byte // what the client sent meanwhile
	canceled    bool   // the client reset the stream
	gate        []byte // the first request message being gathered; nil once decided
	gateRefund  int    // gathered bytes not refunded yet (the client reader's alone)
	gated       bool
	// The fields the decision reads, and the check of the rest of a first
	// message decided on its leading fields (reader only).
	decisionFields []protowire.Number
	tail           *tailCheck
	pending        []hpack.HeaderField // the upstream HEADERS, sent once the call is decided
	clientDone     bool
	// The declared content-length (-1: none), and the DATA bytes so far.
	contentLength, received int64
	// The request's messages, against grpc.maxRecvMsgSize (s.mu).
	upSizes messageSizes

	// Only the backend reader touches these.
	downSizes messageSizes // the reply's, against grpc.maxSendMsgSize
	filter    admission.ReplyFilter
	replyBuf  []byte
	status    atomic.Int32 // the grpc-status seen in the trailers
	finished  atomic.Bool
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
