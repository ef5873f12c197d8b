package edge

import "time"

// Frames that cost the server work and give it nothing are budgeted per
// connection, on both forwarding cores: past a burst, a client may send
// so many a second, and a connection over budget is ended with GOAWAY
// ENHANCE_YOUR_CALM.
//
// Rapid reset (CVE-2023-44487) is the known case: a client opens streams
// and resets them at once. grpc-go bounds the handlers running at once but
// never ends such a connection; Go's HTTP/2 server does, as do these.
const (
	FrameBurst = 1000
	FrameRate  = 500 // per second
)

// PingMinInterval is the shortest interval between a client's PINGs that
// the proxy accepts while it has sent the client nothing (grpc-go's
// keepalive enforcement, MinTime): two strikes are forgiven, the third
// ends the connection with GOAWAY ENHANCE_YOUR_CALM "too_many_pings".
const (
	PingMinInterval = 5 * time.Second
	PingStrikes     = 2
)

// FrameBudget is a token bucket of FrameBurst tokens refilled at
// FrameRate a second. It is not safe for concurrent use.
type FrameBudget struct {
	tokens float64
	last   time.Time
}

// NewFrameBudget returns a full budget.
func NewFrameBudget() FrameBudget {
	return FrameBudget{tokens: FrameBurst, last: time.Now()}
}

// Spend takes one frame at now; false once the budget is exhausted.
func (b *FrameBudget) Spend(now time.Time) bool {
	b.tokens = min(FrameBurst, b.tokens+now.Sub(b.last).Seconds()*FrameRate) - 1
	b.last = now
	return b.tokens >= 0
}
