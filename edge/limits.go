package edge

// Bounds of a client connection's calls, the same on both forwarding
// cores (the grpc-go server's options, the frame relay's SETTINGS).
// MaxConcurrentStreams caps the calls one connection holds at once (one
// once held 3,000 backend streams): Milvus SDKs multiplex a pool of calls
// over one connection, far fewer than this. MaxHeaderListSize caps a
// call's metadata (grpc-go allows 16 MiB): Milvus sends a token and a
// database name.
const (
	MaxConcurrentStreams = 1000
	MaxHeaderListSize    = 256 << 10
)
