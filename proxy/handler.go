package proxy

import (
	"context"
	"io"

	grpcproxy "github.com/mwitkow/grpc-proxy/proxy"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/authproxy/authproxy/admission"
)

// bidiDesc lets one handler carry every call shape: the client-side stream
// is opened as bidirectional and simply sees one message for unary calls.
var bidiDesc = &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}

// Handler forwards calls to the connection the director picks, once the
// admission step has decided on them.
type Handler struct {
	director grpcproxy.StreamDirector
	adm      *admission.Admitter
	// unary names the methods known to be unary (from service descriptors);
	// they take a path with one goroutine and one round trip.
	unary map[string]bool
}

// NewHandler returns a handler that forwards through director once adm
// (nil: no admission, for tests of forwarding alone) admits the call the
// Admit interceptor opened.
func NewHandler(director grpcproxy.StreamDirector, adm *admission.Admitter) *Handler {
	h := &Handler{director: director, adm: adm, unary: map[string]bool{}}
	for _, m := range admission.UnaryMethods() {
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
	if _, err := h.decide(ss.Context(), nil); err != nil {
		return err
	}
	return forwardStream(ctx, ss, conn, method)
}

func (h *Handler) forwardUnary(ctx context.Context, ss grpc.ServerStream, conn grpc.ClientConnInterface, method string) error {
	var req, resp frame
	if err := ss.RecvMsg(&req); err != nil {
		return err
	}
	msg := make([][]byte, len(req.payload))
	for i, b := range req.payload {
		msg[i] = b.ReadOnlyData()
	}
	if call := admission.CallFrom(ss.Context()); call != nil && h.adm != nil {
		if _, reads := h.adm.ReadsMessage(call); reads {
			call.RequestBytes = int64(req.payload.Len())
		}
	}
	d, err := h.decide(ss.Context(), msg)
	if err != nil {
		req.payload.Free()
		if reply, ok := admission.ReplyOf(err); ok {
			return ss.SendMsg(&frame{payload: mem.BufferSlice{mem.SliceBuffer(reply)}})
		}
		return err
	}
	var filter admission.ReplyFilter
	if d != nil {
		filter = d.Filter
		if d.Rows != nil {
			rewritten, reply, err := d.Rows.RewriteMessage(method, req.payload.Materialize())
			req.payload.Free()
			switch {
			case err != nil:
				return err
			case reply != nil:
				// No row can match: answered here, nothing forwarded.
				return ss.SendMsg(&frame{payload: mem.BufferSlice{mem.SliceBuffer(reply)}})
			}
			req.payload = mem.BufferSlice{mem.SliceBuffer(rewritten)}
		}
	}
	var header, trailer metadata.MD
	err = conn.Invoke(ctx, method, &req, &resp, grpc.Header(&header), grpc.Trailer(&trailer))
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

// decide takes the admission step's decision on the call the Admit
// interceptor opened, with the request message of a unary call (nil for a
// stream: the one rule of admission.Admitter.ReadsMessage).
func (h *Handler) decide(ctx context.Context, msg [][]byte) (*admission.Decision, error) {
	if h.adm == nil {
		return nil, nil
	}
	call := admission.CallFrom(ctx)
	if call == nil {
		return nil, status.Error(codes.Internal, "authproxy: a call reached the forwarder without admission")
	}
	return h.adm.Decide(call, msg)
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
