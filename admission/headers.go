package admission

import (
	"iter"

	"github.com/authproxy/authproxy/edge"
)

// Field is one header (gRPC metadata key, HTTP/2 field or HTTP header) on
// its way upstream. Sensitive asks HPACK never to index it.
type Field struct {
	Name, Value string
	Sensitive   bool
}

// UpstreamHeaders is the one builder of the header list an upstream gets
// for a call, for a list whose order counts (the relay's HEADERS): of the
// client's fields (sent, without HTTP/2 pseudo-fields), those the edge
// policy lets through, in order; then the call's own (added). The
// grpc-go core's metadata and REST's headers, which are maps, take the
// same list with UpstreamMap.
func (a *Admitter) UpstreamHeaders(c *Call, sent iter.Seq[Field], emit func(Field)) {
	a.UpstreamTrailers(sent, emit)
	a.added(c, emit)
}

// UpstreamMap turns m, a copy of the client's metadata or HTTP headers the
// caller owns, into the list the upstream gets, in place (one map less per
// call than building another): what the edge policy strips is deleted,
// and add is given the call's own fields.
func (a *Admitter) UpstreamMap(c *Call, m map[string][]string, add func(Field)) {
	for name := range m {
		if a.headers.Strips(name) {
			delete(m, name)
		}
	}
	a.added(c, add)
}

// added are the fields the proxy adds: to the backend, the identity header
// with the authenticated user; to the proxy's own in-process server behind
// the relay (c.Local), the client's address and the identity established
// here.
func (a *Admitter) added(c *Call, emit func(Field)) {
	if c.Local {
		emit(Field{Name: edge.PeerKey, Value: c.Peer})
		if c.Authenticated {
			emit(Field{Name: edge.RelayedIdentityKey, Value: EncodeRelayedIdentity(c.Identity), Sensitive: true})
		}
		return
	}
	if key := a.headers.IdentityHeader(); key != "" && c.Authenticated {
		emit(Field{Name: key, Value: c.Identity.User})
	}
}

// UpstreamTrailers is the list of a client's trailers the upstream gets:
// what the edge policy lets through, in order.
func (a *Admitter) UpstreamTrailers(sent iter.Seq[Field], emit func(Field)) {
	for f := range sent {
		if !a.headers.Strips(f.Name) {
			emit(f)
		}
	}
}
