// Package proxy is authproxy's forwarding core: a gRPC handler that passes
// every call it does not answer itself to the backend, byte for byte, for
// unary calls and all three streaming shapes. It owns the backend connection,
// the raw-bytes codec and the metadata rewrite (the proxy's own keys out, the
// authenticated identity in). It does not authenticate: interceptors of the
// auth package run before it and put the identity in the context.
//
// It is built on github.com/mwitkow/grpc-proxy's StreamDirector contract, but
// replaces the upstream handler, which sends backend headers only after the
// first message (lost when the backend fails first), reports client
// cancellation as Internal, and mistakes an io.EOF from SendMsg for the end of
// a bidirectional stream.
package proxy
