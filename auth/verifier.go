package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/authproxy/authproxy/credentials"
	"github.com/authproxy/authproxy/edge"
	"github.com/authproxy/authproxy/rbac"
)

// Identity is an authenticated caller.
type Identity struct {
	User string
	// Via says how the caller proved it: password, apikey, token or certificate.
	Via string
	// Source says who vouches for the user: local (the store), ldap or oidc.
	Source string
	// Roles are mapped from an external identity's groups; the store's
	// bindings of User are added by the authorizer.
	Roles []string
	// Tags are an external identity's row-security tags, from directory
	// attributes or token claims (identities.tags); a local user's are in
	// the store.
	Tags map[string]string
}

// Principal is the identity as the authorizer sees it.
func (id Identity) Principal() rbac.Principal {
	return rbac.Principal{User: id.User, Roles: id.Roles, Source: id.Source, Tags: id.Tags}
}

// External are the identity providers beside the store; either may be nil.
type External struct {
	Directory *Directory
	OpenID    *OpenID
}

// VerifierOptions configures a Verifier.
type VerifierOptions struct {
	Store     credentials.Store
	CacheSize int
	CacheTTL  time.Duration
	// MaxConcurrentHashes bounds cold verifications running at once, within
	// HashSlots.
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
// connection, without scanning the cache. An external identity's entry
// (a bind, a token) holds what it proved until it expires.
type cacheEntry struct {
	storedHash string
	expires    time.Time
	source     string
	external   ExternalIdentity
}

// Verifier checks credentials against the store.
type Verifier struct {
	store   credentials.Store
	cache   *lru.Cache[cacheKey, cacheEntry]
	ttl     atomic.Int64
	pool    *hashPool
	limiter *Limiter
	metrics *Metrics
	now     func() time.Time
	// hashCost is a running average of one argon2id verification, in
	// nanoseconds: every refusal takes at least this long (see floor).
	hashCost atomic.Int64
	// inFlight and peak count hashes running now and at most.
	inFlight, peak atomic.Int64
	// flights coalesces concurrent cold checks of one credential.
	flights singleflight.Group
	// verify and dummyVerify do the hashing; tests count them.
	verify      func(hash, password string) bool
	dummyVerify func(password string)
	external    atomic.Pointer[External]
}

// maxCheckedPassword is the longest password worth hashing: Milvus allows
// 256 bytes, and argon2 reads the whole input, so a password of megabytes
// is refused (as a wrong one, in a hash's time) without being hashed.
const maxCheckedPassword = 4 * credentials.MaxPasswordLength

// initialHashCost stands in for the average before the first hash.
const initialHashCost = 25 * time.Millisecond

// NewVerifier returns a Verifier; the cache lives as long as the Verifier.
func NewVerifier(opts VerifierOptions) (*Verifier, error) {
	cache, err := lru.New[cacheKey, cacheEntry](opts.CacheSize)
	if err != nil {
		return nil, err
	}
	v := &Verifier{
		store:       opts.Store,
		cache:       cache,
		pool:        newHashPool(HashSlots(opts.MaxConcurrentHashes)),
		limiter:     opts.Limiter,
		metrics:     opts.Metrics,
		now:         time.Now,
		verify:      credentials.VerifyPassword,
		dummyVerify: credentials.DummyVerify,
	}
	if v.metrics == nil {
		v.metrics = NewMetrics(nil)
	}
	v.ttl.Store(int64(opts.CacheTTL))
	v.hashCost.Store(int64(initialHashCost))
	v.external.Store(&External{})
	return v, nil
}

// SetExternal puts the identity providers in force for new calls and
// empties the cache, whose entries were mapped by the previous ones. The
// previous OpenID's key refreshes stop.
func (v *Verifier) SetExternal(e External) {
	if prev := v.external.Swap(&e); prev.OpenID != nil && prev.OpenID != e.OpenID {
		prev.OpenID.Close()
	}
	v.Purge()
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

// Verify checks a parsed credential. peer is the client address, for the
// limiter and the pool's fairness.
func (v *Verifier) Verify(ctx context.Context, c Credential, peer string) (Identity, error) {
	ext := v.external.Load()
	switch v.route(c, ext) {
	case routeToken:
		return v.verifyToken(ctx, ext.OpenID, c.APIKey, peer)
	case routeAPIKey:
		return v.verifyAPIKey(c.APIKey, peer)
	case routeBind:
		return v.verifyBind(ctx, ext.Directory, c.User, c.Password, peer)
	}
	return v.verifyPassword(ctx, c.User, c.Password, peer)
}

// route is the check a credential gets.
type route int

const (
	routeLocal  route = iota // a local user's password
	routeAPIKey              // a key of the store
	routeToken               // an OpenID Connect JWT
	routeBind                // a password the directory checks
)

func (v *Verifier) route(c Credential, ext *External) route {
	switch {
	case c.IsAPIKey() && ext.OpenID != nil && LooksLikeJWT(c.APIKey):
		return routeToken
	case c.IsAPIKey():
		return routeAPIKey
	case ext.Directory != nil:
		if _, local := v.store.Current().User(c.User); ext.Directory.Takes(c.User, local) {
			return routeBind
		}
	}
	return routeLocal
}

// tokenKey and bindKey are the cache keys of a token and of a bind; a
// local password's is passwordKey.
func tokenKey(token string) cacheKey { return sha256.Sum256([]byte(token)) }

func bindKey(user, password string) cacheKey {
	return passwordKey(SourceLDAP+"\x00"+user, password)
}

// identity is who a cache entry vouches for; user is the name the
// credential gave (a token names its own).
func (e cacheEntry) identity(user string) Identity {
	switch e.source {
	case SourceOIDC:
		return Identity{User: e.external.User, Via: "token", Source: SourceOIDC, Roles: e.external.Roles, Tags: e.external.Tags}
	case SourceLDAP:
		return Identity{User: user, Via: "password", Source: SourceLDAP, Roles: e.external.Roles, Tags: e.external.Tags}
	}
	return Identity{User: user, Via: "password", Source: SourceLocal}
}

// verifyToken checks an OpenID Connect JWT; a verified token is cached
// until it expires. As for API keys there is no lockout (nothing to
// guess), but failures count against the address.
func (v *Verifier) verifyToken(ctx context.Context, o *OpenID, token, peer string) (Identity, error) {
	key := tokenKey(token)
	if e, ok := v.hit(key, SourceOIDC, ""); ok {
		v.countHit()
		return e.identity(""), nil
	}
	v.metrics.cacheMisses.Inc()
	id, err := o.Verify(ctx, token)
	switch {
	case errors.Is(err, ErrProviderUnavailable):
		return v.refuse(&Failure{Reason: ReasonProviderUnavailable, Message: MsgProviderUnavailable})
	case errors.Is(err, errTokenExpired):
		v.countFailure("", peer)
		return v.refuse(&Failure{Reason: ReasonExpiredToken, Message: MsgExpiredToken})
	case err != nil:
		v.countFailure("", peer)
		return v.refuse(&Failure{Reason: ReasonBadToken, Message: MsgBadAPIKey})
	}
	e := cacheEntry{source: SourceOIDC, external: id, expires: id.Expires}
	v.cache.Add(key, e)
	v.metrics.cacheEntries.Set(float64(v.cache.Len()))
	v.metrics.outcomes.WithLabelValues("success", "oidc").Inc()
	return e.identity(""), nil
}

// verifyBind checks user:password by an LDAP bind. The rules of local
// passwords hold: the lockout (cached binds included), a bounded number
// of binds at once, queued fairly, and refusals no faster than a hash. A
// directory that cannot answer is Unavailable, and is not a failure of the
// user's.
func (v *Verifier) verifyBind(ctx context.Context, d *Directory, user, password, peer string) (Identity, error) {
	start := v.now()
	key := bindKey(user, password)
	name, addr := edge.Bound(user), edge.Bound(peer)
	fail := &Failure{Reason: ReasonBadPassword, Message: MsgBadPassword, User: name}
	if e, ok := v.hit(key, SourceLDAP, ""); ok {
		if v.locked(user, peer) {
			fail.Reason = ReasonLockedOut
			return v.refuseAfter(ctx, start, fail)
		}
		v.countHit()
		return e.identity(user), nil
	}
	v.metrics.cacheMisses.Inc()
	if err := d.pool.acquire(ctx, addr, name); err != nil {
		vd := verdictCanceled
		if err == errBusy {
			vd = verdictBusy
		}
		return Identity{}, v.refusal(ctx, start, vd, fail)
	}
	if v.locked(user, peer) {
		d.pool.release()
		return Identity{}, v.refusal(ctx, start, verdictLocked, fail)
	}
	roles, tags, err := d.Check(ctx, user, password)
	d.pool.release()
	switch {
	case errors.Is(err, ErrDirectoryUnavailable):
		fail.Reason, fail.Message = ReasonDirectoryUnavailable, MsgDirectoryUnavailable
		return v.refuse(fail)
	case err != nil:
		v.countFailure(name, addr)
		return v.refuseAfter(ctx, start, fail)
	}
	e := cacheEntry{source: SourceLDAP, external: ExternalIdentity{User: user, Roles: roles, Tags: tags}, expires: v.now().Add(d.CacheTTL())}
	v.cache.Add(key, e)
	v.metrics.cacheEntries.Set(float64(v.cache.Len()))
	if v.limiter != nil {
		v.limiter.Succeeded(name, addr)
	}
	v.metrics.outcomes.WithLabelValues("success", "ldap").Inc()
	return e.identity(user), nil
}

// countFailure counts a failure against the address (and the user, if named).
func (v *Verifier) countFailure(name, addr string) {
	if v.limiter != nil {
		v.limiter.Failed(name, edge.Bound(addr))
	}
}

// verifyAPIKey takes no lockout into account: a key has 256 bits of
// entropy, so there is nothing to guess, and a locked address (a NAT shared
// with a guesser) keeps its working keys. Failures still count against the
// address, for its password logins.
func (v *Verifier) verifyAPIKey(key, peer string) (Identity, error) {
	id, f := v.apiKey(key)
	if f == nil {
		v.metrics.outcomes.WithLabelValues("success", "apikey").Inc()
		return id, nil
	}
	if f.Reason == ReasonBadAPIKey {
		v.countFailure("", peer)
	}
	return v.refuse(f)
}

// apiKey looks a key up: one SHA-256, no slow hash, nothing counted.
func (v *Verifier) apiKey(key string) (Identity, *Failure) {
	digest := credentials.APIKeyDigest(key)
	set := v.store.Current()
	k, ok := set.APIKeyByDigest(digest)
	if ok && subtle.ConstantTimeCompare([]byte(k.Digest), []byte(digest)) == 1 {
		if k.Expired(v.now()) {
			// Milvus's message, as for any refused key; the reason says why.
			return Identity{}, &Failure{Reason: ReasonExpiredAPIKey, Message: MsgBadAPIKey}
		}
		if _, ok := set.User(k.User); ok {
			return Identity{User: k.User, Via: "apikey", Source: SourceLocal}, nil
		}
	}
	return Identity{}, &Failure{Reason: ReasonBadAPIKey, Message: MsgBadAPIKey}
}

// hit is the cache's entry for key while it is good: from source, not
// expired, and for a local password still the stored hash.
func (v *Verifier) hit(key cacheKey, source, storedHash string) (cacheEntry, bool) {
	e, ok := v.cache.Get(key)
	if !ok || e.source != source || !v.now().Before(e.expires) || e.storedHash != storedHash {
		return cacheEntry{}, false
	}
	return e, true
}

func (v *Verifier) countHit() {
	v.metrics.cacheHits.Inc()
	v.metrics.outcomes.WithLabelValues("success", "cached").Inc()
}

// Cached answers a credential that needs no waiting: a password, bind or
// token verified before and still good (and not locked out), or an API
// key (one digest). false means only Verify can tell: a hash, a bind or a
// fetch to run, or a refusal, which waits.
func (v *Verifier) Cached(c Credential, peer string) (Identity, bool) {
	var e cacheEntry
	var ok bool
	switch v.route(c, v.external.Load()) {
	case routeAPIKey:
		id, f := v.apiKey(c.APIKey)
		if f != nil {
			return Identity{}, false
		}
		v.metrics.outcomes.WithLabelValues("success", "apikey").Inc()
		return id, true
	case routeToken:
		e, ok = v.hit(tokenKey(c.APIKey), SourceOIDC, "")
	case routeBind:
		ok = !v.locked(c.User, peer)
		if ok {
			e, ok = v.hit(bindKey(c.User, c.Password), SourceLDAP, "")
		}
	case routeLocal:
		stored, exists := v.store.Current().User(c.User)
		ok = exists && !v.locked(c.User, peer)
		if ok {
			e, ok = v.hit(passwordKey(c.User, c.Password), SourceLocal, stored.PasswordHash)
		}
	}
	if !ok {
		return Identity{}, false
	}
	v.countHit()
	return e.identity(c.User), true
}

// locked reports whether the limiter refuses user from peer now.
func (v *Verifier) locked(user, peer string) bool {
	return v.limiter != nil && v.limiter.Locked(edge.Bound(user), edge.Bound(peer))
}

// verifyPassword checks user and password. The order matters:
//  1. a cache hit still asks the limiter, so a locked guesser cannot test
//     the owner's cached password at network speed;
//  2. a cold check waits its fair turn for a hashing slot, and only then
//     asks the limiter (see check);
//  3. every refusal takes at least one hash's time, a lockout included.
func (v *Verifier) verifyPassword(ctx context.Context, user, password, peer string) (Identity, error) {
	start := v.now()
	key := passwordKey(user, password)
	set := v.store.Current()
	stored, exists := set.User(user)
	name, addr := edge.Bound(user), edge.Bound(peer)
	fail := &Failure{Reason: ReasonBadPassword, Message: MsgBadPassword, User: name}
	if exists {
		if e, ok := v.hit(key, SourceLocal, stored.PasswordHash); ok {
			if v.locked(user, peer) {
				fail.Reason = ReasonLockedOut
				return v.refuseAfter(ctx, start, fail)
			}
			v.countHit()
			return e.identity(user), nil
		}
	}
	if v.cache.Remove(key) {
		// A stale entry (another hash, expired): gone before it is replaced.
		v.metrics.cacheEntries.Set(float64(v.cache.Len()))
	}
	v.metrics.cacheMisses.Inc()

	var storedHash string
	if exists {
		storedHash = stored.PasswordHash
	} else {
		fail.Reason = ReasonUnknownUser
	}
	if vd := v.checkShared(ctx, key, name, addr, storedHash, password); vd != verdictOK {
		return Identity{}, v.refusal(ctx, start, vd, fail)
	}
	v.metrics.outcomes.WithLabelValues("success", "password").Inc()
	return Identity{User: user, Via: "password", Source: SourceLocal}, nil
}

// busyWait is how long a check refused for a full queue waits before it
// is answered. A client retrying sooner would be refused again (a full
// queue of its address takes 64 hashes to drain), and instant refusals let
// 400 waiting clients loop at 16,000 calls a second: more CPU than the
// hashes, taken from the cached callers.
const busyWait = time.Second

// refusal counts and answers a failed check: a wrong password or a lockout
// no sooner than a hash after start; a full queue after busyWait; a caller
// that gave up at once.
func (v *Verifier) refusal(ctx context.Context, start time.Time, vd verdict, fail *Failure) error {
	switch vd {
	case verdictBusy:
		fail.Reason, fail.Message = ReasonBusy, MsgBusy
		_, err := v.refuseNoSooner(ctx, start, busyWait, fail)
		return err
	case verdictCanceled:
		fail.Reason = ReasonCanceled
		_, err := v.refuse(fail)
		return err
	case verdictLocked:
		fail.Reason = ReasonLockedOut
	}
	_, err := v.refuseAfter(ctx, start, fail)
	return err
}

// verdict is the outcome of one cold check.
type verdict int

const (
	verdictOK verdict = iota
	verdictWrong
	verdictLocked
	verdictBusy
	verdictCanceled
)

// checkShared runs the cold check of one credential from one address once
// for all its concurrent callers: a client that opens 50 connections with
// the same password at start costs one hash and one place in the queue,
// not 50. The address is part of the key, so a locked address never rides
// on another's success.
func (v *Verifier) checkShared(ctx context.Context, key cacheKey, name, addr, storedHash, password string) verdict {
	flight := string(key[:]) + "\x00" + addr
	for {
		ch := v.flights.DoChan(flight, func() (any, error) {
			return v.check(ctx, key, name, addr, storedHash, password), nil
		})
		select {
		case r := <-ch:
			// The leader gave up (its context ended) but this caller did
			// not: check again, leading this time.
			if got := r.Val.(verdict); got != verdictCanceled || ctx.Err() != nil {
				return got
			}
		case <-ctx.Done():
			return verdictCanceled
		}
	}
}

// check waits its fair turn for a hashing slot, asks the limiter only then
// (so a burst of guesses cannot all pass the check before the first
// failure is counted), and hashes. storedHash is "" for a user that does
// not exist.
func (v *Verifier) check(ctx context.Context, key cacheKey, name, addr, storedHash, password string) verdict {
	if err := v.pool.acquire(ctx, addr, name); err != nil {
		if err == errBusy {
			return verdictBusy
		}
		return verdictCanceled
	}
	if v.limiter != nil && v.limiter.Locked(name, addr) {
		v.pool.release()
		return verdictLocked
	}
	ok := v.hash(storedHash != "", storedHash, password)
	v.pool.release()
	if !ok {
		if v.limiter != nil {
			v.limiter.Failed(name, addr)
		}
		return verdictWrong
	}
	v.cache.Add(key, cacheEntry{source: SourceLocal, storedHash: storedHash, expires: v.now().Add(time.Duration(v.ttl.Load()))})
	v.metrics.cacheEntries.Set(float64(v.cache.Len()))
	if v.limiter != nil {
		v.limiter.Succeeded(name, addr)
	}
	return verdictOK
}

// hash runs one verification in a slot the caller holds: the stored hash's,
// or for a user that does not exist the same work on a dummy hash, so the
// time taken does not tell which names exist.
func (v *Verifier) hash(exists bool, storedHash, password string) bool {
	n := v.inFlight.Add(1)
	v.metrics.hashesInFlight.Inc()
	defer func() {
		v.inFlight.Add(-1)
		v.metrics.hashesInFlight.Dec()
	}()
	for peak := v.peak.Load(); n > peak; peak = v.peak.Load() {
		if v.peak.CompareAndSwap(peak, n) {
			v.metrics.hashesPeak.Set(float64(n))
			break
		}
	}
	v.metrics.hashes.Inc()
	start := time.Now()
	var ok bool
	switch {
	case len(password) > maxCheckedPassword:
		// Not worth hashing; the floor gives the refusal a hash's time.
	case exists:
		ok = v.verify(storedHash, password)
	default:
		v.dummyVerify(password)
	}
	if !exists || credentials.IsArgon2(storedHash) {
		// The average follows argon2id, the slowest scheme, which the
		// dummy uses: a cheaper imported bcrypt hash is padded to it.
		d := int64(time.Since(start))
		v.hashCost.Store((7*v.hashCost.Load() + d) / 8)
	}
	return ok
}

// CheckPassword verifies password against a user's stored hash for the
// user API (the old password of update_password), through the same pool,
// limiter and floor as a login.
func (v *Verifier) CheckPassword(ctx context.Context, user, storedHash, password, peer string) error {
	start := v.now()
	name, addr := edge.Bound(user), edge.Bound(peer)
	fail := &Failure{Reason: ReasonBadPassword, Message: MsgBadPassword, User: name}
	if vd := v.check(ctx, passwordKey(user, password), name, addr, storedHash, password); vd != verdictOK {
		return v.refusal(ctx, start, vd, fail)
	}
	return nil
}

// HashPassword hashes a new password in a slot of the pool: creating users
// costs as much memory as verifying them.
func (v *Verifier) HashPassword(ctx context.Context, user, password, peer string) (string, error) {
	if err := v.pool.acquire(ctx, edge.Bound(peer), edge.Bound(user)); err != nil {
		return "", err
	}
	defer v.pool.release()
	return credentials.HashPassword(password)
}

// refuseAfter answers a refusal no sooner than one hash after start, but
// without holding a slot: a lockout, a cheap bcrypt or an oversized
// password must not answer faster than a real wrong password.
func (v *Verifier) refuseAfter(ctx context.Context, start time.Time, f *Failure) (Identity, error) {
	return v.refuseNoSooner(ctx, start, time.Duration(v.hashCost.Load()), f)
}

// refuseNoSooner answers a refusal no sooner than d after start, or when
// the caller gives up.
func (v *Verifier) refuseNoSooner(ctx context.Context, start time.Time, d time.Duration, f *Failure) (Identity, error) {
	if wait := d - v.now().Sub(start); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	return v.refuse(f)
}

func (v *Verifier) refuse(f *Failure) (Identity, error) {
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
