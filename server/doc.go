// Package server assembles a running authproxy from a config.Config: the
// client listener (plaintext or TLS), the gRPC server with its interceptors
// (metrics, access log, authentication), the user-management service, the
// forwarding handler, the admin listener, and the live reload of the config,
// credential and TLS files. It holds the wiring, not the protocol logic,
// which lives in proxy, auth, usermgmt and certs.
package server
