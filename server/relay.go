package server

import (
	"context"
	"crypto/tls"
	"slices"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/authproxy/authproxy/auth"
	"github.com/authproxy/authproxy/config"
	"github.com/authproxy/authproxy/ratelimit"
	"github.com/authproxy/authproxy/relay"
	"github.com/authproxy/authproxy/sharedport"
)

// newRelay builds the frame relay: the same authenticator, authorizer,
// edge policy and call metrics as the grpc-go path; the methods the
// in-process server registers are sent to it over an in-memory connection.
func (s *Server) newRelay(cfg *config.Config, backendTLS *tls.Config) (*relay.Relay, *relay.PipeListener) {
	local := map[string]bool{}
	for svc, info := range s.grpcServer.GetServiceInfo() {
		for _, m := range info.Methods {
			local["/"+svc+"/"+m.Name] = true
		}
	}
	pipe := relay.NewPipeListener()
	r := relay.New(relay.Options{
		Backend:        cfg.Backend.Address,
		BackendTLS:     backendTLS,
		Authn:          s.authn,
		Authorize:      s.authorizeForward,
		MessageFields:  s.messageFields,
		Local:          func(method string) bool { return local[method] },
		LocalListener:  pipe,
		Headers:        s.headers,
		TLSState:       sharedport.ConnectionState,
		MaxRecvMsgSize: cfg.GRPC.MaxRecvMsgSize,
		MaxSendMsgSize: cfg.GRPC.MaxSendMsgSize,
		Observe: func(ctx context.Context, method string, who *auth.Identity, start time.Time, code codes.Code) {
			if who == nil {
				who = &auth.Identity{} // authentication off
			}
			s.calls.observe(ctx, method, who, start, status.Error(code, ""))
		},
		Logger: s.logger,
	})
	return r, pipe
}

// messageFields are the request fields a decision reads, for the relay's
// decision on a prefix: the authorizer's, and the limits' (Search's nq).
func (s *Server) messageFields(method string) ([]protowire.Number, bool) {
	fields, reads := s.authz.MessageFields(method)
	if !reads || !s.limits.Configured() {
		return fields, reads
	}
	for _, f := range ratelimit.ReadsFields(method) {
		if !slices.Contains(fields, f) {
			fields = append(slices.Clip(fields), f)
		}
	}
	return fields, true
}
