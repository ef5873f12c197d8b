// Package console serves the operators' web console on its own listener:
// users, roles and grants, API keys, identities, and what the proxy is
// refusing now. It holds no rule of its own: sign-in goes through the
// authenticator (the verifier's cache, hashing pool, lockout and failure
// log), and every page and change through the user-management service
// with the signed-in user's rights, exactly as the Milvus API judges them.
//
// The pages are server-rendered HTML forms (html/template) with one small
// script for the chart, all embedded in the binary: nothing to build,
// nothing from a CDN, and every change is a form POST carrying the
// session's CSRF token.
package console
