package proxy

import (
	"context"
	"crypto/tls"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/authproxy/authproxy/edge"
)

// backendBufferSize is the read and the write buffer of the backend connection.
const backendBufferSize = 1 << 20

// BackendOptions configures the connection to the backend.
type BackendOptions struct {
	Address string
	// TLS, when non-nil, is used to reach a backend behind TLS.
	TLS            *tls.Config
	MaxRecvMsgSize int
	MaxSendMsgSize int
	Codec          *Codec
}

// Backend is the one long-lived, multiplexed connection to the backend. gRPC
// reconnects it by itself; the short backoff cap makes the proxy notice a
// returning backend within about two seconds.
type Backend struct {
	*grpc.ClientConn
	address string
}

// DialBackend creates the backend connection and starts connecting at once,
// so the first call does not pay for the handshake.
func DialBackend(opts BackendOptions) (*Backend, error) {
	creds := insecure.NewCredentials()
	if opts.TLS != nil {
		creds = credentials.NewTLS(opts.TLS)
	}
	codec := opts.Codec
	if codec == nil {
		codec = NewCodec()
	}
	conn, err := grpc.NewClient(opts.Address,
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(
			grpc.ForceCodecV2(codec),
			grpc.MaxCallRecvMsgSize(opts.MaxSendMsgSize), // what the backend sends us, we send on
			grpc.MaxCallSendMsgSize(opts.MaxRecvMsgSize),
		),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 2 * time.Second,
		}),
		// Large Inserts and Searches: start with big flow-control windows
		// rather than growing them through many round trips (edge).
		grpc.WithInitialWindowSize(edge.StreamWindow),
		grpc.WithInitialConnWindowSize(edge.ConnWindow),
		// This one connection carries every call: buffers large enough that a
		// 4 MiB insert crosses it in a few read and write syscalls rather than
		// ~130 each way with grpc-go's 32 KiB defaults, and that many small
		// concurrent calls share one syscall. Allocated once (2 MiB in all).
		grpc.WithReadBufferSize(backendBufferSize),
		grpc.WithWriteBufferSize(backendBufferSize),
		grpc.WithUserAgent("authproxy"),
	)
	if err != nil {
		return nil, err
	}
	conn.Connect()
	return &Backend{ClientConn: conn, address: opts.Address}, nil
}

// Address is the backend address as configured.
func (b *Backend) Address() string { return b.address }

// Ready reports whether the connection to the backend is up, trying to
// connect first if it is idle, and waiting at most until ctx is done.
func (b *Backend) Ready(ctx context.Context) bool {
	for {
		s := b.GetState()
		switch s {
		case connectivity.Ready:
			return true
		case connectivity.Idle:
			b.Connect()
		case connectivity.Shutdown:
			return false
		}
		if !b.WaitForStateChange(ctx, s) {
			return false
		}
	}
}

// transportFailures start the messages grpc-go itself gives when the
// connection to the backend fails or drops, before or during a call.
var transportFailures = []string{
	"connection error",
	"last connection error",
	"name resolver error",
	"error reading from server",
	"transport is closing",
	"closing transport due to",
	"the connection is draining",
}

// isTransportFailure tells gRPC's own connection errors from a status the
// backend returned: only the former get the backend's name added.
func (b *Backend) isTransportFailure(msg string) bool {
	for _, p := range transportFailures {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return strings.Contains(msg, "while dialing")
}
