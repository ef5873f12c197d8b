package auth

import (
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// LimiterOptions configures brute-force protection.
type LimiterOptions struct {
	// Threshold failures for one user from one client address lock that
	// pair. An address gets AddressFactor times more room before it is
	// locked for every user, since many users may share one (NAT, a pod's
	// loopback).
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

// Limiter counts failed attempts per (user, client address) and per client
// address. A lock holds only where the failures came from: a guesser locks
// itself out, never the owner's clients on other addresses, and while it is
// locked nothing it sends for that user succeeds, so it learns nothing.
//
// Keys are bounded names (boundName): a claimed name of megabytes is never
// kept.
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
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	entries, err := lru.New[string, *attempts](opts.Tracked)
	if err != nil {
		return nil, err
	}
	return &Limiter{opts: opts, entries: entries, now: time.Now}, nil
}

func pairKey(user, addr string) string { return "p\x00" + addr + "\x00" + user }
func addrKey(addr string) string       { return "a\x00" + addr }

// Locked reports whether addr is locked, for every user or for this one
// (user "" asks about the address alone, as an API key does).
func (l *Limiter) Locked(user, addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.lockedLocked(addrKey(addr), now) {
		return true
	}
	return user != "" && l.lockedLocked(pairKey(user, addr), now)
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

// Failed records a failed attempt for user ("" for an API key) from addr.
func (l *Limiter) Failed(user, addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if user != "" {
		l.failLocked(pairKey(user, addr), "user_address", l.opts.Threshold, now)
	}
	l.failLocked(addrKey(addr), "address", l.opts.Threshold*l.opts.AddressFactor, now)
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

// Succeeded forgets the failures of user from addr. Only that pair: a
// success elsewhere, the owner's for instance, never resets a guesser's
// count, and the address's own count is kept, since behind one address
// (NAT) a guesser and a real user may sit side by side.
func (l *Limiter) Succeeded(user, addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries.Remove(pairKey(user, addr))
}

// Lockout is a lock in force: on one user from one address, or on an
// address for every user (User "").
type Lockout struct {
	User     string
	Address  string
	Failures int
	Until    time.Time
}

// Lockouts lists the locks in force now, for the operators' console.
func (l *Limiter) Lockouts() []Lockout {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var out []Lockout
	for _, key := range l.entries.Keys() {
		a, ok := l.entries.Peek(key)
		if !ok || now.Sub(a.lastFailure) > l.opts.Forgive || !now.Before(a.lockedUntil) {
			continue
		}
		lo := Lockout{Failures: a.failures, Until: a.lockedUntil}
		switch kind, rest, _ := strings.Cut(key, "\x00"); kind {
		case "p":
			lo.Address, lo.User, _ = strings.Cut(rest, "\x00")
		default:
			lo.Address = rest
		}
		out = append(out, lo)
	}
	return out
}

// Unlock forgets the failures behind a lock: of user from addr, or of the
// address itself when user is "". It reports whether there was one.
func (l *Limiter) Unlock(user, addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := addrKey(addr)
	if user != "" {
		key = pairKey(user, addr)
	}
	return l.entries.Remove(key)
}
