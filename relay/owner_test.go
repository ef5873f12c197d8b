package relay

import (
	"net"
	"testing"
)

func wantPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Fatalf("%s did not panic", what)
		}
	}()
	f()
}

// With the checks on (TestMain), a reader's field touched from another
// goroutine, or a guarded one without its mutex, panics; and not when
// the owner touches it.
func TestOwnershipChecks(t *testing.T) {
	if !checkOwners {
		t.Fatal("the unit tests run with the ownership checks on")
	}
	g := newGoroutineLock()
	g.check()
	done := make(chan any)
	go func() {
		defer func() { done <- recover() }()
		g.check()
	}()
	if <-done == nil {
		t.Fatal("a goroutine lock passed on another goroutine")
	}

	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	w, _ := newWconn(a, b)
	wantPanic(t, "send without the write lock", func() { w.send(1, &half{}) })
	w.mu.Lock()
	w.send(1, &half{})
	wantPanic(t, "notHeld with the lock held", func() { w.mu.notHeld() })
	w.mu.Unlock()
	w.mu.notHeld()
	go func() {
		w.mu.Lock()
		done <- nil
		<-done
		w.mu.Unlock()
		done <- nil
	}()
	<-done
	wantPanic(t, "held while another goroutine holds it", func() { w.mu.held() })
	done <- nil
	<-done

	s := &stream{}
	wantPanic(t, "sendUp without the stream's lock", func() { (&clientConn{}).sendUp(s, nil, false, reused, nil) })
}

func TestCurGoroutineID(t *testing.T) {
	ids := make(chan uint64, 2)
	go func() { ids <- curGoroutineID() }()
	go func() { ids <- curGoroutineID() }()
	if a, b := <-ids, <-ids; a == b || a == 0 || b == 0 {
		t.Fatalf("goroutine IDs %d %d", a, b)
	}
}
