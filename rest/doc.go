// Package rest is the Milvus RESTful API v2 side of authproxy: one
// http.Handler that authenticates every request as Milvus does (Bearer
// user:password, Bearer API key, HTTP Basic or a verified client
// certificate) through the same auth.Authenticator as gRPC, answers
// /v2/vectordb/users/* itself from usermgmt.Service in Milvus's JSON
// envelope, and streams every other request to the backend's REST port with
// the credential removed and the authenticated identity added. It does not
// listen, terminate TLS, split gRPC from HTTP on a shared port, or check
// permissions on forwarded requests: the server and the backend do that.
package rest
