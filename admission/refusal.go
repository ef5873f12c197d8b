package admission

import (
	"errors"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/authproxy/authproxy/auth"
	"github.com/authproxy/authproxy/ratelimit"
)

// Milvus merr codes and messages of the refusals REST answers with
// (pkg/util/merr), to the letter.
const (
	CodeServiceUnavailable = 2    // ErrServiceUnavailable
	CodeNeedAuthenticate   = 1800 // ErrNeedAuthenticate
	MsgNeedAuthenticate    = "user hasn't authenticated"
	// CodeUnexpected is what merr.Code gives an error that is no merr
	// error, such as the gRPC PermissionDenied status of Milvus's
	// privilege check.
	CodeUnexpected = 65535
)

// Refusal is a call the admission step refuses, with its answer on each
// way in: the gRPC status, and REST's HTTP status and envelope.
type Refusal struct {
	Status *status.Status
	// HTTP is REST's status code; Code and Message its envelope's.
	HTTP    int
	Code    int32
	Message string
	// Reply, when set, is the gRPC answer instead of Status: the method's
	// response message, sent with status OK, as Milvus answers a call over
	// its rate limits (ReplyOf).
	Reply []byte
	// RetryAfter, when set, is REST's Retry-After header (seconds).
	RetryAfter string
}

// ReplyOf is the response message a refusal is answered with on gRPC, if
// it has one (a rate limit's); otherwise the refusal's status is the
// answer.
func ReplyOf(err error) ([]byte, bool) {
	var r *Refusal
	if errors.As(err, &r) && r.Reply != nil {
		return r.Reply, true
	}
	return nil, false
}

// rateRefusal answers a call over a rate limit as Milvus answers its own
// (ratelimit.Refusal): on gRPC a unary method's response with a RateLimit
// status (code 8), or RESOURCE_EXHAUSTED for a stream or a method whose
// response has no status (Milvus limits only in its unary chain); on REST
// HTTP 429, merr's 1807 envelope and Retry-After.
func rateRefusal(v ratelimit.Verdict, method string, unary bool) *Refusal {
	rr := &ratelimit.Refusal{Verdict: v, Method: method}
	var reply []byte
	if unary {
		reply, _ = rr.Reply()
	}
	return &Refusal{Status: rr.GRPCStatus(), HTTP: http.StatusTooManyRequests, Code: ratelimit.CodeHTTPRateLimit,
		Message: v.RESTMessage(), Reply: reply, RetryAfter: v.RetryAfterSeconds()}
}

func (r *Refusal) Error() string { return r.Status.Message() }

// GRPCStatus makes status.Convert and status.FromError see the status.
func (r *Refusal) GRPCStatus() *status.Status { return r.Status }

// authRefusal is an authentication failure's answer: gRPC Unavailable or
// Unauthenticated with Milvus's message (auth.Status), REST 503 with the
// message, or 401 with merr's ErrNeedAuthenticate.
func authRefusal(err error) *Refusal {
	st := status.Convert(auth.Status(err))
	var f *auth.Failure
	if errors.As(err, &f) && f.Unavailable() {
		return &Refusal{Status: st, HTTP: http.StatusServiceUnavailable, Code: CodeServiceUnavailable, Message: f.Message}
	}
	return &Refusal{Status: st, HTTP: http.StatusUnauthorized, Code: CodeNeedAuthenticate, Message: MsgNeedAuthenticate}
}

// statusRefusal is a decision's refusal: its gRPC status, and as Milvus's
// REST API answers a failed privilege check, HTTP 403 with the status
// text and merr's code for it.
func statusRefusal(err error) *Refusal {
	st := status.Convert(err)
	return &Refusal{Status: st, HTTP: http.StatusForbidden, Code: CodeUnexpected, Message: st.Err().Error()}
}

// replyRefusal is a refusal Milvus puts in a successful reply's status
// (a collection or database the caller may not see): REST answers it with
// HTTP 200.
func replyRefusal(code int32, reason string) *Refusal {
	return &Refusal{Status: status.New(codes.PermissionDenied, reason), HTTP: http.StatusOK, Code: code, Message: reason}
}

// malformedMethod is grpc-go's refusal of a path that names no method, to
// the letter (server.go, handleMalformedMethodName).
func malformedMethod(path string) *Refusal {
	st := status.Newf(codes.Unimplemented, "malformed method name: %q", path)
	return &Refusal{Status: st, HTTP: http.StatusNotFound, Code: CodeUnexpected, Message: st.Message()}
}
