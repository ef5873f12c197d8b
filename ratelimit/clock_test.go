package ratelimit

import (
	"testing"
	"time"
)

// The coarse clock ticks while decisions read it, parks when they stop,
// and a decision after a long park reads the present, not the time the
// clock parked at.
func TestCoarseClockParksAndWakes(t *testing.T) {
	stop := make(chan struct{})
	defer close(stop)
	c := newCoarseClock(stop)
	waitParked := func() {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !c.parked.Load() {
			if time.Now().After(deadline) {
				t.Fatal("the clock did not park without decisions")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitParked()
	time.Sleep(300 * time.Millisecond)
	if lag := c.precise() - c.Now(); lag > int64(100*time.Millisecond) {
		t.Fatalf("a decision after 300 ms parked read a time %v old", time.Duration(lag))
	}
	// Read on, it moves on.
	first := c.Now()
	deadline := time.Now().Add(5 * time.Second)
	for c.Now() == first {
		if time.Now().After(deadline) {
			t.Fatal("the clock does not tick while read")
		}
		time.Sleep(100 * time.Microsecond)
	}
	waitParked()
}
