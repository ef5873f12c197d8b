package relay

import "strings"

// A stream's state, in one word that every goroutine working on the
// stream reads and changes through transition, as x/net/http2's server
// keeps one streamState per stream (v0.62.0: http2.go's streamState,
// server.go's stream.state and closeStream).
//
// It holds two things. The proxy's own progress, the phase: a stream is
// admitted (authenticated, then decided on) before anything of it goes
// upstream. And the two directions of RFC 9113 §5.1, from which the
// protocol's state follows (h2): the client's side closes with its
// END_STREAM, the relay's once the end of the response has left, and a
// reset closes both at once. An idle stream has no stream struct: its ID
// is above clientConn.lastID; a closed one is no longer in the
// connection's map.
type streamState uint32

// The phases, the proxy's states within open.
const (
	// phaseAdmitting: the reader checks the HEADERS (authentication that
	// does not wait, the method, the decision that needs no message).
	phaseAdmitting streamState = iota
	// phaseAuthenticating: a check that waits (a hash, a bind, a key
	// fetch) runs off the reader; what the client sends is held.
	phaseAuthenticating
	// phaseDeciding: the first request message is gathered until the
	// fields the decision reads are whole.
	phaseDeciding
	// phaseForwarding: opened upstream; frames pass both ways.
	phaseForwarding
	// phaseRefused: the relay answered the call itself before it was
	// forwarded; nothing of it goes upstream.
	phaseRefused

	phaseMask streamState = 7
)

// The directions, and what happened once in a stream's life.
const (
	// remoteClosed: the client sent END_STREAM.
	remoteClosed streamState = 1 << (3 + iota)
	// headersSent: response HEADERS were queued for the client, so a
	// refusal now is trailers, not trailers-only.
	headersSent
	// localEnding: END_STREAM or RST_STREAM was queued for the client;
	// nothing more of the response is.
	localEnding
	// localClosed: and it has left (nothing waits for the client's window).
	localClosed
	// canceled: reset by the client or by the relay, or the connection
	// ended: canceled upstream, and a check still running opens nothing.
	canceled
	// counted: the call's end was counted (Options.Observe).
	counted
)

func (st streamState) phase() streamState { return st & phaseMask }

// h2State is a stream's state as RFC 9113 §5.1 names it.
type h2State uint8

const (
	stateIdle h2State = iota
	stateOpen
	stateHalfClosedLocal
	stateHalfClosedRemote
	stateClosed
)

// h2 is the protocol's state of a stream the relay keeps.
func (st streamState) h2() h2State {
	switch {
	case st&canceled != 0, st&(remoteClosed|localClosed) == remoteClosed|localClosed:
		return stateClosed
	case st&remoteClosed != 0:
		return stateHalfClosedRemote
	case st&localClosed != 0:
		return stateHalfClosedLocal
	}
	return stateOpen
}

// event is what moves a stream on.
type event uint8

const (
	evAuthenticate event = iota // the check would wait: off the reader
	evDecide                    // the decision reads the first message
	evForward                   // opened upstream
	evRefuse                    // answered by the relay before it was forwarded
	evRemoteEnd                 // the client's END_STREAM
	evHeaders                   // response HEADERS queued
	evEnd                       // the response's END_STREAM queued
	evEndLeft                   // the response's end left
	evCancel                    // reset by the client or the relay, or the connection ended
	evResetDown                 // the backend's RST_STREAM passed on to the client
	evCount                     // the call's end counted
	numEvents
)

var eventNames = [numEvents]string{"authenticate", "decide", "forward", "refuse", "remote-end",
	"headers", "end", "end-left", "cancel", "reset-down", "count"}

func (ev event) String() string { return eventNames[ev] }

func (st streamState) String() string {
	var b strings.Builder
	b.WriteString([]string{"admitting", "authenticating", "deciding", "forwarding", "refused", "?", "?", "?"}[st.phase()])
	for _, f := range []struct {
		bit  streamState
		name string
	}{{remoteClosed, "remote-closed"}, {headersSent, "headers-sent"}, {localEnding, "local-ending"},
		{localClosed, "local-closed"}, {canceled, "canceled"}, {counted, "counted"}} {
		if st&f.bit != 0 {
			b.WriteString("|" + f.name)
		}
	}
	return b.String()
}

// next is the transition table: the state ev leads to from st, and
// whether ev is legal there. An illegal event changes nothing; the
// caller reads the refusal (a second END_STREAM is a stream error, a
// second end of the response is not sent, a call is counted once).
func (st streamState) next(ev event) (streamState, bool) {
	p := st.phase()
	admitting := p == phaseAdmitting || p == phaseAuthenticating || p == phaseDeciding
	with := func(q streamState) streamState { return st&^phaseMask | q }
	switch ev {
	case evAuthenticate:
		// Only from the reader's own check.
		return with(phaseAuthenticating), p == phaseAdmitting
	case evDecide:
		// On the reader, or once the check that waited let the call in.
		return with(phaseDeciding), p == phaseAdmitting || p == phaseAuthenticating
	case evForward, evRefuse:
		// Admission ends once, either way; a call forwarded that the relay
		// then refuses (a message over the limit) has its upstream side
		// reset by the caller and stays forwarded.
		to := phaseForwarding
		if ev == evRefuse {
			to = phaseRefused
		}
		return with(to), admitting
	case evRemoteEnd:
		// A second END_STREAM is a frame on a half-closed stream.
		return st | remoteClosed, st&remoteClosed == 0
	case evHeaders:
		return st | headersSent, st&localEnding == 0
	case evEnd:
		return st | localEnding, st&localEnding == 0
	case evEndLeft:
		// Once, and only after the end was queued.
		return st | localClosed, st&(localEnding|localClosed) == localEnding
	case evCancel:
		return st | canceled, st&canceled == 0
	case evResetDown:
		// After the end of its answer, the backend's reset only tells the
		// client to stop sending, which the relay does when it sends more.
		return st | localEnding | canceled, st&localEnding == 0
	case evCount:
		return st | counted, st&counted == 0
	}
	return st, false
}

// closedBothWays says whether a transition to st closed the stream by
// its two ends (not by a reset, which forgets it at once).
func (st streamState) closedBothWays() bool {
	return st&(remoteClosed|localClosed) == remoteClosed|localClosed
}

// onTransition, when set (by the tests, before any stream), hears every
// transition taken: they check that the frame tests walk them all.
var onTransition func(from streamState, ev event)

func (st streamState) has(bits streamState) bool { return st&bits == bits }

func (s *stream) state() streamState { return streamState(s.st.Load()) }

// transition applies ev to s's state from any goroutine, and returns the
// state it left s in: the new one, or the unchanged one and false when
// the table (next) refuses ev there. Two goroutines that race on one
// event (the client's END_STREAM and the response's end, which close the
// stream) each see their own result, so exactly one sees it closed.
func (s *stream) transition(ev event) (streamState, bool) {
	for {
		old := s.state()
		st, ok := old.next(ev)
		if !ok {
			return old, false
		}
		if s.st.CompareAndSwap(uint32(old), uint32(st)) {
			if onTransition != nil {
				onTransition(old, ev)
			}
			return st, true
		}
	}
}

// legal is the second result of a transition: whether ev was legal.
func legal(_ streamState, ok bool) bool { return ok }
