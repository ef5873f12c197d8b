package server

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	"github.com/authproxy/authproxy/auth"
	"github.com/authproxy/authproxy/proxy"
	"github.com/authproxy/authproxy/ratelimit"
	"github.com/authproxy/authproxy/rbac"
)

// rateStep is the rate-limit step of admission, after authorization, for
// gRPC (both forwarding cores, admitRate) and REST (rest.RateLimiter):
// one decision, whatever carries the call.
type rateStep struct{ s *Server }

// Configured reports whether any limit is set.
func (r rateStep) Configured() bool { return r.s.limits.Configured() }

// Decide counts an authorized call against the limits. size is the
// request's size (the message, or the REST body), nq a search's vectors.
func (r rateStep) Decide(who rbac.Principal, call rbac.Call, size int, nq int64) (ratelimit.Verdict, error) {
	s := r.s
	c := ratelimit.Call{User: who.User, Source: who.Source, Method: call.Method, Bytes: size, NQ: nq}
	if s.limits.NeedsRoles() {
		c.Roles = s.authz.RolesOf(who)
	}
	if s.limits.NeedsDB() {
		db, err := s.authz.Database(call)
		if err != nil {
			return ratelimit.Verdict{}, err
		}
		c.DB = db
	}
	return s.limits.Admit(&c), nil
}

// admitRate is the gRPC side: nil, or a *ratelimit.Refusal that both
// forwarding cores answer with the method's own response holding
// Milvus's RateLimit status. Nothing refused here reaches the backend.
func (s *Server) admitRate(ctx context.Context, who auth.Identity, call rbac.Call, msg mem.BufferSlice) error {
	if !s.limits.Configured() {
		return nil
	}
	nq, ok := ratelimit.NQ(call.Method, call.Message)
	if !ok {
		// Never a default for what cannot be read: the backend would
		// refuse this message too.
		return status.Error(codes.InvalidArgument, "authproxy: malformed request message")
	}
	v, err := rateStep{s}.Decide(who.Principal(), call, proxy.MessageSize(ctx, msg), nq)
	if err != nil {
		return err
	}
	if !v.Admitted() {
		return &ratelimit.Refusal{Verdict: v, Method: call.Method}
	}
	return nil
}
