package server

import (
	"context"
	"crypto/tls"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/authproxy/authproxy/auth"
	"github.com/authproxy/authproxy/config"
	"github.com/authproxy/authproxy/relay"
	"github.com/authproxy/authproxy/sharedport"
)

// newRelay builds the frame relay: the same admission step and call
// metrics as the grpc-go path; the methods the in-process server registers
// are sent to it over an in-memory connection.
func (s *Server) newRelay(cfg *config.Config, backendTLS *tls.Config) (*relay.Relay, *relay.PipeListener) {
	pipe := relay.NewPipeListener()
	r := relay.New(relay.Options{
		Backend:        cfg.Backend.Address,
		BackendTLS:     backendTLS,
		Admitter:       s.admitter,
		LocalListener:  pipe,
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
