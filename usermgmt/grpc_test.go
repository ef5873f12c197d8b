package usermgmt

import (
	"google.golang.org/grpc"
	"testing"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
)

// A misspelt name would register a method no client calls and leave the
// real one forwarded: every method the proxy answers must be in the
// descriptor.
func TestOwnMethodsAreMilvusServiceMethods(t *testing.T) {
	known := map[string]bool{}
	for _, m := range milvuspb.MilvusService_ServiceDesc.Methods {
		known[m.MethodName] = true
	}
	for _, m := range milvuspb.MilvusService_ServiceDesc.Streams {
		known[m.StreamName] = true
	}
	server := grpc.NewServer()
	NewService(Options{}).RegisterGRPC(server)
	for _, m := range server.GetServiceInfo()[milvusService].Methods {
		if !known[m.Name] {
			t.Errorf("%s is not a MilvusService method", m.Name)
		}
	}
}

// Every method the proxy answers itself is served as a stream with both
// stream flags set: grpc-go reads a unary request whole before any
// interceptor, and skips the stream interceptors (authentication) for a
// stream with neither flag.
func TestOwnMethodsRunTheStreamInterceptorsFirst(t *testing.T) {
	server := grpc.NewServer()
	NewService(Options{}).RegisterGRPC(server)
	info, ok := server.GetServiceInfo()[milvusService]
	if !ok || len(info.Methods) == 0 {
		t.Fatal("the user API is not registered")
	}
	for _, m := range info.Methods {
		if !m.IsClientStream || !m.IsServerStream {
			t.Errorf("%s is registered as unary: its body would be read before authentication, or authentication skipped", m.Name)
		}
	}
}
