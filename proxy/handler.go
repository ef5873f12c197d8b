package proxy

import (
	"context"
	"errors"
	"io"

	grpcproxy "github.com/mwitkow/grpc-proxy/proxy"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// bidiDesc lets one handler carry every call shape: the client-side stream
// is opened as bidirectional and simply sees one message for unary calls.
var bidiDesc = &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}

// Authorize decides on a forwarded call before any byte of it reaches the
// backend. msg is the request message of a unary call, nil for a stream
// (decided by its method). A non-nil ReplyFilter rewrites the reply.
type Authorize func(ctx context.Context, method string, msg mem.BufferSlice) (ReplyFilter, error)

// ReplyFilter rewrites a unary reply's bytes.
type ReplyFilter func(reply []byte) ([]byte, error)

// LocalReply is an Authorize error answered with a response message and
// status OK instead of an error status, when Reply has one: a call over
// its rate limit gets Milvus's own refusal, the method's response with a
// RateLimit status. Without one, the error's status is the answer.
type LocalReply interface {
	error
	Reply() ([]byte, bool)
}

// LocalReplyOf returns err's reply message, if err is a LocalReply that
// has one.
func LocalReplyOf(err error) ([]byte, bool) {
	var lr LocalReply
	if !errors.As(err, &lr) {
		return nil, false
	}
	return lr.Reply()
}

type messageSizeKey struct{}

// WithMessageSize tells Authorize the size of the request message when
// it is given only the leading part of it (the frame relay decides on a
// prefix).
func WithMessageSize(ctx context.Context, n int) context.Context {
	return context.WithValue(ctx, messageSizeKey{}, n)
}

// MessageSize is the size of the request message Authorize decides on:
// WithMessageSize's, else msg's.
func MessageSize(ctx context.Context, msg mem.BufferSlice) int {
	if n, ok := ctx.Value(messageSizeKey{}).(int); ok {
		return n
	}
	return msg.Len()
}

// Handler forwards calls to the connection the director picks.
type Handler struct {
	director  grpcproxy.StreamDirector
	authorize Authorize
	// unary names the methods known to be unary (from service descriptors);
	// they take a path with one goroutine and one round trip.
	unary map[string]bool
}

// NewHandler returns a handler that forwards through director once
// authorize (nil: no authorization) allows the call. unaryMethods are full
// method names ("/pkg.Service/Method") known to be unary.
func NewHandler(director grpcproxy.StreamDirector, unaryMethods []string, authorize Authorize) *Handler {
	h := &Handler{director: director, authorize: authorize, unary: make(map[string]bool, len(unaryMethods))}
	for _, m := range unaryMethods {
		h.unary[m] = true
	}
	return h
}

// StreamHandler is the handler to install with grpc.UnknownServiceHandler.
func (h *Handler) StreamHandler() grpc.StreamHandler { return h.handle }

func (h *Handler) handle(_ any, ss grpc.ServerStream) error {
	method, ok := grpc.MethodFromServerStream(ss)
	if !ok {
		return status.Error(codes.Internal, "authproxy: no method name in server stream")
	}
	// The director's context derives from the client's: the deadline travels
	// to the backend and a client that goes away cancels the backend call.
	ctx, conn, err := h.director(ss.Context(), method)
	if err != nil {
		return err
	}
	if h.unary[method] {
		return h.forwardUnary(ctx, ss, conn, method)
	}
	if h.authorize != nil {
		if _, err := h.authorize(ss.Context(), method, nil); err != nil {
			return err
		}
	}
	return forwardStream(ctx, ss, conn, method)
}

func (h *Handler) forwardUnary(ctx context.Context, ss grpc.ServerStream, conn grpc.ClientConnInterface, method string) error {
	var req, resp frame
	if err := ss.RecvMsg(&req); err != nil {
		return err
	}
	var filter ReplyFilter
	if h.authorize != nil {
		var err error
		if filter, err = h.authorize(ss.Context(), method, req.payload); err != nil {
			req.payload.Free()
			if reply, ok := LocalReplyOf(err); ok {
				return ss.SendMsg(&frame{payload: mem.BufferSlice{mem.SliceBuffer(reply)}})
			}
			return err
		}
	}
	var header, trailer metadata.MD
	err := conn.Invoke(ctx, method, &req, &resp, grpc.Header(&header), grpc.Trailer(&trailer))
	if len(header) > 0 {
		if err := ss.SendHeader(header); err != nil {
			return err
		}
	}
	ss.SetTrailer(trailer)
	if err != nil {
		return backendError(conn, err)
	}
	if filter != nil {
		out, err := filter(resp.payload.Materialize())
		resp.payload.Free()
		if err != nil {
			return status.Error(codes.Internal, err.Error())
		}
		resp.payload = mem.BufferSlice{mem.SliceBuffer(out)}
	}
	return ss.SendMsg(&resp)
}

func forwardStream(ctx context.Context, ss grpc.ServerStream, conn grpc.ClientConnInterface, method string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cs, err := conn.NewStream(ctx, bidiDesc, method)
	if err != nil {
		return backendError(conn, err)
	}

	// Client to backend runs beside; backend to client runs here. The call
	// ends when the backend ends it: its status is the call's status.
	clientErr := make(chan error, 1)
	go func() {
		err := forwardClientToBackend(ss, cs)
		if err != nil {
			cancel() // the client broke the call: abandon the backend side
		}
		clientErr <- err
	}()

	backendEnded, err := forwardBackendToClient(cs, ss)
	if backendEnded {
		// Trailers exist only once the backend has ended the stream.
		ss.SetTrailer(cs.Trailer())
		if err == io.EOF {
			return nil
		}
		err = backendError(conn, err)
	}
	// A client-side failure cancelled the backend stream: report the client's
	// error, not the cancellation it caused.
	select {
	case cerr := <-clientErr:
		if cerr != nil {
			return cerr
		}
	default:
	}
	return err
}

// forwardClientToBackend returns nil when the client half-closed or the
// backend stopped accepting messages (its status arrives through RecvMsg).
func forwardClientToBackend(ss grpc.ServerStream, cs grpc.ClientStream) error {
	for {
		var f frame
		if err := ss.RecvMsg(&f); err != nil {
			if err == io.EOF {
				return cs.CloseSend()
			}
			return err
		}
		if err := cs.SendMsg(&f); err != nil {
			// io.EOF here means the backend finished the stream; the real
			// outcome is read on the other side (the bug of upstream PR #84).
			return nil
		}
	}
}

// forwardBackendToClient relays the backend's headers before any message, so
// they reach the client even when the backend fails without sending one.
// backendEnded tells an end of the backend stream (io.EOF or its status)
// from a failure to write to the client.
func forwardBackendToClient(cs grpc.ClientStream, ss grpc.ServerStream) (backendEnded bool, err error) {
	header, err := cs.Header()
	if err != nil {
		return true, err
	}
	if header != nil {
		if err := ss.SendHeader(header); err != nil {
			return false, err
		}
	}
	for {
		var f frame
		if err := cs.RecvMsg(&f); err != nil {
			return true, err
		}
		if err := ss.SendMsg(&f); err != nil {
			return false, err
		}
	}
}

// backendError names the backend when the proxy could not reach it; a status
// the backend itself returned passes unchanged.
func backendError(conn grpc.ClientConnInterface, err error) error {
	b, ok := conn.(*Backend)
	if !ok {
		return err
	}
	st, _ := status.FromError(err)
	if st.Code() != codes.Unavailable || !b.isTransportFailure(st.Message()) {
		return err
	}
	return status.Errorf(codes.Unavailable, "authproxy: backend %s unavailable: %s", b.Address(), st.Message())
}
