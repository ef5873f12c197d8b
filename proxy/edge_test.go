package proxy

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/authproxy/authproxy/admission"
	"github.com/authproxy/authproxy/auth"
	"github.com/authproxy/authproxy/edge"
	"github.com/authproxy/authproxy/edge/edgetest"
)

// The grpc-go core's director passes the shared edge table.
func TestDirectorFollowsEdgeTable(t *testing.T) {
	for _, c := range edgetest.Cases {
		policy := edge.NewHeaderPolicy(edge.DefaultIdentityHeader)
		for _, h := range c.IdentityHeaders {
			policy.SetIdentityHeader(h)
		}
		d := NewDirector(nil, admission.NewAdmitter(admission.Options{Headers: policy}))
		in := metadata.Pairs("authorization", "YWxpY2U6YWxpY2UtcHcx")
		for k, v := range c.Sent {
			in.Append(strings.ToLower(k), v)
		}
		call := &admission.Call{Identity: auth.Identity{User: edgetest.User}, Authenticated: true}
		ctx := admission.WithCall(metadata.NewIncomingContext(context.Background(), in), call)
		edgetest.Check(t, c, d.OutgoingMetadata(ctx))
	}
}
