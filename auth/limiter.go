package auth

import (
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// LimiterOptions configures brute-force protection.
type LimiterOptions struct {
	// Threshold failures of one user name, or of one client address, start
	// a lockout. Addresses get AddressFactor times more room, since many
	// users may share one (NAT, a pod's loopback).
	Threshold     int
	AddressFactor int
	// Backoff is the first lockout; it doubles with each failure past the
	// threshold, up to MaxBackoff.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Forgive is how long a counter lives after its last failure.
	Forgive time.Duration
	// Tracked bounds the counters kept (an LRU), so a flood of random
	// names cannot exhaust memory.
	Tracked int
	// Metrics counts lockouts; nil keeps the counts unregistered.
	Metrics *Metrics
}

type attempts struct {
	failures    int
	lockedUntil time.Time
	lastFailure time.Time
}

// Limiter counts failed attempts per user name and per client address and
// refuses further attempts, without hashing, while a lockout runs.
type Limiter struct {
	opts    LimiterOptions
	mu      sync.Mutex
	entries *lru.Cache[string, *attempts]
	now     func() time.Time
}

// NewLimiter returns a Limiter.
func NewLimiter(opts LimiterOptions) (*Limiter, error) {
	if opts.AddressFactor < 1 {
		opts.AddressFactor = 1
	}
	entries, err := lru.New[string, *attempts](opts.Tracked)
	if err != nil {
		return nil, err
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	return &Limiter{opts: opts, entries: entries, now: time.Now}, nil
}

func userKey(user string) string { return "u\x00" + user }
func addrKey(addr string) string { return "a\x00" + addr }

// Locked reports whether the user name or the client address is locked out.
func (l *Limiter) Locked(user, addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	return (user != "" && l.lockedLocked(userKey(user), now)) || (addr != "" && l.lockedLocked(addrKey(addr), now))
}

func (l *Limiter) lockedLocked(key string, now time.Time) bool {
	a, ok := l.entries.Peek(key)
	if !ok {
		return false
	}
	if now.Sub(a.lastFailure) > l.opts.Forgive {
		l.entries.Remove(key)
		return false
	}
	return now.Before(a.lockedUntil)
}

// Failed records a failed attempt.
func (l *Limiter) Failed(user, addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if user != "" {
		l.failLocked(userKey(user), "user", l.opts.Threshold, now)
	}
	if addr != "" {
		l.failLocked(addrKey(addr), "address", l.opts.Threshold*l.opts.AddressFactor, now)
	}
}

func (l *Limiter) failLocked(key, kind string, threshold int, now time.Time) {
	a, ok := l.entries.Get(key)
	if !ok || now.Sub(a.lastFailure) > l.opts.Forgive {
		a = &attempts{}
		l.entries.Add(key, a)
	}
	a.failures++
	a.lastFailure = now
	if over := a.failures - threshold; over >= 0 {
		backoff := l.opts.Backoff
		for i := 0; i < over && backoff < l.opts.MaxBackoff; i++ {
			backoff *= 2
		}
		a.lockedUntil = now.Add(min(backoff, l.opts.MaxBackoff))
		l.opts.Metrics.lockouts.WithLabelValues(kind).Inc()
	}
}

// Succeeded forgets the user's failures.
func (l *Limiter) Succeeded(user string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries.Remove(userKey(user))
}
