package auth

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// waiter queues one acquire and reports on served when it gets the slot.
func waiter(t *testing.T, p *hashPool, addr, user string, served chan<- string) {
	t.Helper()
	before := p.queued()
	go func() {
		if err := p.acquire(context.Background(), addr, user); err != nil {
			served <- "error: " + err.Error()
			return
		}
		served <- addr + "/" + user
	}()
	// Queue in a known order: wait until this one is in.
	deadline := time.Now().Add(5 * time.Second)
	for p.queued() == before {
		if time.Now().After(deadline) {
			t.Fatal("waiter never queued")
		}
		time.Sleep(time.Millisecond)
	}
}

func (p *hashPool) queued() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waiting
}

func next(t *testing.T, p *hashPool, served <-chan string) string {
	t.Helper()
	p.release()
	select {
	case s := <-served:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("release served nobody")
		return ""
	}
}

// A flood from one address waits behind a single login from another; a
// spray of names from one address shares that address's turn.
func TestPoolServesAddressesThenUsersInTurn(t *testing.T) {
	p := newHashPool(1)
	if err := p.acquire(context.Background(), "held", "held"); err != nil {
		t.Fatal(err)
	}
	served := make(chan string, 16)
	for i := range 3 {
		waiter(t, p, "10.0.0.66", "root", served)
		waiter(t, p, "10.0.0.66", fmt.Sprintf("made_up_%d", i), served)
	}
	waiter(t, p, "10.0.0.1", "alice", served)
	waiter(t, p, "10.0.0.2", "bob", served)

	want := []string{
		"10.0.0.66/root", "10.0.0.1/alice", "10.0.0.2/bob", // one per address
		"10.0.0.66/made_up_0", "10.0.0.66/made_up_1", "10.0.0.66/made_up_2", // then the flood's users in turn
		"10.0.0.66/root", "10.0.0.66/root",
	}
	for i, w := range want {
		if got := next(t, p, served); got != w {
			t.Fatalf("turn %d went to %s, want %s", i, got, w)
		}
	}
	p.release()
	if p.free != 1 || p.waiting != 0 || len(p.addrs) != 0 || len(p.byAddr) != 0 {
		t.Fatalf("pool not back to idle: %+v", p)
	}
}

func TestPoolQueuesAreBounded(t *testing.T) {
	p := newHashPool(1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := p.acquire(ctx, "held", "held"); err != nil {
		t.Fatal(err)
	}
	results := make(chan error, maxWaitingPerAddress+maxWaitingPerUser+2)
	start := func(addr, user string) {
		go func() { results <- p.acquire(ctx, addr, user) }()
	}
	wait := func(n int) {
		deadline := time.Now().Add(5 * time.Second)
		for p.queued() != n {
			if time.Now().After(deadline) {
				t.Fatalf("%d waiting, want %d", p.queued(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	for range maxWaitingPerUser {
		start("10.0.0.66", "root")
	}
	wait(maxWaitingPerUser)
	if err := p.acquire(ctx, "10.0.0.66", "root"); !errors.Is(err, errBusy) {
		t.Fatalf("past %d waiters for one user: %v, want busy", maxWaitingPerUser, err)
	}
	for i := maxWaitingPerUser; i < maxWaitingPerAddress; i++ {
		start("10.0.0.66", fmt.Sprintf("u%d", i))
	}
	wait(maxWaitingPerAddress)
	if err := p.acquire(ctx, "10.0.0.66", "another"); !errors.Is(err, errBusy) {
		t.Fatalf("past %d waiters for one address: %v, want busy", maxWaitingPerAddress, err)
	}
	// Another address still queues.
	start("10.0.0.1", "alice")
	wait(maxWaitingPerAddress + 1)

	// Waiters that give up leave the queue and lose no slot.
	cancel()
	for range maxWaitingPerAddress + 1 {
		if err := <-results; !errors.Is(err, context.Canceled) {
			t.Fatalf("canceled waiter: %v", err)
		}
	}
	p.release()
	if p.free != 1 || p.waiting != 0 || len(p.byAddr) != 0 {
		t.Fatalf("pool not back to idle after cancellations: free %d waiting %d", p.free, p.waiting)
	}
}

// Hashes never take the last processor: the slots are what is configured,
// at most GOMAXPROCS-1, at least one.
func TestHashSlotsLeaveAProcessor(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, c := range []struct{ procs, configured, want int }{
		{procs: 1, configured: 1, want: 1}, {procs: 1, configured: 4, want: 1},
		{procs: 2, configured: 1, want: 1}, {procs: 2, configured: 4, want: 1},
		{procs: 8, configured: 4, want: 4}, {procs: 8, configured: 8, want: 7},
		{procs: 8, configured: 0, want: 1},
	} {
		runtime.GOMAXPROCS(c.procs)
		if got := HashSlots(c.configured); got != c.want {
			t.Errorf("GOMAXPROCS %d, %d configured: %d slots, want %d", c.procs, c.configured, got, c.want)
		}
	}
}
