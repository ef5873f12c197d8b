// Package rest is the Milvus RESTful API v2 side of authproxy: one
// http.Handler that takes every request through the admission step of the
// gRPC side (package admission: authenticated as Milvus does, with Bearer
// user:password, Bearer API key, HTTP Basic or a verified client
// certificate; a data route decided as the gRPC method Milvus maps it to,
// on the collection and database its body names), answers
// /v2/vectordb/users/* itself from usermgmt.Service in Milvus's JSON
// envelope, and streams every other request to the backend's REST port
// with the admission step's header list. It decides nothing itself, and
// does not listen, terminate TLS or split gRPC from HTTP on a shared port.
package rest
