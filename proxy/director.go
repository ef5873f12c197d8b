package proxy

import (
	"context"
	"sync/atomic"

	grpcproxy "github.com/mwitkow/grpc-proxy/proxy"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// ownedKeys never reach the backend: the client's credential, Milvus's
// internal-traffic marker (base64 "@@milvus-member@@" would skip the
// backend's own authentication), and hop-by-hop headers.
var ownedKeys = map[string]bool{
	"authorization":       true,
	"sourceid":            true,
	"proxy-authorization": true,
	"connection":          true,
	"keep-alive":          true,
	"proxy-connection":    true,
	"te":                  true,
	"transfer-encoding":   true,
	"upgrade":             true,
}

// IdentityFunc returns the authenticated user of a call, if any.
type IdentityFunc func(ctx context.Context) (user string, ok bool)

// Director picks the backend for every forwarded call and rewrites its
// metadata: owned keys and any client-sent identity header removed, the
// authenticated identity added.
type Director struct {
	backend  grpc.ClientConnInterface
	identity IdentityFunc
	headers  atomic.Pointer[identityHeaders]
}

// identityHeaders is the identity key in use and every key ever configured:
// after a reload renames the header, a client must not assert the old one.
type identityHeaders struct {
	current string
	strip   map[string]bool
}

// NewDirector forwards to backend; identity may be nil when there is none.
func NewDirector(backend grpc.ClientConnInterface, identity IdentityFunc, identityHeader string) *Director {
	d := &Director{backend: backend, identity: identity}
	d.SetIdentityHeader(identityHeader)
	return d
}

// SetIdentityHeader changes the identity metadata key for new calls; "" stops
// sending one. Client-sent copies of every key ever configured are removed.
func (d *Director) SetIdentityHeader(key string) {
	next := &identityHeaders{current: key, strip: map[string]bool{DefaultIdentityHeader: true}}
	if prev := d.headers.Load(); prev != nil {
		for k := range prev.strip {
			next.strip[k] = true
		}
	}
	if key != "" {
		next.strip[key] = true
	}
	d.headers.Store(next)
}

// IdentityHeader is the identity metadata key in use ("" when none).
func (d *Director) IdentityHeader() string { return d.headers.Load().current }

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
	headers := d.headers.Load()
	for k := range out {
		if ownedKeys[k] || headers.strip[k] {
			delete(out, k)
		}
	}
	if headers.current != "" && d.identity != nil {
		if user, ok := d.identity(ctx); ok {
			out[headers.current] = []string{user}
		}
	}
	return out
}

// DefaultIdentityHeader is always stripped from clients, even when the
// configured header differs, so a client can never assert it.
const DefaultIdentityHeader = "x-authproxy-user"
