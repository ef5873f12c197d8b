package ratelimit

import (
	"fmt"
	"math"
	"strconv"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Milvus's answer to a call over its own limits (Milvus 2.5.24):
// internal/util/ratelimitutil/rate_limiter_tree.go GetRateLimitError is
// merr.WrapErrServiceRateLimit(rate, "request is rejected by grpc
// RateLimiter middleware, please retry later"), whose status
// (merr.Status) has code 8 (ErrServiceRateLimit, "rate limit exceeded",
// retriable), error_code RateLimit and the reason below; the REST v2
// handler answers {"code": 1807, "message": "request is rejected by
// limiter, error: " + that} (handler_v2.go wrapperProxyWithLimit).
const (
	// CodeRateLimit is merr's ErrServiceRateLimit.
	CodeRateLimit = 8
	// CodeHTTPRateLimit is merr's ErrHTTPRateLimit, REST's code.
	CodeHTTPRateLimit = 1807
)

// Message is Milvus's reason for a call refused at rate (the limit's rate
// on this replica, in its unit).
func (v Verdict) Message() string {
	return "request is rejected by grpc RateLimiter middleware, please retry later: rate limit exceeded[rate=" +
		strconv.FormatFloat(v.Rate, 'g', -1, 64) + "]"
}

// RESTMessage is Milvus's REST message for the refusal.
func (v Verdict) RESTMessage() string {
	return "request is rejected by limiter, error: " + v.Message()
}

// RetryAfterSeconds is the Retry-After header's value: whole seconds, at
// least 1.
func (v Verdict) RetryAfterSeconds() string {
	return strconv.Itoa(max(1, int(math.Ceil(v.RetryAfter.Seconds()))))
}

// Status is the refusal's Milvus status, as merr.Status builds it.
func (v Verdict) Status() *commonpb.Status {
	msg := v.Message()
	return &commonpb.Status{
		ErrorCode: commonpb.ErrorCode_RateLimit,
		Reason:    msg,
		Code:      CodeRateLimit,
		Retriable: true,
		Detail:    msg,
	}
}

// Refusal is a refused call's answer on gRPC: the method's own response
// message holding the refusal's status, to send with status OK, as
// Milvus's RateLimitInterceptor does (GetFailedResponse). A method whose
// response has no status (not MilvusService) gets a RESOURCE_EXHAUSTED
// error with the message instead.
type Refusal struct {
	Verdict
	Method string
}

// Error implements error (logs, and the methods without a status).
func (r *Refusal) Error() string { return r.Message() }

// GRPCStatus is what a caller that cannot send the reply answers.
func (r *Refusal) GRPCStatus() *status.Status {
	return status.New(codes.ResourceExhausted, r.Message())
}

// Reply is the encoded response message, ok false when the method's
// response has no status to carry the refusal.
func (r *Refusal) Reply() ([]byte, bool) {
	m := methods[r.Method]
	if m == nil || !m.hasStatus {
		return nil, false
	}
	st, err := proto.Marshal(r.Status())
	if err != nil {
		panic(fmt.Sprintf("ratelimit: marshal a status: %v", err)) // a fixed, valid message
	}
	if m.statusField == 0 {
		return st, true
	}
	out := protowire.AppendTag(nil, m.statusField, protowire.BytesType)
	return protowire.AppendBytes(out, st), true
}
