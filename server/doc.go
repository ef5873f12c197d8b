// Package server assembles a running authproxy from a config.Config: the
// client listener (plaintext or TLS), the gRPC server with its interceptors
// (metrics, access log, the admission step), the user-management service,
// the forwarding cores, the admin listener, and the live reload of the
// config, credential and TLS files. It holds the wiring, not the protocol
// logic, which lives in admission, proxy, relay, rest, auth, usermgmt and
// certs.
package server
