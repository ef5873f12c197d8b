package edge

import (
	"sync"
	"time"
)

// Denial is one refused call as the console lists it: who, what, which
// object, why. It never holds a secret; client-sent strings are bounded.
type Denial struct {
	Time     time.Time
	Kind     string // authentication or authorization
	Protocol string // grpc, rest or console
	Target   string // the gRPC method or the REST path
	User     string // the claimed or authenticated user; empty for API keys
	Peer     string
	Object   string // authorization: the object type and name, and the database
	Reason   string // authentication: the reason; authorization: the privilege
}

// recentDenials is how many denials the ring keeps.
const recentDenials = 100

// Denials is a bounded ring of the last denials, fed by the failure log
// (authentication) and the authorizer (authorization).
type Denials struct {
	mu   sync.Mutex
	ring [recentDenials]Denial
	next int
	n    int
}

// Add records d, overwriting the oldest when the ring is full.
func (d *Denials) Add(e Denial) {
	if d == nil {
		return
	}
	e.Target, e.User, e.Peer, e.Object = Bound(e.Target), Bound(e.User), Bound(e.Peer), Bound(e.Object)
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	d.mu.Lock()
	d.ring[d.next] = e
	d.next = (d.next + 1) % recentDenials
	d.n = min(d.n+1, recentDenials)
	d.mu.Unlock()
}

// Last returns the denials kept, newest first.
func (d *Denials) Last() []Denial {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Denial, 0, d.n)
	for i := 1; i <= d.n; i++ {
		out = append(out, d.ring[(d.next-i+recentDenials)%recentDenials])
	}
	return out
}
