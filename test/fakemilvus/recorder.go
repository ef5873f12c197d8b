package fakemilvus

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Call is one request the fake received, over gRPC or REST.
type Call struct {
	Seq        int    // order of arrival, from 1; Reset does not restart it
	Method     string // gRPC full method ("/pkg.Service/Method") or HTTP path
	HTTPMethod string // "GET", "POST"... for REST calls; empty for gRPC
	Stream     bool   // a streaming gRPC method (or the unknown-method handler)

	// Metadata is a copy of the incoming gRPC metadata, or the HTTP request
	// headers with lower-cased keys.
	Metadata    metadata.MD
	Deadline    time.Time
	HasDeadline bool
	Start, End  time.Time
	Done        bool // the handler returned; false while the call runs

	Code    codes.Code // final gRPC status; OK for REST calls
	Message string     // status message
	// Canceled reports that the call's context was done (cancelled by the
	// client or past its deadline) when the handler returned. CtxErr says
	// which; see ctxErr for how a deadline race is resolved.
	Canceled bool
	CtxErr   error

	HTTPStatus int    // REST only
	BodySize   int64  // REST only: bytes of request body read
	Body       []byte // REST only: the request body's first 64 KiB, as forwarded
}

// Recorder keeps every call the fake received, for assertions.
type Recorder struct {
	mu      sync.Mutex
	seq     int
	calls   []*Call
	changed chan struct{} // closed and replaced on every change, to wake waiters
}

func newRecorder() *Recorder {
	return &Recorder{changed: make(chan struct{})}
}

// notify must be called with r.mu held.
func (r *Recorder) notify() {
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *Recorder) begin(ctx context.Context, method string, stream bool) *Call {
	md, _ := metadata.FromIncomingContext(ctx)
	c := &Call{Method: method, Stream: stream, Metadata: md.Copy(), Start: time.Now()}
	c.Deadline, c.HasDeadline = ctx.Deadline()
	r.add(c)
	return c
}

func (r *Recorder) add(c *Call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	c.Seq = r.seq
	r.calls = append(r.calls, c)
	r.notify()
}

func (r *Recorder) end(ctx context.Context, c *Call, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := status.Convert(err)
	c.Code, c.Message = st.Code(), st.Message()
	c.CtxErr = ctxErr(ctx)
	c.Canceled = c.CtxErr != nil
	c.End = time.Now()
	c.Done = true
	r.notify()
}

func (r *Recorder) finishHTTP(c *Call, httpStatus int, bodySize int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c.HTTPStatus, c.BodySize = httpStatus, bodySize
	c.End = time.Now()
	c.Done = true
	r.notify()
}

// Calls returns a snapshot of all calls in arrival order, running ones included.
func (r *Recorder) Calls() []Call {
	return r.filter(func(Call) bool { return true })
}

// CallsTo returns the calls to method: a full gRPC method name, an HTTP path,
// or a bare suffix such as "Insert" or "collections/list" matching any
// service or prefix.
func (r *Recorder) CallsTo(method string) []Call {
	return r.filter(func(c Call) bool { return MatchMethod(c.Method, method) })
}

// MatchMethod reports whether full (a recorded Call.Method) is method, or ends
// with "/"+method.
func MatchMethod(full, method string) bool {
	return full == method || strings.HasSuffix(full, "/"+method)
}

func (r *Recorder) filter(keep func(Call) bool) []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Call
	for _, c := range r.calls {
		cp := *c
		cp.Metadata = c.Metadata.Copy()
		if keep(cp) {
			out = append(out, cp)
		}
	}
	return out
}

// Reset forgets all recorded calls. Calls running at that moment are still
// updated when they end, but no longer listed.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = nil
	r.notify()
}

// Wait blocks until a recorded call satisfies match, and returns the first
// such call, or ctx's error.
func (r *Recorder) Wait(ctx context.Context, match func(Call) bool) (Call, error) {
	for {
		r.mu.Lock()
		changed := r.changed
		r.mu.Unlock()
		if cs := r.filter(match); len(cs) > 0 {
			return cs[0], nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return Call{}, ctx.Err()
		}
	}
}

// WaitForCall waits until a call to method (see CallsTo) has finished.
func (r *Recorder) WaitForCall(ctx context.Context, method string) (Call, error) {
	return r.Wait(ctx, func(c Call) bool { return c.Done && MatchMethod(c.Method, method) })
}

// WaitForStart waits until a call to method has arrived, finished or not;
// useful to cancel a call only once the backend is running it.
func (r *Recorder) WaitForStart(ctx context.Context, method string) (Call, error) {
	return r.Wait(ctx, func(c Call) bool { return MatchMethod(c.Method, method) })
}

// deadlineSlack is how close to its deadline a cancelled call counts as
// having hit the deadline. When a deadline passes, the client's cancellation
// (RST_STREAM) and the server's own timer race; without this slack the
// recorded cause would flip between Canceled and DeadlineExceeded.
const deadlineSlack = 50 * time.Millisecond

// ctxErr is ctx.Err(), except that a cancellation within deadlineSlack of
// the deadline is reported as context.DeadlineExceeded.
func ctxErr(ctx context.Context) error {
	err := ctx.Err()
	if d, ok := ctx.Deadline(); ok && errors.Is(err, context.Canceled) && time.Until(d) < deadlineSlack {
		return context.DeadlineExceeded
	}
	return err
}
