package sharedport

import (
	"context"
	"net"

	"google.golang.org/grpc/credentials"
)

// TransportCredentials are the gRPC server's credentials on a Port. TLS,
// when on, is terminated by the listener (so the certificate can be swapped per
// handshake and REST can share the port); this only completes the handshake
// and hands gRPC the connection state, so client certificates reach the
// authenticator as with credentials.NewTLS.
type alreadyTLS struct{}

// TransportCredentials returns the gRPC server option's credentials.
func TransportCredentials() credentials.TransportCredentials { return alreadyTLS{} }

func (alreadyTLS) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	tc, ok := unwrapTLS(conn)
	if !ok {
		return conn, plaintextInfo{credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}, nil
	}
	if err := tc.HandshakeContext(context.Background()); err != nil {
		return nil, nil, err
	}
	// The wrapper, not tc, goes on: it holds the bytes the mux sniffed.
	return conn, credentials.TLSInfo{
		State:          tc.ConnectionState(),
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
	}, nil
}

func (alreadyTLS) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, credentials.ErrConnDispatched
}

func (alreadyTLS) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

func (alreadyTLS) Clone() credentials.TransportCredentials { return alreadyTLS{} }

func (alreadyTLS) OverrideServerName(string) error { return nil }

type plaintextInfo struct{ credentials.CommonAuthInfo }

func (plaintextInfo) AuthType() string { return "insecure" }
