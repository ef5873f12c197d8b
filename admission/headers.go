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
// for a call (the grpc-go core's metadata, the relay's HEADERS, REST's
// request headers): of the client's fields (sent, without HTTP/2
// pseudo-fields), those the edge policy lets through, in order; then, to
// the backend, the identity header with the authenticated user, or, to the
// proxy's own in-process server behind the relay (c.Local), the client's
// address and the identity established here.
func (a *Admitter) UpstreamHeaders(c *Call, sent iter.Seq[Field], emit func(Field)) {
	a.UpstreamTrailers(sent, emit)
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

// MapFields yields the fields of a metadata.MD or an http.Header.
func MapFields(m map[string][]string) iter.Seq[Field] {
	return func(yield func(Field) bool) {
		for name, values := range m {
			for _, v := range values {
				if !yield(Field{Name: name, Value: v}) {
					return
				}
			}
		}
	}
}
