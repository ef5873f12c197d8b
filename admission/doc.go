// Package admission is the one step every call passes before the proxy
// answers or forwards it, whichever way it came in: the grpc-go core
// (proxy), the frame relay (relay) and REST (rest) each turn what arrived
// into an Arrival, and take from the Admitter a Call (who it is) and a
// Decision (what it may do, and which headers go upstream), or a Refusal
// that carries both its gRPC status and its REST answer. None of the three
// decides anything itself.
//
// The step runs in this order:
//
//  1. Open: the call record; a gRPC :path that names no method is refused
//     here, before any credential is looked at (grpc-go's own order).
//  2. Authenticate (or QuickAuthenticate, for the relay's reader, which
//     must not wait): the credential and the verified client certificate
//     give the identity.
//  3. ReadsMessage: whether the decision needs the request message. The
//     one rule, for both gRPC cores: a unary call whose rule names an
//     object is decided on its request message; a stream never is (see
//     ReadsMessage for why), and one whose rule would need it is refused.
//  4. Decide: the ordered steps (the Admitter's steps list) on the call
//     and the message. Authorization, then the visibility of lists and
//     descriptions, come first; then row security (rowsecurity.go), whose
//     Decision.Rows each caller applies to the request read whole before
//     forwarding it (RowScope.RewriteMessage, RewriteJSON), or answers
//     itself when no row can match; last the per-tenant rate limits
//     (ratelimit), so that only a call every other step admits spends its
//     tenant's share. A rate-limit refusal is Milvus's own: on gRPC the
//     method's response with a RateLimit status and status OK
//     (Refusal.Reply), on REST 429 with a Retry-After.
//
// A new check is a Step: add it to NewAdmitter's list after "visibility"
// and before "ratelimit" (which must stay last, so that a tenant's share
// is spent only by calls every other step admits). It gets the Decision
// built so far (identity, roles, method, privilege, collection, database,
// request byte count: Decision.Principal, Roles, Target, Call) and
// refuses with a Refusal, or adds to the Decision.
// The three callers need no change.
package admission
