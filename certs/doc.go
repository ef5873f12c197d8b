// Package certs loads and validates TLS material for TLS and mutual TLS
// termination, serves it through tls.Configs that pick up reloaded files on
// every new handshake (server side for clients of the proxy, client side
// towards the Milvus backend), maps a verified client certificate to an
// authproxy user name (CN, DNS SAN or URI SAN such as a SPIFFE ID), and mints
// development and test certificates (ECDSA P-256). It does not watch files
// (package watch does, and calls Reload), does not check revocation (no CRL or
// OCSP), and its generated certificates are for development and tests, not
// for production PKI.
package certs
