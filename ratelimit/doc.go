// Package ratelimit gives each tenant of the proxy its share of the
// backend: token buckets keyed by a configured limit and a tenant (a user,
// the holders of a role, a database, an identity source), counting calls
// per second of a class of methods, vectors searched per second or MB per
// second of DML requests, in milvus.yaml's quotaAndLimits vocabulary.
//
// It decides and counts; it does not forward. A refused call is answered
// as Milvus answers its own rate limits (Refusal): the method's own
// response with a status of code 8, error_code RateLimit. With the
// credential store on etcd, Replicas registers the replica under a lease
// and follows the others, so that each takes limit / N.
package ratelimit
