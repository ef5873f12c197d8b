package auth

import (
	"context"
	"net"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/authproxy/authproxy/edge"
)

// ClientAddr is the client's host:port: the connection's peer, or behind
// the frame relay's in-memory connection, the address the relay passed.
func ClientAddr(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	if p.Addr.Network() == edge.RelayNetwork {
		if v := metadata.ValueFromIncomingContext(ctx, edge.PeerKey); len(v) > 0 {
			return v[0]
		}
	}
	return p.Addr.String()
}

// HostOf strips the port from host:port: the limiter counts per address,
// and a new source port must not reset the count.
func HostOf(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
