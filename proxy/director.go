package proxy

import (
	"context"

	grpcproxy "github.com/mwitkow/grpc-proxy/proxy"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/authproxy/authproxy/admission"
)

// Director picks the backend for every forwarded call and gives it the
// metadata the admission step builds: owned keys and any client-sent
// identity key removed, the authenticated identity added.
type Director struct {
	backend grpc.ClientConnInterface
	adm     *admission.Admitter
}

// NewDirector forwards to backend with adm's header list.
func NewDirector(backend grpc.ClientConnInterface, adm *admission.Admitter) *Director {
	return &Director{backend: backend, adm: adm}
}

// Direct is the grpc-proxy StreamDirector.
func (d *Director) Direct(ctx context.Context, _ string) (context.Context, grpc.ClientConnInterface, error) {
	return metadata.NewOutgoingContext(ctx, d.OutgoingMetadata(ctx)), d.backend, nil
}

var _ grpcproxy.StreamDirector = (*Director)(nil).Direct

// OutgoingMetadata is the metadata the backend receives for the call in
// ctx (admission.Admitter.UpstreamMap), made from the copy
// FromIncomingContext already makes. A context without a call record (no
// Admit interceptor) is an unauthenticated call.
func (d *Director) OutgoingMetadata(ctx context.Context) metadata.MD {
	call := admission.CallFrom(ctx)
	if call == nil {
		call = &admission.Call{}
	}
	out, _ := metadata.FromIncomingContext(ctx)
	if out == nil {
		out = make(metadata.MD, 1)
	}
	d.adm.UpstreamMap(call, out, func(f admission.Field) { out[f.Name] = append(out[f.Name], f.Value) })
	return out
}
