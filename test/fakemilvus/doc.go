// Package fakemilvus is an in-memory stand-in for an unauthenticated Milvus
// server, for authproxy's integration tests and for trying the proxy without
// Milvus. Run it alone with `go run ./cmd/fakemilvus` from the test module.
//
// # What it serves
//
// One gRPC server (Server.Start; 512 MiB message limits) carries:
//
//   - milvus.proto.milvus.MilvusService, enough for the Go SDK
//     (milvusclient v2.6) to connect, manage databases, collections,
//     partitions and aliases and read and write data: Connect, GetVersion,
//     CheckHealth, Create/Drop/List/Describe/AlterDatabase(s),
//     CreateCollection, DescribeCollection, HasCollection, ShowCollections,
//     DropCollection, GetCollectionStatistics, LoadCollection,
//     ReleaseCollection, GetLoadState, GetLoadingProgress,
//     Create/Drop/Has/ShowPartition(s), Load/ReleasePartitions,
//     Create/Drop/Alter/DescribeAlias, ListAliases, CreateIndex,
//     DescribeIndex, DropIndex, Insert, Upsert, Delete, Flush,
//     GetFlushState, ManualCompaction, GetCompactionState, Search and Query.
//     Codes and messages are Milvus 2.5's (merr, RootCoord's texts).
//   - grpc.health.v1.Health, reporting SERVING.
//   - grpc.testing.TestService (the gRPC interop service) with all four
//     stream shapes: EmptyCall, UnaryCall, StreamingOutputCall,
//     StreamingInputCall, FullDuplexCall, HalfDuplexCall. Payloads are zero
//     bytes of the requested sizes, interval_us is honoured and
//     response_status becomes the call's status.
//   - every other method, answered Unimplemented by an unknown-service
//     handler so that it is still recorded.
//
// Server.StartREST serves RESTHandler (rest.go, restv2.go): the REST v2
// routes collections/{list,describe,drop} and entities/{insert,upsert,
// delete,query,get,search} translate the JSON body into the gRPC request,
// call the fake's own method (same data, same filters) and answer Milvus
// 2.5's envelope: HTTP 200 with {"code":0,"data":...} or {"code":<merr
// code>,"message":...}. The database is the body's dbName, else the
// DB-Name header, else default. entities/hybrid_search is refused with
// code 10 (no HybridSearch on the gRPC side); every other path gets a 404
// naming it, never a success.
//
// # What it does not do
//
// No authentication and no credential or RBAC RPCs: CreateCredential and the
// like answer Unimplemented, since authproxy must answer them itself.
// Databases are kept as Milvus keeps them: a call's database is its
// db_name, else the dbname metadata, else default; the same collection
// name may exist in two databases; default always exists and cannot be
// dropped, nor can a database that holds collections. Aliases resolve in
// every collection call. Rows belong to the partition named on insert
// (_default otherwise) and Search, Query and Delete read the partitions
// named. No partition keys, hybrid search, iterators, nullable fields,
// arrays, sparse vectors or real indexes; what it cannot do (describing a
// collection by id, filtering ShowCollections or ShowPartitions by name,
// deleting database properties) it refuses with an error.
// Search is brute force over one group of float vectors with L2 (squared
// distance, the default), IP or COSINE, taking the metric from the request,
// else from the field's index; a range search (radius, range_filter in the
// search params) keeps what Milvus keeps. Filters (Query, Delete, Search) are
// parsed with Milvus 2.6.18's grammar (Plan.g4: its lexer rules, its
// precedence, `not` binding tighter than comparisons) and evaluated for
// and, or, not, parentheses, comparisons and ranges (1 < x <= 3), in and
// not in, like, is [not] null, on scalar schema fields, JSON paths and
// dynamic keys, with integer, float, bool and string literals read as
// Milvus reads them; anything else (arithmetic, templates, functions,
// exists, a string compared with a number) is refused with Milvus's
// ParameterInvalid "failed to create query plan: cannot parse expression:
// ...", never answered wrongly. Query's output "count(*)" is supported. Loading
// is instantaneous and unloaded collections can be searched. Data survives
// Stop and Restart, as a real Milvus keeps its data.
//
// # Steering calls through metadata
//
// Every call on every service, Milvus calls included, obeys these request
// metadata keys before its handler runs:
//
//   - the server always sets trailer x-fake-trailer: t and, except for a
//     trailers-only failure, header x-fake-header: h.
//   - x-fake-echo-headers: 1 sends every incoming metadata key back as
//     header x-echo-<key> with the same values (pseudo-headers and grpc-*
//     keys excepted).
//   - x-fake-sleep: <Go duration> waits that long, or until the call's
//     context is done, which ends the call with Canceled or DeadlineExceeded.
//   - x-fake-fail: <gRPC code number> fails the call with that code and
//     message x-fake-fail-message (or a default) before any message is
//     sent, after the headers were set: the client receives a header frame,
//     then the status with trailers.
//   - x-fake-fail-trailers-only: 1, together with x-fake-fail, fails without
//     setting any header, so the client gets a trailers-only response.
//
// Sleep runs before the failure, so both together give a slow failure.
//
// # Recording
//
// Server.Recorder records every gRPC call (through unary and stream
// interceptors) and every REST call: method, a copy of the incoming
// metadata or headers, the deadline the server saw, the final status, and
// whether the call's context was cancelled or past its deadline when the
// handler returned. Calls appear when they start (Done false) and are
// updated when they end; WaitForStart, WaitForCall and Wait block until a
// matching call arrives or ends.
package fakemilvus
