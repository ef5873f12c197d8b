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

// The flow-control windows both cores advertise, to clients and to the
// backend. StreamWindow holds a whole Milvus-sized message (a 4 MiB
// insert): a sender that must wait for a window update mid-message costs
// a write and a wake-up on each side every refund, and the frame relay at
// 1 MiB spent 14% more CPU per MB inserted than at 4 MiB (issue 26).
// It is also what one stream may hold in the proxy when the other side
// does not read. ConnWindow is refunded on receipt (what waits is bounded
// by the stream windows), so that one stream that cannot move never
// stalls the others.
const (
	StreamWindow = 4 << 20
	ConnWindow   = 16 << 20
)
