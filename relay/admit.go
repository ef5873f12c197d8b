package relay

import (
	"crypto/x509"
	"encoding/binary"
	"iter"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/authproxy/authproxy/admission"
)

// admitSide is a client connection's admission side: it takes each gRPC
// stream from its HEADERS through the admission step (admission.Admitter)
// to forwarding or a refusal, on the reader or, for a check that waits,
// off it, and holds what that step needs of the connection. The HTTP/2
// side (clientConn) owns the frames, the windows and the stream states;
// the admission side works on a stream under its mu, and moves it on
// only through the HTTP/2 side's operations: fail, refund, open upstream,
// send up.
type admitSide struct {
	cc     *clientConn
	adm    *admission.Admitter
	remote string // the client's host:port
	cert   *x509.Certificate
}

// start takes a gRPC call from its HEADERS into the admission step: the
// call's record, then authentication, on the reader when it need not
// wait.
func (a *admitSide) start(s *stream, f *http2.MetaHeadersFrame) {
	a.cc.readerG.check()
	s.mu.held()
	s.grpcEncoding = fieldValue(f, "grpc-encoding")
	call, err := a.adm.Open(admission.Arrival{Protocol: admission.GRPC, Path: s.method, Peer: a.remote, Cert: a.cert,
		Credential: fieldValue(f, "authorization"), DB: fieldValue(f, "dbname")})
	if err != nil {
		a.cc.failStatus(s, err, &a.cc.flushes)
		return
	}
	s.call = call
	done, err := a.adm.QuickAuthenticate(a.cc.ctx, call)
	if !done {
		// A hash, a bind or a key fetch: off this reader, so that the
		// connection's other calls go on meanwhile.
		s.transition(evAuthenticate)
		go a.authenticate(s)
		return
	}
	a.authenticated(s, err, &a.cc.flushes)
}

// authenticate runs a check that waits, then carries on with the call.
func (a *admitSide) authenticate(s *stream) {
	err := a.adm.Authenticate(a.cc.ctx, s.call)
	var fl flushSet
	s.mu.Lock()
	if !s.state().has(canceled) {
		a.authenticated(s, err, &fl)
	}
	s.mu.Unlock()
	fl.flush()
}

// authenticated refuses the call or carries it on.
func (a *admitSide) authenticated(s *stream, err error, fl *flushSet) {
	s.mu.held()
	if err != nil {
		a.cc.failStatus(s, err, fl)
		return
	}
	if s.call.Authenticated {
		s.who = &s.call.Identity
	}
	a.proceed(s, fl)
}

// proceed takes the admission step's decision, on the call's method or on
// its first request message when the decision reads it (decide), and opens
// the call upstream with what the client sent meanwhile.
func (a *admitSide) proceed(s *stream, fl *flushSet) {
	s.mu.held()
	adm := a.adm
	local := s.call.Local
	fields := a.upstreamFields(s)
	early := s.early
	s.early = nil
	if !local {
		if wanted, reads := adm.ReadsMessage(s.call); reads {
			s.transition(evDecide)
			s.gate, s.pending, s.decisionFields = early, fields, wanted
			a.cc.refund(s, len(early), fl)
			a.decide(s, fl)
			return
		}
		d, err := adm.Decide(s.call, nil)
		if err == nil && d.Rows != nil {
			// Never: row security is decided on a unary call's message.
			err = status.Errorf(codes.Internal, "authproxy: %s is under row-level security without its message", s.method)
		}
		if err != nil {
			a.cc.failStatus(s, err, fl)
			return
		}
		s.filter = d.Filter
	}
	clientDone := s.state().has(remoteClosed)
	a.cc.open(s, local, fields, clientDone && len(early) == 0, fl)
	if len(early) > 0 && s.bc != nil {
		a.cc.sendUp(s, early, clientDone, reused, fl)
	}
}

// upstreamFields is the header list sent upstream: the pseudo-headers,
// te, then the admission step's list (the client's keys the edge policy
// lets through, then the identity).
func (a *admitSide) upstreamFields(s *stream) []hpack.HeaderField {
	out := make([]hpack.HeaderField, 0, len(s.request)+3)
	for _, hf := range s.request {
		if hf.IsPseudo() {
			out = append(out, hf)
		}
	}
	out = append(out, hpack.HeaderField{Name: "te", Value: "trailers"})
	a.adm.UpstreamHeaders(s.call, hpackFields(s.request), func(f admission.Field) {
		out = append(out, hpack.HeaderField{Name: f.Name, Value: f.Value, Sensitive: f.Sensitive})
	})
	return out
}

// hpackFields yields the regular fields of a header list.
func hpackFields(fields []hpack.HeaderField) iter.Seq[admission.Field] {
	return func(yield func(admission.Field) bool) {
		for _, hf := range fields {
			if !hf.IsPseudo() && !yield(admission.Field{Name: hf.Name, Value: hf.Value, Sensitive: hf.Sensitive}) {
				return
			}
		}
	}
}

// decide runs the authorizer on the first request message once its
// leading fields the decision reads are whole (decisionPrefix), or the
// whole message; then it opens the call with what was gathered.
func (a *admitSide) decide(s *stream, fl *flushSet) {
	s.mu.held()
	payload, complete, err := firstMessage(s.gate, s.grpcEncoding, a.cc.r.opts.MaxRecvMsgSize)
	if err != nil {
		a.cc.fail(s, codes.ResourceExhausted, err.Error(), fl)
		return
	}
	// The message's size, decompressed as the grpc-go core counts it; a
	// prefix is of an uncompressed message, whose frame declares it.
	s.call.RequestBytes = int64(len(payload))
	var tail *tailCheck
	clientDone := s.state().has(remoteClosed)
	whole := a.adm.MayRewrite(s.call)
	if !complete && !clientDone && whole {
		// Row security rewrites the message: held whole (up to the
		// message size limit, firstMessage) before the decision.
		return
	}
	if !complete && !clientDone {
		n, ok := decisionPrefix(s.gate, s.decisionFields)
		if !ok {
			return
		}
		payload = s.gate[5 : 5+n]
		s.call.RequestBytes = int64(binary.BigEndian.Uint32(s.gate[1:5]))
		tail = newTailCheck(s.decisionFields, int(binary.BigEndian.Uint32(s.gate[1:5]))-n)
		if err := tail.feed(s.gate[5+n:]); err != nil {
			a.cc.fail(s, codes.PermissionDenied, err.Error(), fl)
			return
		}
	}
	d, err := a.adm.Decide(s.call, [][]byte{payload})
	if err == nil && d.Rows != nil && !complete {
		// The client ended its stream inside the first message, or a
		// policy came into force after MayRewrite: never forwarded as is.
		err = status.Error(codes.Unavailable, "authproxy: row-level security needs the whole request message, which was not held whole (the stream ended inside it, or a policy came into force meanwhile): retry")
	}
	if err != nil {
		a.cc.failStatus(s, err, fl)
		return
	}
	s.filter, s.tail = d.Filter, tail
	gathered, fields := s.gate, s.pending
	s.gate, s.pending = nil, nil
	if d.Rows != nil {
		rewritten, reply, err := d.Rows.RewriteMessage(s.method, payload)
		switch {
		case err != nil:
			a.cc.failStatus(s, err, fl)
			return
		case reply != nil:
			// No row can match: answered here, nothing forwarded.
			a.cc.answer(s, reply, fl)
			return
		}
		// Re-framed with its new length, uncompressed (the per-message
		// flag allows it whatever grpc-encoding says); what followed the
		// first message goes behind it unchanged. The gathered bytes were
		// refunded to the client as they came, so the backend's window
		// alone paces the new message, whatever its size.
		gathered = frameMessage(rewritten, gathered[5+binary.BigEndian.Uint32(gathered[1:5]):])
	}
	a.cc.open(s, false, fields, clientDone && len(gathered) == 0, fl)
	if len(gathered) > 0 && s.bc != nil {
		a.cc.sendUp(s, gathered, clientDone, ownRefunded, fl)
	}
}

// frameMessage is msg in a gRPC frame (uncompressed), followed by rest.
func frameMessage(msg, rest []byte) []byte {
	out := make([]byte, 5, 5+len(msg)+len(rest))
	binary.BigEndian.PutUint32(out[1:5], uint32(len(msg)))
	return append(append(out, msg...), rest...)
}

// checkTail follows the rest of a first message decided on its leading
// fields as it passes: an error names a field the decision read that
// comes again, before the bytes that carry it are forwarded.
func (a *admitSide) checkTail(s *stream, data []byte) error {
	s.mu.held()
	if s.tail == nil || s.tail.done() {
		return nil
	}
	return s.tail.feed(data)
}
