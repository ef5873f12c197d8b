package auth

import (
	"testing"
	"time"
)

// The console lists the locks in force and lifts them.
func TestLimiterListsAndLiftsLocks(t *testing.T) {
	l, err := NewLimiter(LimiterOptions{Threshold: 2, AddressFactor: 2, Backoff: time.Minute, MaxBackoff: time.Minute, Forgive: time.Hour, Tracked: 100})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		l.Failed("alice", "10.0.0.1")
		l.Failed("bob", "10.0.0.1")
	}
	l.Failed("carol", "10.0.0.2")
	got := map[string]int{}
	for _, lo := range l.Lockouts() {
		got[lo.User+"@"+lo.Address] = lo.Failures
	}
	if len(got) != 3 || got["alice@10.0.0.1"] != 2 || got["bob@10.0.0.1"] != 2 || got["@10.0.0.1"] != 4 {
		t.Fatalf("lockouts %v, want alice and bob from 10.0.0.1 and the address itself", got)
	}
	if !l.Unlock("alice", "10.0.0.1") || l.Unlock("alice", "10.0.0.1") {
		t.Fatal("Unlock: true once, then false")
	}
	if !l.Unlock("", "10.0.0.1") {
		t.Fatal("the address's own lock was not lifted")
	}
	if l.Locked("alice", "10.0.0.1") || !l.Locked("bob", "10.0.0.1") {
		t.Fatal("after lifting alice's and the address's locks, only bob's stays")
	}
}
