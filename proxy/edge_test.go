package proxy

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/authproxy/authproxy/edge"
	"github.com/authproxy/authproxy/edge/edgetest"
)

// The gRPC adapter of the edge header policy passes the shared table.
func TestDirectorFollowsEdgeTable(t *testing.T) {
	for _, c := range edgetest.Cases {
		policy := edge.NewHeaderPolicy(edge.DefaultIdentityHeader)
		for _, h := range c.IdentityHeaders {
			policy.SetIdentityHeader(h)
		}
		d := NewDirector(nil, func(context.Context) (string, bool) { return edgetest.User, true }, policy)
		in := metadata.Pairs("authorization", "YWxpY2U6YWxpY2UtcHcx")
		for k, v := range c.Sent {
			in.Append(strings.ToLower(k), v)
		}
		out := d.OutgoingMetadata(metadata.NewIncomingContext(context.Background(), in))
		edgetest.Check(t, c, out)
	}
}
