package relay

import (
	"bytes"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
)

// Who may touch what. A connection's fields belong either to the goroutine
// that reads the connection (goroutineLock) or to a mutex (ownedMutex),
// and the struct declarations group them so. The checks follow
// x/net/http2's gotrack.go (goroutineLock, serverConn.serveG.check and
// checkNotOn): off unless checkOwners is set, which costs a branch on a
// global that never changes in production; the unit tests set it (see
// TestMain), and then a reader's field touched from another goroutine, or
// a guarded field touched without its mutex, panics.

// checkOwners turns the checks on. Set before any connection starts.
var checkOwners bool

// goroutineLock is the goroutine that owns some fields (0 when the checks
// are off).
type goroutineLock uint64

func newGoroutineLock() goroutineLock {
	if !checkOwners {
		return 0
	}
	return goroutineLock(curGoroutineID())
}

// check panics unless it runs on the owning goroutine.
func (g goroutineLock) check() {
	if checkOwners && uint64(g) != curGoroutineID() {
		panic("relay: running on the wrong goroutine")
	}
}

// ownedMutex is a sync.Mutex that, with the checks on, knows which
// goroutine holds it.
type ownedMutex struct {
	sync.Mutex
	holder atomic.Uint64
}

func (m *ownedMutex) Lock() {
	m.Mutex.Lock()
	if checkOwners {
		m.holder.Store(curGoroutineID())
	}
}

func (m *ownedMutex) Unlock() {
	if checkOwners {
		m.holder.Store(0)
	}
	m.Mutex.Unlock()
}

// held panics unless the calling goroutine holds m.
func (m *ownedMutex) held() {
	if checkOwners && m.holder.Load() != curGoroutineID() {
		panic("relay: a guarded field touched without its mutex")
	}
}

// notHeld panics if the calling goroutine holds m (it is about to take
// locks m must not be held across).
func (m *ownedMutex) notHeld() {
	if checkOwners && m.holder.Load() == curGoroutineID() {
		panic("relay: called with a mutex held that must not be")
	}
}

// curGoroutineID reads the running goroutine's ID from the first line of
// its stack trace, "goroutine 42 [running]:"; slow, so tests only.
func curGoroutineID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		panic("relay: no goroutine ID in " + strconv.Quote(string(buf[:])))
	}
	return id
}
