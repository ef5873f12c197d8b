package auth

import (
	"net"

	"google.golang.org/grpc/peer"
)

// peerHost is the client's IP without the port: the limiter counts per
// address, and a new source port must not reset the count.
func peerHost(p *peer.Peer) string {
	if p == nil || p.Addr == nil {
		return ""
	}
	return HostOf(p.Addr.String())
}

// HostOf strips the port from host:port.
func HostOf(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
