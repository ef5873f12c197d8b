package credentials

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// cheapHashing makes HashPassword fast for tests that create many users.
func cheapHashing(t *testing.T) {
	t.Helper()
	old := hashParams
	hashParams = argon2Params{memory: 64, time: 1, threads: 1, saltLen: 16, keyLen: 32}
	t.Cleanup(func() { hashParams = old })
}

func TestHashPasswordOWASPEveryCharacterCounts(t *testing.T) {
	pw := strings.Repeat("abcdefgh", 32) // 256 characters
	h, err := HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q does not use the OWASP parameters", h)
	}
	p, salt, key, err := parseArgon2(h)
	if err != nil || p != owaspParams || len(salt) != 16 || len(key) != 32 {
		t.Fatalf("parseArgon2: %+v salt %d key %d err %v", p, len(salt), len(key), err)
	}
	if !VerifyPassword(h, pw) {
		t.Fatal("256-character password does not verify")
	}
	other := []byte(pw)
	other[199] ^= 1 // the 200th character
	if VerifyPassword(h, string(other)) {
		t.Fatal("password differing in its 200th character verifies")
	}
	if VerifyPassword(h, pw[:255]) {
		t.Fatal("truncated password verifies")
	}
	h2, _ := HashPassword(pw)
	if h2 == h {
		t.Fatal("two hashes of one password are equal: salt not random")
	}
}

func TestVerifyBcrypt(t *testing.T) {
	b, err := bcrypt.GenerateFromPassword([]byte("Milvus"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"$2a$", "$2b$", "$2y$"} {
		h := prefix + string(b[4:])
		if err := CheckHashFormat(h); err != nil {
			t.Errorf("CheckHashFormat(%s...) = %v", prefix, err)
		}
		if !VerifyPassword(h, "Milvus") {
			t.Errorf("%s hash does not verify", prefix)
		}
		if VerifyPassword(h, "milvus") {
			t.Errorf("%s hash verifies a wrong password", prefix)
		}
	}
}

func TestCheckHashFormat(t *testing.T) {
	good, _ := hashWith(argon2Params{memory: 64, time: 1, threads: 1, saltLen: 16, keyLen: 32}, "secret1")
	if err := CheckHashFormat(good); err != nil {
		t.Fatalf("CheckHashFormat(good) = %v", err)
	}
	bad := []string{
		"",
		"plaintext",
		"$apr1$abc$def",
		"{SHA}abc",
		"$2x$04$abc",
		"$2a$04$short",
		"$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5",
		strings.Replace(good, "v=19", "v=16", 1),
		strings.Replace(good, "m=64", "m=999999999", 1),
		strings.Replace(good, "t=1", "t=0", 1),
		strings.Replace(good, ",p=1", ",p=1,x=2", 1),
		good + "$extra",
		good[:len(good)-40],
	}
	for _, h := range bad {
		err := CheckHashFormat(h)
		if err == nil {
			t.Errorf("CheckHashFormat(%q) = nil, want error", h)
			continue
		}
		if h != "" && strings.Contains(err.Error(), h) {
			t.Errorf("error %q contains the hash", err)
		}
		if VerifyPassword(h, "secret1") {
			t.Errorf("VerifyPassword accepted malformed hash %q", h)
		}
	}
}

func TestDummyVerify(t *testing.T) {
	DummyVerify("whatever")
	if !strings.HasPrefix(dummyHash(), "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatal("dummy hash does not use the production parameters")
	}
}

// After a derivation, its 19 MiB work area goes back to the OS once hashing
// is idle, so an idle proxy does not hold it (Go would keep it for reuse).
// The test watches the release being called rather than heap statistics,
// which depend on when the GC runs.
func TestArgon2MemoryReleasedWhenIdle(t *testing.T) {
	// A release an earlier test's derivation armed would land on the stub.
	releaseAfterIdle.Stop()
	released := make(chan time.Time, 1)
	oldDelay, oldFree := releaseIdleDelay, freeOSMemory
	releaseIdleDelay = time.Second
	freeOSMemory = func() {
		select {
		case released <- time.Now():
		default:
		}
	}
	t.Cleanup(func() { releaseIdleDelay, freeOSMemory = oldDelay, oldFree })

	// The derivation ends between began and its return; the test cannot
	// see when (a loaded machine can pause it after the return), so the
	// release is timed from began: due releaseIdleDelay after the end, it
	// comes that long after began at the earliest, however slow the
	// machine. A release at the end itself would come after the
	// derivation's own time, far below the delay.
	began := time.Now()
	if _, err := HashPassword("P@ssw0rd"); err != nil {
		t.Fatal(err)
	}
	t.Logf("the derivation took at most %v", time.Since(began))
	select {
	case at := <-released:
		if after := at.Sub(began); after < releaseIdleDelay {
			t.Fatalf("released %s after the derivation began, before %s of idleness", after, releaseIdleDelay)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the work area was never released after hashing went idle")
	}
}
