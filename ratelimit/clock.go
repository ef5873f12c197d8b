package ratelimit

import (
	"sync/atomic"
	"time"
)

// coarseClock is the clock decisions read: reading the system clock costs
// 70 ns on a loaded 2-core VM, most of a decision's budget, so a goroutine
// moves this one every tick instead. It ticks only while decisions read
// it: after parkAfter ticks without one it parks, and the next decision
// wakes it (and reads the system clock that once), so an idle proxy pays
// no wake-ups.
type coarseClock struct {
	epoch  time.Time
	now    atomic.Int64 // ns since epoch, at the last tick
	used   atomic.Bool  // a decision read the clock since the last tick
	parked atomic.Bool
	wake   chan struct{}
}

const (
	// tick is the resolution: a bucket refills at most this late; a rate
	// over time is exact.
	tick      = time.Millisecond
	parkAfter = 10 // idle ticks before the clock parks
)

// newCoarseClock starts the clock, parked, until stop is closed.
func newCoarseClock(stop <-chan struct{}) *coarseClock {
	c := &coarseClock{epoch: time.Now(), wake: make(chan struct{}, 1)}
	c.parked.Store(true)
	go c.run(stop)
	return c
}

// Now is the time for a decision (ns since the epoch).
func (c *coarseClock) Now() int64 {
	if c.parked.Load() {
		c.unpark()
	}
	if !c.used.Load() {
		c.used.Store(true)
	}
	return c.now.Load()
}

// precise reads the system clock, for the sweeper and the metrics, which
// must not keep the clock ticking.
func (c *coarseClock) precise() int64 { return int64(time.Since(c.epoch)) }

func (c *coarseClock) unpark() {
	// The time first: a decision that sees the clock unparked must not
	// read the time it was parked at.
	c.now.Store(c.precise())
	if c.parked.CompareAndSwap(true, false) {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

func (c *coarseClock) run(stop <-chan struct{}) {
	t := time.NewTicker(tick)
	t.Stop()
	for idle := parkAfter; ; {
		if idle >= parkAfter {
			// A decision between the last look at used and here finds
			// parked set and wakes the clock: nothing is missed.
			c.parked.Store(true)
			select {
			case <-stop:
				return
			case <-c.wake:
			}
			idle = 0
			t.Reset(tick)
		}
		select {
		case <-stop:
			t.Stop()
			return
		case <-t.C:
		}
		c.now.Store(c.precise())
		if c.used.Swap(false) {
			idle = 0
		} else if idle++; idle >= parkAfter {
			t.Stop()
		}
	}
}
