// Package auth decides who is calling. It parses the token Milvus SDKs send
// (metadata "authorization": base64 of "user:password" or of an API key),
// verifies it against a credentials.Store with an LRU cache of successful
// checks, bounds concurrent password hashing, locks out password guessing,
// and accepts a verified client certificate as an identity. The admission
// step (package admission) calls it for every call, gRPC and REST, before
// any byte reaches the backend. It does not decide what a user may do.
package auth
