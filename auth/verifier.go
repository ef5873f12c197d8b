package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/authproxy/authproxy/credentials"
)

// Identity is an authenticated caller.
type Identity struct {
	User string
	// Via says how the caller proved it: password, apikey or certificate.
	Via string
}

// VerifierOptions configures a Verifier.
type VerifierOptions struct {
	Store     credentials.Store
	CacheSize int
	CacheTTL  time.Duration
	// MaxConcurrentHashes bounds cold verifications running at once.
	MaxConcurrentHashes int
	// Limiter, if set, refuses guessing without hashing.
	Limiter *Limiter
	// Metrics counts outcomes; nil keeps the counts unregistered.
	Metrics *Metrics
}

// cacheKey is SHA-256 over the credential: the cache never holds a token.
type cacheKey [sha256.Size]byte

// cacheEntry remembers which stored hash a password was verified against:
// an entry counts only while the store still holds that exact hash, so a
// password change, a deletion or a reload invalidates it at once, on every
// connection, without scanning the cache.
type cacheEntry struct {
	storedHash string
	expires    time.Time
}

// Verifier checks credentials against the store.
type Verifier struct {
	store   credentials.Store
	cache   *lru.Cache[cacheKey, cacheEntry]
	ttl     atomic.Int64
	hashing chan struct{}
	limiter *Limiter
	metrics *Metrics
	now     func() time.Time
}

// NewVerifier returns a Verifier; the cache lives as long as the Verifier.
func NewVerifier(opts VerifierOptions) (*Verifier, error) {
	cache, err := lru.New[cacheKey, cacheEntry](opts.CacheSize)
	if err != nil {
		return nil, err
	}
	v := &Verifier{
		store:   opts.Store,
		cache:   cache,
		hashing: make(chan struct{}, max(1, opts.MaxConcurrentHashes)),
		limiter: opts.Limiter,
		metrics: opts.Metrics,
		now:     time.Now,
	}
	if v.metrics == nil {
		v.metrics = NewMetrics(nil)
	}
	v.ttl.Store(int64(opts.CacheTTL))
	return v, nil
}

// SetCache resizes the cache and changes the TTL of new entries (config reload).
func (v *Verifier) SetCache(size int, ttl time.Duration) {
	v.cache.Resize(size)
	v.ttl.Store(int64(ttl))
}

// Purge empties the cache.
func (v *Verifier) Purge() {
	v.cache.Purge()
	v.metrics.cacheEntries.Set(0)
}

// Verify checks a parsed credential. peer is the client address, for the limiter.
func (v *Verifier) Verify(ctx context.Context, c Credential, peer string) (Identity, error) {
	if c.IsAPIKey() {
		return v.verifyAPIKey(c.APIKey, peer)
	}
	return v.verifyPassword(ctx, c.User, c.Password, peer)
}

func (v *Verifier) verifyAPIKey(key, peer string) (Identity, error) {
	fail := &Failure{Reason: ReasonBadAPIKey, Message: MsgBadAPIKey}
	if v.limiter != nil && v.limiter.Locked("", peer) {
		fail.Reason = ReasonLockedOut
		return v.failed(fail, "", peer)
	}
	// An API key has 256 bits of entropy: one SHA-256 is enough, no slow hash.
	digest := credentials.APIKeyDigest(key)
	set := v.store.Current()
	k, ok := set.APIKeyByDigest(digest)
	if !ok || subtle.ConstantTimeCompare([]byte(k.Digest), []byte(digest)) != 1 {
		return v.failed(fail, "", peer)
	}
	if _, ok := set.User(k.User); !ok {
		return v.failed(fail, "", peer)
	}
	v.metrics.outcomes.WithLabelValues("success", "apikey").Inc()
	return Identity{User: k.User, Via: "apikey"}, nil
}

func (v *Verifier) verifyPassword(ctx context.Context, user, password, peer string) (Identity, error) {
	key := passwordKey(user, password)
	set := v.store.Current()
	stored, exists := set.User(user)
	if e, ok := v.cache.Get(key); ok {
		// A hit proves the password was right for this exact stored hash;
		// it skips the limiter so guessing on a name never locks out its
		// owner's working connections.
		if exists && e.storedHash == stored.PasswordHash && v.now().Before(e.expires) {
			v.metrics.cacheHits.Inc()
			v.metrics.outcomes.WithLabelValues("success", "cached").Inc()
			return Identity{User: user, Via: "password"}, nil
		}
		v.cache.Remove(key)
		v.metrics.cacheEntries.Set(float64(v.cache.Len()))
	}
	v.metrics.cacheMisses.Inc()
	fail := &Failure{Reason: ReasonBadPassword, Message: MsgBadPassword, User: user}
	if v.limiter != nil && v.limiter.Locked(user, peer) {
		fail.Reason = ReasonLockedOut
		return v.failed(fail, user, peer)
	}

	select {
	case v.hashing <- struct{}{}:
	case <-ctx.Done():
		return Identity{}, &Failure{Reason: ReasonCanceled, Message: MsgBadPassword, User: user}
	}
	v.metrics.hashesInFlight.Inc()
	v.metrics.hashes.Inc()
	var ok bool
	if exists {
		ok = credentials.VerifyPassword(stored.PasswordHash, password)
	} else {
		// Same work for a name that does not exist: no timing oracle.
		credentials.DummyVerify(password)
		fail.Reason = ReasonUnknownUser
	}
	v.metrics.hashesInFlight.Dec()
	<-v.hashing

	if !ok {
		return v.failed(fail, user, peer)
	}
	v.cache.Add(key, cacheEntry{storedHash: stored.PasswordHash, expires: v.now().Add(time.Duration(v.ttl.Load()))})
	v.metrics.cacheEntries.Set(float64(v.cache.Len()))
	if v.limiter != nil {
		v.limiter.Succeeded(user)
	}
	v.metrics.outcomes.WithLabelValues("success", "password").Inc()
	return Identity{User: user, Via: "password"}, nil
}

func (v *Verifier) failed(f *Failure, user, peer string) (Identity, error) {
	if v.limiter != nil && f.Reason != ReasonLockedOut {
		v.limiter.Failed(user, peer)
	}
	v.metrics.outcomes.WithLabelValues("failure", string(f.Reason)).Inc()
	return Identity{}, f
}

// UserExists reports whether a user is in the store now (for identities that
// come from certificates).
func (v *Verifier) UserExists(name string) bool {
	_, ok := v.store.Current().User(name)
	return ok
}

func passwordKey(user, password string) cacheKey {
	h := sha256.New()
	h.Write([]byte(user))
	h.Write([]byte{0})
	h.Write([]byte(password))
	var k cacheKey
	h.Sum(k[:0])
	return k
}
