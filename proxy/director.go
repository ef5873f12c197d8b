package proxy

import (
	"context"

	grpcproxy "github.com/mwitkow/grpc-proxy/proxy"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/authproxy/authproxy/edge"
)

// IdentityFunc returns the authenticated user of a call, if any.
type IdentityFunc func(ctx context.Context) (user string, ok bool)

// Director picks the backend for every forwarded call and rewrites its
// metadata as the edge policy says: owned keys and any client-sent identity
// key removed, the authenticated identity added.
type Director struct {
	backend  grpc.ClientConnInterface
	identity IdentityFunc
	headers  *edge.HeaderPolicy
}

// NewDirector forwards to backend; identity may be nil when there is none.
func NewDirector(backend grpc.ClientConnInterface, identity IdentityFunc, headers *edge.HeaderPolicy) *Director {
	return &Director{backend: backend, identity: identity, headers: headers}
}

// Direct is the grpc-proxy StreamDirector.
func (d *Director) Direct(ctx context.Context, _ string) (context.Context, grpc.ClientConnInterface, error) {
	return metadata.NewOutgoingContext(ctx, d.OutgoingMetadata(ctx)), d.backend, nil
}

var _ grpcproxy.StreamDirector = (*Director)(nil).Direct

// OutgoingMetadata is the metadata the backend receives for the call in ctx.
// It edits the copy FromIncomingContext already makes (keys lower-cased,
// value slices copied) instead of building a second map: one map and its
// entries fewer on every forwarded call.
func (d *Director) OutgoingMetadata(ctx context.Context) metadata.MD {
	out, _ := metadata.FromIncomingContext(ctx)
	if out == nil {
		out = make(metadata.MD, 1)
	}
	for k := range out {
		if d.headers.Strips(k) {
			delete(out, k)
		}
	}
	if key := d.headers.IdentityHeader(); key != "" && d.identity != nil {
		if user, ok := d.identity(ctx); ok {
			out[key] = []string{user}
		}
	}
	return out
}
