package auth

import (
	"context"
	"errors"
	"runtime"
	"sync"
)

// errBusy refuses a verification whose queue is full: better a quick
// refusal the client may retry than a wait no client would sit through.
var errBusy = errors.New("too many password verifications waiting")

// Bounds on the wait queue of the hashing pool. A flood fills its own
// queues and is refused; it never delays other clients by more than its
// turn in the round.
const (
	maxWaitingPerUser    = 16   // per (address, user)
	maxWaitingPerAddress = 64   // per client address, all its users
	maxWaiting           = 1024 // in all
)

// hashPool runs password hashes a bounded number at a time. Waiters are
// served fairly: round-robin over client addresses, then over the users
// claimed from that address, first come first served within one user. So
// 400 wrong passwords from one address delay a login from another address
// by at most one hash per slot, and a spray of made-up names from one
// address shares that address's turn instead of getting one each.
type hashPool struct {
	mu      sync.Mutex
	free    int
	waiting int
	addrs   []*addrQueue // round-robin order; served from the front
	byAddr  map[string]*addrQueue
}

type addrQueue struct {
	addr    string
	users   []*userQueue // round-robin order within the address
	byUser  map[string]*userQueue
	waiting int
}

type userQueue struct {
	user    string
	waiters []chan struct{}
}

// HashSlots is how many hashes run at once for maxConcurrentVerifications
// configured: never more than GOMAXPROCS-1, at least one. argon2id is pure
// CPU, so a hash beyond the processors gains nothing, and one holding the
// last processor makes every call that needs no hash (a cached password,
// an API key, the forwarding itself) wait for the scheduler's next
// preemption, 10 ms, then again at every hop of the call: a cached caller
// went from 0.4 ms to 139 ms (p50) behind 4 hashes on 2 processors.
func HashSlots(configured int) int {
	return min(max(1, configured), max(1, runtime.GOMAXPROCS(0)-1))
}

func newHashPool(slots int) *hashPool {
	return &hashPool{free: max(1, slots), byAddr: map[string]*addrQueue{}}
}

// acquire waits for a slot; release must follow a nil return. addr and user
// must already be bounded (boundName): they are kept while waiting.
func (p *hashPool) acquire(ctx context.Context, addr, user string) error {
	p.mu.Lock()
	if p.free > 0 && p.waiting == 0 {
		p.free--
		p.mu.Unlock()
		return nil
	}
	aq := p.byAddr[addr]
	uq := (*userQueue)(nil)
	if aq != nil {
		uq = aq.byUser[user]
	}
	if p.waiting >= maxWaiting || (aq != nil && aq.waiting >= maxWaitingPerAddress) ||
		(uq != nil && len(uq.waiters) >= maxWaitingPerUser) {
		p.mu.Unlock()
		return errBusy
	}
	if aq == nil {
		aq = &addrQueue{addr: addr, byUser: map[string]*userQueue{}}
		p.byAddr[addr] = aq
		p.addrs = append(p.addrs, aq)
	}
	if uq == nil {
		uq = &userQueue{user: user}
		aq.byUser[user] = uq
		aq.users = append(aq.users, uq)
	}
	ready := make(chan struct{})
	uq.waiters = append(uq.waiters, ready)
	aq.waiting++
	p.waiting++
	p.mu.Unlock()

	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.remove(aq, uq, ready) {
			return ctx.Err()
		}
		// The slot was handed over just as the context ended: pass it on.
		p.releaseLocked()
		return ctx.Err()
	}
}

// release frees a slot, handing it to the next waiter in the round.
func (p *hashPool) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.releaseLocked()
}

func (p *hashPool) releaseLocked() {
	if len(p.addrs) == 0 {
		p.free++
		return
	}
	aq := p.addrs[0]
	uq := aq.users[0]
	ready := uq.waiters[0]
	uq.waiters = uq.waiters[1:]
	aq.waiting--
	p.waiting--
	// Rotate: this user goes to the back of its address's round, this
	// address to the back of the pool's round; empty queues are dropped.
	aq.users = aq.users[1:]
	if len(uq.waiters) > 0 {
		aq.users = append(aq.users, uq)
	} else {
		delete(aq.byUser, uq.user)
	}
	p.addrs = p.addrs[1:]
	if aq.waiting > 0 {
		p.addrs = append(p.addrs, aq)
	} else {
		delete(p.byAddr, aq.addr)
	}
	close(ready)
}

// remove takes a waiter that gave up out of its queue; false if it was
// already served.
func (p *hashPool) remove(aq *addrQueue, uq *userQueue, ready chan struct{}) bool {
	for i, w := range uq.waiters {
		if w != ready {
			continue
		}
		uq.waiters = append(uq.waiters[:i], uq.waiters[i+1:]...)
		aq.waiting--
		p.waiting--
		if len(uq.waiters) == 0 {
			delete(aq.byUser, uq.user)
			aq.users = deleteItem(aq.users, uq)
		}
		if aq.waiting == 0 {
			delete(p.byAddr, aq.addr)
			p.addrs = deleteItem(p.addrs, aq)
		}
		return true
	}
	return false
}

func deleteItem[T comparable](s []T, v T) []T {
	for i, x := range s {
		if x == v {
			return append(s[:i], s[i+1:]...)
		}
	}
	return s
}
