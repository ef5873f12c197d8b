package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/crypto/bcrypt"

	"github.com/authproxy/authproxy/credentials"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestParseTokenLikeMilvus(t *testing.T) {
	c, err := ParseToken(b64("user_1:pa:ss:word"))
	if err != nil || c.User != "user_1" || c.Password != "pa:ss:word" || c.IsAPIKey() {
		t.Fatalf("split on first colon: %+v %v", c, err)
	}
	c, err = ParseToken(b64("ap_key-without-colon"))
	if err != nil || !c.IsAPIKey() || c.APIKey != "ap_key-without-colon" {
		t.Fatalf("api key: %+v %v", c, err)
	}
	_, err = ParseToken("not base64 at all!")
	var f *Failure
	if !errors.As(err, &f) || f.Message != MsgInvalidFormat {
		t.Fatalf("invalid base64: %v", err)
	}
}

// newTestVerifier opens a fresh credential file (root/Milvus) and adds users.
func newTestVerifier(t testing.TB, opts VerifierOptions, users map[string]string) (*Verifier, *credentials.FileStore) {
	t.Helper()
	store, err := credentials.OpenFile(filepath.Join(t.TempDir(), "credentials.yaml"), credentials.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for name, pw := range users {
		hash, err := credentials.HashPassword(pw)
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Update(context.Background(), func(s *credentials.Set) error {
			s.PutUser(&credentials.User{Name: name, PasswordHash: hash})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	opts.Store = store
	if opts.CacheSize == 0 {
		opts.CacheSize = 100
	}
	if opts.CacheTTL == 0 {
		opts.CacheTTL = time.Minute
	}
	if opts.MaxConcurrentHashes == 0 {
		opts.MaxConcurrentHashes = 2
	}
	v, err := NewVerifier(opts)
	if err != nil {
		t.Fatal(err)
	}
	return v, store
}

func failureOf(t *testing.T, err error) *Failure {
	t.Helper()
	var f *Failure
	if !errors.As(err, &f) {
		t.Fatalf("want a *Failure, got %v", err)
	}
	return f
}

func TestVerifyPasswordCachesOnlySuccess(t *testing.T) {
	v, _ := newTestVerifier(t, VerifierOptions{}, nil)
	ctx := context.Background()
	hashes := testutil.ToFloat64(v.metrics.hashes)

	if _, err := v.Verify(ctx, Credential{User: "root", Password: "wrong!"}, "p"); failureOf(t, err).Message != MsgBadPassword {
		t.Fatalf("wrong password: %v", err)
	}
	id, err := v.Verify(ctx, Credential{User: "root", Password: "Milvus"}, "p")
	if err != nil || id.User != "root" || id.Via != "password" {
		t.Fatalf("right password: %+v %v", id, err)
	}
	afterCold := testutil.ToFloat64(v.metrics.hashes)
	if afterCold-hashes != 2 {
		t.Fatalf("cold checks hashed %v times, want 2", afterCold-hashes)
	}
	for i := 0; i < 5; i++ {
		if _, err := v.Verify(ctx, Credential{User: "root", Password: "Milvus"}, "p"); err != nil {
			t.Fatal(err)
		}
	}
	if got := testutil.ToFloat64(v.metrics.hashes) - afterCold; got != 0 {
		t.Fatalf("cached checks hashed %v times, want 0", got)
	}
}

func TestUnknownUserRunsDummyHash(t *testing.T) {
	v, _ := newTestVerifier(t, VerifierOptions{}, nil)
	var dummies, real int
	v.dummyVerify = func(string) { dummies++ }
	v.verify = func(string, string) bool { real++; return false }
	_, err := v.Verify(context.Background(), Credential{User: "nobody", Password: "whatever"}, "p")
	f := failureOf(t, err)
	if f.Message != MsgBadPassword || f.Reason != ReasonUnknownUser {
		t.Fatalf("unknown user: %+v", f)
	}
	if dummies != 1 || real != 0 {
		t.Fatalf("unknown user: %d dummy and %d real verifications, want 1 and 0", dummies, real)
	}
	if _, err := v.Verify(context.Background(), Credential{User: "root", Password: "wrong"}, "p"); err == nil || dummies != 1 || real != 1 {
		t.Fatalf("known user: %d dummy and %d real verifications, want 1 and 1 (%v)", dummies, real, err)
	}
}

// The test above observes that the dummy runs; this one that it costs what
// a real verification costs. argon2id allocates its whole memory
// cost (19 MiB) on every call, so an unknown user's failure must allocate
// about as much as a known user's, where a skipped dummy allocates almost
// nothing. Allocation totals are deterministic, unlike timings; but they
// are the process's, and a hash another test left running (late on a
// loaded machine) can add its 19 MiB to one call's: each cost is the least
// of three calls, which such a stray can only raise.
func TestUnknownUserCostsAsMuchAsAKnownOne(t *testing.T) {
	v, _ := newTestVerifier(t, VerifierOptions{}, map[string]string{"user_1": "P@ssw0rd"})
	allocated := func(user string) uint64 {
		least := uint64(math.MaxUint64)
		for range 3 {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := v.Verify(context.Background(), Credential{User: user, Password: "wrong-password"}, "p")
			runtime.ReadMemStats(&after)
			failureOf(t, err)
			least = min(least, after.TotalAlloc-before.TotalAlloc)
		}
		return least
	}
	allocated("nobody") // the first call also makes the dummy hash itself
	known, unknown := allocated("user_1"), allocated("nobody")
	if known < 16<<20 {
		t.Fatalf("a known user's verification allocated %d bytes; expected argon2id's 19 MiB", known)
	}
	if unknown < known*9/10 {
		t.Fatalf("an unknown user's failure allocated %d bytes against %d for a known user: the dummy verification did not run", unknown, known)
	}
}

func TestPasswordChangeAndDeletionInvalidateCache(t *testing.T) {
	v, store := newTestVerifier(t, VerifierOptions{}, map[string]string{"user_1": "P@ssw0rd"})
	ctx := context.Background()
	old := Credential{User: "user_1", Password: "P@ssw0rd"}
	if _, err := v.Verify(ctx, old, "p"); err != nil {
		t.Fatal(err)
	}
	hash, _ := credentials.HashPassword("P@ssw0rd123")
	if err := store.Update(context.Background(), func(s *credentials.Set) error {
		u, _ := s.User("user_1")
		u.PasswordHash = hash
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, old, "p"); err == nil {
		t.Fatal("old password still accepted from the cache after a change")
	}
	if _, err := v.Verify(ctx, Credential{User: "user_1", Password: "P@ssw0rd123"}, "p"); err != nil {
		t.Fatal(err)
	}
	if err := store.Update(context.Background(), func(s *credentials.Set) error { s.DeleteUser("user_1"); return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, Credential{User: "user_1", Password: "P@ssw0rd123"}, "p"); err == nil {
		t.Fatal("deleted user still accepted from the cache")
	}
}

func TestCacheTTL(t *testing.T) {
	v, _ := newTestVerifier(t, VerifierOptions{CacheTTL: time.Hour}, nil)
	now := time.Now()
	v.now = func() time.Time { return now }
	ctx := context.Background()
	root := Credential{User: "root", Password: "Milvus"}
	if _, err := v.Verify(ctx, root, "p"); err != nil {
		t.Fatal(err)
	}
	before := testutil.ToFloat64(v.metrics.hashes)
	now = now.Add(2 * time.Hour)
	if _, err := v.Verify(ctx, root, "p"); err != nil {
		t.Fatal(err)
	}
	if testutil.ToFloat64(v.metrics.hashes)-before != 1 {
		t.Fatal("an expired cache entry was honoured")
	}
}

func TestLongPasswordEveryCharacterCounts(t *testing.T) {
	pw := strings.Repeat("abcdefgh", 32) // 256 characters
	v, _ := newTestVerifier(t, VerifierOptions{}, map[string]string{"long": pw})
	ctx := context.Background()
	if _, err := v.Verify(ctx, Credential{User: "long", Password: pw}, "p"); err != nil {
		t.Fatalf("256-character password refused: %v", err)
	}
	other := []byte(pw)
	other[199] = 'X'
	if _, err := v.Verify(ctx, Credential{User: "long", Password: string(other)}, "p"); err == nil {
		t.Fatal("a password differing only in its 200th character was accepted")
	}
}

func TestAPIKey(t *testing.T) {
	v, store := newTestVerifier(t, VerifierOptions{}, nil)
	key, _ := credentials.NewAPIKey()
	if err := store.Update(context.Background(), func(s *credentials.Set) error {
		return s.PutAPIKey(&credentials.APIKey{Name: "ci", User: "root", Digest: credentials.APIKeyDigest(key)})
	}); err != nil {
		t.Fatal(err)
	}
	c, err := ParseToken(b64(key))
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Verify(context.Background(), c, "p")
	if err != nil || id.User != "root" || id.Via != "apikey" {
		t.Fatalf("api key: %+v %v", id, err)
	}
	_, err = v.Verify(context.Background(), Credential{APIKey: key + "x"}, "p")
	if failureOf(t, err).Message != MsgBadAPIKey {
		t.Fatalf("wrong key: %v", err)
	}
}

func TestHashingIsBounded(t *testing.T) {
	v, _ := newTestVerifier(t, VerifierOptions{MaxConcurrentHashes: 1}, nil)
	if err := v.pool.acquire(context.Background(), "other", "other"); err != nil { // the only slot
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := v.Verify(ctx, Credential{User: "root", Password: "Milvus"}, "p")
	if failureOf(t, err).Reason != ReasonCanceled {
		t.Fatalf("a cold check ran past the bound: %v", err)
	}
	v.pool.release()
	if _, err := v.Verify(context.Background(), Credential{User: "root", Password: "Milvus"}, "p"); err != nil {
		t.Fatalf("the slot given up by a canceled waiter was lost: %v", err)
	}
}

func TestLimiterLocksBacksOffAndForgives(t *testing.T) {
	l, err := NewLimiter(LimiterOptions{Threshold: 3, AddressFactor: 10, Backoff: time.Second, MaxBackoff: 4 * time.Second, Forgive: time.Minute, Tracked: 100})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	const a, b = "10.0.0.1", "10.0.0.9"
	for i := 0; i < 2; i++ {
		l.Failed("alice", a)
	}
	if l.Locked("alice", a) {
		t.Fatal("locked before the threshold")
	}
	l.Failed("alice", a)
	if !l.Locked("alice", a) || l.Locked("bob", a) || l.Locked("alice", b) {
		t.Fatal("threshold reached: alice locked from a only; bob from a and alice from b not")
	}
	now = now.Add(1100 * time.Millisecond)
	if l.Locked("alice", a) {
		t.Fatal("first backoff (1s) did not end")
	}
	l.Failed("alice", a) // 4th: 2s
	l.Failed("alice", a) // 5th: 4s
	l.Failed("alice", a) // 6th: capped at 4s
	now = now.Add(3900 * time.Millisecond)
	if !l.Locked("alice", a) {
		t.Fatal("backoff did not grow")
	}
	now = now.Add(200 * time.Millisecond)
	if l.Locked("alice", a) {
		t.Fatal("backoff not capped at MaxBackoff")
	}
	// The owner's success elsewhere does not reset the guesser's count.
	l.Succeeded("alice", b)
	l.Failed("alice", a)
	if !l.Locked("alice", a) {
		t.Fatal("a success from another address reset the count of this one")
	}
	l.Succeeded("alice", a)
	if l.Locked("alice", a) {
		t.Fatal("a success from the same address did not reset its count")
	}
	// The address has 30 of room, over all its users.
	const c = "10.0.0.2"
	for i := 0; i < 29; i++ {
		l.Failed(fmt.Sprintf("user%d", i), c)
	}
	if l.Locked("someone", c) {
		t.Fatal("address locked before its threshold")
	}
	l.Failed("", c)
	if !l.Locked("someone", c) || !l.Locked("", c) || l.Locked("someone", b) {
		t.Fatal("address not locked (for every user) at its threshold, or locked elsewhere")
	}
	now = now.Add(2 * time.Minute)
	if l.Locked("", c) {
		t.Fatal("not forgiven after Forgive")
	}
}

func TestLimiterMemoryIsBounded(t *testing.T) {
	l, _ := NewLimiter(LimiterOptions{Threshold: 3, Backoff: time.Second, MaxBackoff: time.Second, Forgive: time.Minute, Tracked: 50})
	for i := 0; i < 10000; i++ {
		l.Failed("user"+string(rune('a'+i%26))+strings.Repeat("x", i%40), "p")
	}
	if n := l.entries.Len(); n > 50 {
		t.Fatalf("%d counters kept, bound is 50", n)
	}
}

// A claimed name of megabytes is neither kept as a limiter key nor passed
// on in a refusal: only a bounded copy is.
func TestHugeClaimedNameIsNotRetained(t *testing.T) {
	l, _ := NewLimiter(LimiterOptions{Threshold: 3, Backoff: time.Second, MaxBackoff: time.Second, Forgive: time.Minute, Tracked: 50})
	v, _ := newTestVerifier(t, VerifierOptions{Limiter: l}, nil)
	v.dummyVerify = func(string) {}
	v.hashCost.Store(0)
	huge := strings.Repeat("n", 4<<20)
	_, err := v.Verify(context.Background(), Credential{User: huge, Password: "x"}, "10.0.0.1")
	if f := failureOf(t, err); len(f.User) > 100 || !strings.Contains(f.User, "4194304 bytes") {
		t.Fatalf("the refusal carries a %d-byte name", len(f.User))
	}
	for _, k := range l.entries.Keys() {
		if len(k) > 200 {
			t.Fatalf("a limiter key of %d bytes is kept", len(k))
		}
	}
}

// While (user, address) is locked nothing from that address succeeds for
// the user, not even the password the cache holds, and every refusal takes
// a hash's time; the owner's other addresses are not affected.
func TestLockoutRefusesCachedPasswordFromTheLockedAddressOnly(t *testing.T) {
	l, _ := NewLimiter(LimiterOptions{Threshold: 2, AddressFactor: 10, Backoff: time.Hour, MaxBackoff: time.Hour, Forgive: time.Hour, Tracked: 10})
	v, _ := newTestVerifier(t, VerifierOptions{Limiter: l}, nil)
	ctx := context.Background()
	root := Credential{User: "root", Password: "Milvus"}
	const attacker, owner = "10.0.0.66", "10.0.0.1"
	if _, err := v.Verify(ctx, root, attacker); err != nil { // now cached
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		_, _ = v.Verify(ctx, Credential{User: "root", Password: fmt.Sprintf("guess%d", i)}, attacker)
	}
	const floor = 60 * time.Millisecond
	v.hashCost.Store(int64(floor))
	before := testutil.ToFloat64(v.metrics.hashes)
	start := time.Now()
	_, err := v.Verify(ctx, root, attacker)
	took := time.Since(start)
	f := failureOf(t, err)
	if f.Reason != ReasonLockedOut || f.Message != MsgBadPassword {
		t.Fatalf("cached right password from the locked address: %+v (want a lockout with Milvus's message)", f)
	}
	if took < floor {
		t.Fatalf("the lockout answered in %v, faster than a hash (%v)", took, floor)
	}
	if testutil.ToFloat64(v.metrics.hashes) != before {
		t.Fatal("a locked-out attempt was hashed")
	}
	if _, err := v.Verify(ctx, root, owner); err != nil {
		t.Fatalf("the owner's address is locked too: %v", err)
	}
}

// An imported bcrypt hash verifies ten times faster than argon2id; its
// wrong passwords are padded to argon2id's time, as unknown names are, so
// timing does not tell a bcrypt user from a name that does not exist.
func TestBcryptFailureTakesAnArgon2Time(t *testing.T) {
	v, store := newTestVerifier(t, VerifierOptions{}, nil)
	h, err := bcrypt.GenerateFromPassword([]byte("P@ssw0rd"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Update(context.Background(), func(s *credentials.Set) error {
		s.PutUser(&credentials.User{Name: "imported", PasswordHash: string(h)})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	const floor = 80 * time.Millisecond
	v.hashCost.Store(int64(floor))
	v.dummyVerify = func(string) {} // leave the average where it is
	start := time.Now()
	_, err = v.Verify(context.Background(), Credential{User: "imported", Password: "wrong"}, "p")
	if took := time.Since(start); failureOf(t, err).Reason != ReasonBadPassword || took < floor {
		t.Fatalf("bcrypt wrong password answered in %v, want at least %v", took, floor)
	}
	if _, err := v.Verify(context.Background(), Credential{User: "imported", Password: "P@ssw0rd"}, "p"); err != nil {
		t.Fatalf("bcrypt right password: %v", err)
	}
}

// A password longer than any Milvus accepts is refused without hashing it.
func TestOversizedPasswordIsNotHashed(t *testing.T) {
	v, _ := newTestVerifier(t, VerifierOptions{}, nil)
	v.hashCost.Store(0)
	called := 0
	v.verify = func(string, string) bool { called++; return true }
	_, err := v.Verify(context.Background(), Credential{User: "root", Password: strings.Repeat("p", 1<<20)}, "p")
	if failureOf(t, err).Reason != ReasonBadPassword || called != 0 {
		t.Fatalf("1 MiB password: %v, hashed %d times", err, called)
	}
}

func TestParseHTTPAuthorization(t *testing.T) {
	for header, want := range map[string]Credential{
		"Bearer user_1:pa:ss":           {User: "user_1", Password: "pa:ss"},
		"bearer ap_key":                 {APIKey: "ap_key"},
		"Basic " + b64("user_1:secret"): {User: "user_1", Password: "secret"},
	} {
		got, err := ParseHTTPAuthorization(header)
		if err != nil || got != want {
			t.Errorf("%q: %+v %v", header, got, err)
		}
	}
	for header, reason := range map[string]Reason{
		"Bearer ":                 ReasonMissing,
		"Basic %%%":               ReasonInvalidFormat,
		"Basic " + b64("nocolon"): ReasonInvalidFormat,
		"Digest abc":              ReasonInvalidFormat,
	} {
		_, err := ParseHTTPAuthorization(header)
		var f *Failure
		if !errors.As(err, &f) || f.Reason != reason {
			t.Errorf("%q: %v, want reason %s", header, err, reason)
		}
	}
}

// A client that opens many connections at once with the same password
// costs one hash, not one each, and none of its calls is refused as busy.
func TestConcurrentColdChecksOfOneCredentialShareOneHash(t *testing.T) {
	v, _ := newTestVerifier(t, VerifierOptions{MaxConcurrentHashes: 1}, nil)
	release := make(chan struct{})
	verify := v.verify
	var hashed atomic.Int32
	v.verify = func(h, p string) bool {
		hashed.Add(1)
		<-release // hold the hash until every caller has arrived
		return verify(h, p)
	}
	const callers = 3 * maxWaitingPerUser
	errs := make(chan error, callers)
	for range callers {
		go func() {
			_, err := v.Verify(context.Background(), Credential{User: "root", Password: "Milvus"}, "10.0.0.1")
			errs <- err
		}()
	}
	time.Sleep(100 * time.Millisecond)
	close(release)
	for range callers {
		if err := <-errs; err != nil {
			t.Fatalf("a concurrent right password was refused: %v", err)
		}
	}
	if n := hashed.Load(); n != 1 {
		t.Fatalf("%d concurrent checks of one credential hashed %d times, want 1", callers, n)
	}
}

// A check refused because its queue is full is answered after busyWait,
// not at once: instant refusals let a waiting flood loop at thousands of
// calls a second. A caller that gives up is answered at once.
func TestBusyRefusalWaits(t *testing.T) {
	v, _ := newTestVerifier(t, VerifierOptions{MaxConcurrentHashes: 1}, nil)
	release := make(chan struct{})
	// The held checks then fail without hashing: 17 real derivations
	// would go on after the test, in later tests' measurements.
	v.verify = func(string, string) bool { <-release; return false }
	var held sync.WaitGroup
	defer held.Wait()
	defer close(release)
	// One hash running and a full queue for (address, root).
	for i := range maxWaitingPerUser + 1 {
		held.Add(1)
		go func() {
			defer held.Done()
			_, _ = v.Verify(context.Background(), Credential{User: "root", Password: fmt.Sprintf("guess-%d", i)}, "10.0.0.66")
		}()
	}
	queued := func() int {
		v.pool.mu.Lock()
		defer v.pool.mu.Unlock()
		return v.pool.waiting
	}
	for deadline := time.Now().Add(10 * time.Second); queued() < maxWaitingPerUser; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d checks queued after 10 s, want %d", queued(), maxWaitingPerUser)
		}
	}
	start := time.Now()
	_, err := v.Verify(context.Background(), Credential{User: "root", Password: "one-more"}, "10.0.0.66")
	if f := failureOf(t, err); f.Reason != ReasonBusy || time.Since(start) < time.Second {
		t.Fatalf("past a full queue: %s after %v, want %s after a second", f.Reason, time.Since(start), ReasonBusy)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := v.Verify(ctx, Credential{User: "root", Password: "gives-up"}, "10.0.0.66"); failureOf(t, err).Reason != ReasonBusy || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("a caller that gave up: %v after %v", err, time.Since(start))
	}
}

// An API key stops authenticating at its expiry, with Milvus's message.
func TestAPIKeyExpires(t *testing.T) {
	v, store := newTestVerifier(t, VerifierOptions{}, nil)
	now := time.Now()
	v.now = func() time.Time { return now }
	key, _ := credentials.NewAPIKey()
	if err := store.Update(context.Background(), func(s *credentials.Set) error {
		return s.PutAPIKey(&credentials.APIKey{Name: "ci", User: "root", Digest: credentials.APIKeyDigest(key), Expires: now.Add(time.Minute)})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), Credential{APIKey: key}, "p"); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	now = now.Add(time.Minute)
	_, err := v.Verify(context.Background(), Credential{APIKey: key}, "p")
	if f := failureOf(t, err); f.Reason != ReasonExpiredAPIKey || f.Message != MsgBadAPIKey {
		t.Fatalf("at expiry: %+v", f)
	}
}

// Only a compact JWS is taken for an OpenID token: an API key (hex or
// base64 with padding) never is.
func TestLooksLikeJWT(t *testing.T) {
	for token, want := range map[string]bool{
		"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln": true,
		"eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.":      true, // refused later, by the algorithm list
		"0123456789abcdef0123456789abcdef":          false,
		"eyJ.a.b.c":                                 false,
		"eyJhbGciOiJSUzI1NiJ9.eyJz+IiJhIn0=.c2ln":   false,
		"ak_abc.def.ghi":                            false,
	} {
		if got := LooksLikeJWT(token); got != want {
			t.Errorf("LooksLikeJWT(%q) = %v", token, got)
		}
	}
}
