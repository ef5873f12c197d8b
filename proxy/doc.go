// Package proxy is authproxy's forwarding core: a gRPC handler that passes
// every call it does not answer itself to the backend, byte for byte, for
// unary calls and all three streaming shapes. It owns the backend connection
// and the raw-bytes codec, and hands the backend the admission step's
// metadata (the proxy's own keys out, the authenticated identity in). It
// decides nothing itself: its Admit interceptor and its handler take every
// call through the admission step (package admission), whose call record
// travels in the context.
//
// It is built on github.com/mwitkow/grpc-proxy's StreamDirector contract, but
// replaces the upstream handler, which sends backend headers only after the
// first message (lost when the backend fails first), reports client
// cancellation as Internal, and mistakes an io.EOF from SendMsg for the end of
// a bidirectional stream.
package proxy
