package proxy

import (
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// SplitMethod reads a request's :path as the method it calls, or reports
// that it names none. Only "/service/method" names one, with neither part
// empty nor holding another "/": backends disagree on anything else.
// grpc-go 1.85 (this proxy, the fake backend) refuses a path without the
// leading "/", but grpc-go 1.65 (Milvus 2.5.24) strips that "/" only when
// it is there and routes "milvus.proto.milvus.MilvusService/DropCollection"
// to DropCollection, which the proxy would have classed as another service.
// Both forwarding cores refuse what this refuses, before authentication,
// as grpc-go does.
func SplitMethod(path string) (service, method string, ok bool) {
	rest, found := strings.CutPrefix(path, "/")
	if !found {
		return "", "", false
	}
	service, method, found = strings.Cut(rest, "/")
	if !found || service == "" || method == "" || strings.Contains(method, "/") {
		return "", "", false
	}
	return service, method, true
}

// MalformedMethod is grpc-go's refusal of a path that names no method, to
// the letter (server.go, handleMalformedMethodName).
func MalformedMethod(path string) error {
	return status.Errorf(codes.Unimplemented, "malformed method name: %q", path)
}

// MethodInterceptor refuses, on the grpc-go core, the calls whose path
// SplitMethod refuses: grpc-go itself routes "/a/b/c" to the unknown
// service handler as service "a/b".
func MethodInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if _, _, ok := SplitMethod(info.FullMethod); !ok {
		return MalformedMethod(info.FullMethod)
	}
	return handler(srv, ss)
}
