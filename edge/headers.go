// Package edge holds the rules that the gRPC and REST sides of the proxy
// share at the boundary to the backend: which client-sent metadata keys or
// HTTP headers never reach the backend, and under which name the
// authenticated identity is asserted. The gRPC director and the REST
// handler both ask a HeaderPolicy, so the two cannot disagree.
//
// It does not authenticate (package auth) or move bytes (packages proxy
// and rest).
package edge

import (
	"strings"
	"sync/atomic"
)

// DefaultIdentityHeader is the identity key by default. It is always
// stripped from clients, even when another key is configured, so a client
// can never assert it.
const DefaultIdentityHeader = "x-authproxy-user"

// PeerKey carries the client's address from the frame relay to the
// in-process server, which trusts it only on the relay's own in-memory
// connections; clients' copies are removed like every owned key.
const PeerKey = "x-authproxy-peer"

// RelayNetwork is the network name of the relay's in-memory connections.
const RelayNetwork = "authproxy-relay"

// RelayedIdentityKey carries the identity the relay established to the
// in-process server (on its in-memory connections only), so that a call
// is authenticated once; clients' copies are removed.
const RelayedIdentityKey = "x-authproxy-identity-bin"

// connectionSpecific are HTTP/1's connection-specific (hop-by-hop) header
// fields, which HTTP/2 forbids in a request (RFC 9113 8.2.2), as "te" is
// but for "trailers".
var connectionSpecific = map[string]bool{
	"connection":        true,
	"keep-alive":        true,
	"proxy-connection":  true,
	"transfer-encoding": true,
	"upgrade":           true,
}

// ConnectionSpecific reports whether name (lower case, as HTTP/2 sends it)
// is a connection-specific header field.
func ConnectionSpecific(name string) bool { return connectionSpecific[name] }

// ownedKeys never reach the backend: the client's credential, Milvus's
// internal-traffic marker (base64 "@@milvus-member@@" would skip the
// backend's own authentication), and hop-by-hop headers.
var ownedKeys = func() map[string]bool {
	keys := map[string]bool{
		"authorization":       true,
		"sourceid":            true,
		"proxy-authorization": true,
		"te":                  true,
		PeerKey:               true,
		RelayedIdentityKey:    true,
	}
	for k := range connectionSpecific {
		keys[k] = true
	}
	return keys
}()

// HeaderPolicy decides what is stripped and what identity key is asserted.
// The identity key can change live; every key ever configured stays
// stripped, so after a rename a client cannot assert the old one either.
type HeaderPolicy struct {
	state atomic.Pointer[headerState]
}

type headerState struct {
	current string          // identity key in force; "" sends none
	strip   map[string]bool // normalized identity keys ever in force
}

// NewHeaderPolicy starts with identityKey in force ("" for none).
func NewHeaderPolicy(identityKey string) *HeaderPolicy {
	p := &HeaderPolicy{}
	p.SetIdentityHeader(identityKey)
	return p
}

// SetIdentityHeader changes the identity key for new calls; "" stops
// sending one.
func (p *HeaderPolicy) SetIdentityHeader(key string) {
	key = strings.ToLower(key)
	next := &headerState{current: key, strip: map[string]bool{DefaultIdentityHeader: true}}
	if prev := p.state.Load(); prev != nil {
		for k := range prev.strip {
			next.strip[k] = true
		}
	}
	if key != "" {
		next.strip[normalize(key)] = true
	}
	p.state.Store(next)
}

// IdentityHeader is the identity key in force ("" when none), lower case.
func (p *HeaderPolicy) IdentityHeader() string { return p.state.Load().current }

// Strips reports whether a client-sent key must be removed before
// forwarding. Keys compare case-insensitively and with "_" read as "-":
// CGI-style backends read X_Authproxy_User as X-Authproxy-User.
func (p *HeaderPolicy) Strips(key string) bool {
	k := normalize(key)
	return ownedKeys[k] || p.state.Load().strip[k]
}

// OwnedKeys lists the keys the proxy always removes.
func OwnedKeys() []string {
	out := make([]string, 0, len(ownedKeys))
	for k := range ownedKeys {
		out = append(out, k)
	}
	return out
}

// normalize lower-cases key and reads "_" as "-". It allocates only when
// there is something to change: gRPC metadata keys are already lower case.
func normalize(key string) string {
	for i := 0; i < len(key); i++ {
		if c := key[i]; c == '_' || 'A' <= c && c <= 'Z' {
			return strings.ReplaceAll(strings.ToLower(key), "_", "-")
		}
	}
	return key
}
