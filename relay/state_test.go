package relay

import "testing"

// The transition table, written out: for each phase, which phase each
// admission event leads to ("" for a refused event).
func TestStreamPhases(t *testing.T) {
	phases := []streamState{phaseAdmitting, phaseAuthenticating, phaseDeciding, phaseForwarding, phaseRefused}
	want := map[event][5]streamState{
		//                   admitting            authenticating  deciding         forwarding refused
		evAuthenticate: {phaseAuthenticating, 0, 0, 0, 0},
		evDecide:       {phaseDeciding, phaseDeciding, 0, 0, 0},
		evForward:      {phaseForwarding, phaseForwarding, phaseForwarding, 0, 0},
		evRefuse:       {phaseRefused, phaseRefused, phaseRefused, 0, 0},
	}
	legal := map[event][5]bool{
		evAuthenticate: {true, false, false, false, false},
		evDecide:       {true, true, false, false, false},
		evForward:      {true, true, true, false, false},
		evRefuse:       {true, true, true, false, false},
	}
	for ev, to := range want {
		for i, from := range phases {
			// The directions do not change what admission may do.
			for _, bits := range []streamState{0, remoteClosed, headersSent | localEnding, canceled | counted} {
				st := from | bits
				got, ok := st.next(ev)
				if ok != legal[ev][i] {
					t.Errorf("%v on %v: legal %v, want %v", ev, st, ok, legal[ev][i])
					continue
				}
				if ok && got != to[i]|bits {
					t.Errorf("%v on %v: %v, want %v", ev, st, got, to[i]|bits)
				}
			}
		}
	}
}

// The events of the two directions: each is legal once, in its order,
// in every phase.
func TestStreamDirections(t *testing.T) {
	cases := []struct {
		ev       event
		from, to streamState
		ok       bool
	}{
		{evRemoteEnd, 0, remoteClosed, true},
		{evRemoteEnd, remoteClosed, remoteClosed, false}, // DATA after END_STREAM
		{evHeaders, 0, headersSent, true},
		{evHeaders, headersSent, headersSent, true}, // trailers
		{evHeaders, localEnding, localEnding, false},
		{evEnd, headersSent, headersSent | localEnding, true},
		{evEnd, localEnding, localEnding, false},
		{evEndLeft, 0, 0, false}, // nothing queued
		{evEndLeft, localEnding, localEnding | localClosed, true},
		{evEndLeft, localEnding | localClosed, localEnding | localClosed, false},
		{evCancel, 0, canceled, true},
		{evCancel, localEnding | localClosed, localEnding | localClosed | canceled, true},
		{evCancel, canceled, canceled, false},
		{evResetDown, headersSent, headersSent | localEnding | canceled, true},
		{evResetDown, localEnding, localEnding, false},
		{evCount, 0, counted, true},
		{evCount, counted, counted, false},
	}
	for _, p := range []streamState{phaseAdmitting, phaseAuthenticating, phaseDeciding, phaseForwarding, phaseRefused} {
		for _, c := range cases {
			got, ok := (p | c.from).next(c.ev)
			if ok != c.ok || ok && got != p|c.to {
				t.Errorf("%v on %v: %v %v, want %v %v", c.ev, p|c.from, got, ok, p|c.to, c.ok)
			}
		}
	}
	if _, ok := streamState(0).next(numEvents); ok {
		t.Error("an unknown event was legal")
	}
}

// The protocol's states follow from the directions (RFC 9113 5.1).
func TestStreamH2States(t *testing.T) {
	for st, want := range map[streamState]h2State{
		0:                                        stateOpen,
		phaseDeciding | headersSent:              stateOpen,
		localEnding:                              stateOpen, // the end waits for a window
		remoteClosed:                             stateHalfClosedRemote,
		remoteClosed | localEnding:               stateHalfClosedRemote,
		localEnding | localClosed:                stateHalfClosedLocal,
		remoteClosed | localEnding | localClosed: stateClosed,
		canceled:                                 stateClosed,
		phaseRefused | canceled | counted:        stateClosed,
	} {
		if got := st.h2(); got != want {
			t.Errorf("%v: %v, want %v", st, got, want)
		}
	}
	// Only the event that closes the second direction sees both closed.
	st := phaseForwarding | remoteClosed | localEnding
	if st.closedBothWays() {
		t.Fatal("closed before the end left")
	}
	if st, _ = st.next(evEndLeft); !st.closedBothWays() {
		t.Fatal("not closed once both ends are")
	}
}

// A reader's lookup keeps the last stream it found; once the stream has
// left the map, it must not be found again.
func TestLookupDoesNotFindAForgottenStream(t *testing.T) {
	cc := &clientConn{streams: map[uint32]*stream{}, readerG: newGoroutineLock()}
	bc := &backendConn{streams: map[uint32]*stream{}, readerG: newGoroutineLock()}
	s := &stream{cc: cc, cid: 1, bc: bc, bid: 3}
	cc.streams[s.cid], bc.streams[s.bid] = s, s
	bc.active.Store(1)
	if cc.lookup(1) != s || bc.lookup(3) != s {
		t.Fatal("a stream in the maps is not found")
	}
	cc.forget(s)
	if got := cc.lookup(1); got != nil {
		t.Error("the client reader found a forgotten stream")
	}
	if !bc.forget(s) {
		t.Fatal("the backend connection did not have the stream")
	}
	if got := bc.lookup(3); got != nil {
		t.Error("the backend reader found a forgotten stream")
	}
}
