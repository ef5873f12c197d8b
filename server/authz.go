package server

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/authproxy/authproxy/auth"
	"github.com/authproxy/authproxy/config"
	"github.com/authproxy/authproxy/proxy"
	"github.com/authproxy/authproxy/rbac"
)

func rbacOptions(cfg *config.Config) rbac.Options {
	sec := cfg.Common.Security
	return rbac.Options{
		EnablePublicPrivilege:  sec.EnablePublicPrivilege,
		RootShouldBindRole:     sec.RootShouldBindRole,
		OtherServicesAdminOnly: sec.OtherServices == config.OtherServicesAdmin,
	}
}

// authorizeForward is the forwarder's authorization hook: the gRPC adapter
// of the one decision point (rbac.Authorizer). With authentication off, as
// in Milvus, nothing is checked.
func (s *Server) authorizeForward(ctx context.Context, method string, msg mem.BufferSlice) (proxy.ReplyFilter, error) {
	if !s.authn.Enabled() {
		return nil, nil
	}
	id, ok := auth.FromContext(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, auth.MsgMissing)
	}
	call := rbac.Call{Principal: id.Principal(), Method: method}
	if v := metadata.ValueFromIncomingContext(ctx, "dbname"); len(v) > 0 {
		call.MetadataDB = v[0]
	}
	if msg != nil {
		call.Message = make([][]byte, len(msg))
		for i, b := range msg {
			call.Message[i] = b.ReadOnlyData()
		}
	} else if _, named := s.authz.Table().Rule(method); named {
		// A stream whose messages name an object: no MilvusService stream
		// does today; deciding without the message would guess.
		return nil, status.Errorf(codes.PermissionDenied, "authproxy: %s cannot be authorized as a stream", method)
	}
	if err := s.authz.Authorize(call); err != nil {
		return nil, err
	}
	filter, err := s.authz.Visibility(call)
	if err != nil {
		return nil, err
	}
	if err := s.admitRate(ctx, id, call, msg); err != nil {
		return nil, err
	}
	return filter, nil
}
