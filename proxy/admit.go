package proxy

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/authproxy/authproxy/admission"
	"github.com/authproxy/authproxy/auth"
	"github.com/authproxy/authproxy/edge"
)

// Admit is the grpc-go core's way into the admission step, its stream
// interceptor (every call is served as a stream, so nothing is read
// before the caller is known): it opens the call record and
// authenticates it, and the handler and director take their decision
// and header list from the record in the context.
func Admit(adm *admission.Admitter) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx := ss.Context()
		call, err := adm.Open(arrival(ctx, info.FullMethod))
		if err != nil {
			return err
		}
		if err := adm.Authenticate(ctx, call); err != nil {
			return err
		}
		ctx = admission.WithCall(ctx, call)
		if call.Authenticated {
			ctx = auth.WithIdentity(ctx, call.Identity)
			auth.RecordIdentity(ctx, call.Identity)
		}
		return handler(srv, &contextStream{ServerStream: ss, ctx: ctx})
	}
}

// arrival reads what arrived on the grpc-go core. Only the keys the step
// reads: copying all metadata here would be a second full copy per call
// (the director makes the other).
func arrival(ctx context.Context, method string) admission.Arrival {
	ar := admission.Arrival{Protocol: admission.GRPC, Path: method, Peer: auth.ClientAddr(ctx),
		Credential: first(ctx, "authorization"), DB: first(ctx, "dbname")}
	p, _ := peer.FromContext(ctx)
	if p == nil {
		return ar
	}
	if p.Addr != nil && p.Addr.Network() == edge.RelayNetwork {
		// The frame relay's in-memory connection: it authenticated the call.
		ar.Relayed = true
		if v := metadata.ValueFromIncomingContext(ctx, edge.RelayedIdentityKey); len(v) == 1 {
			ar.RelayedIdentity = v[0]
		}
	}
	if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
		ar.Cert = edge.VerifiedCert(&info.State)
	}
	return ar
}

func first(ctx context.Context, key string) string {
	if v := metadata.ValueFromIncomingContext(ctx, key); len(v) > 0 {
		return v[0]
	}
	return ""
}

type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextStream) Context() context.Context { return s.ctx }
