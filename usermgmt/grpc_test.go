package usermgmt

import (
	"testing"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
)

// A misspelt name in rbacMethods would register a method no client calls
// and leave the real one forwarded: every name must be in the descriptor.
func TestRefusedMethodsAreMilvusServiceMethods(t *testing.T) {
	known := map[string]bool{}
	for _, m := range milvuspb.MilvusService_ServiceDesc.Methods {
		known[m.MethodName] = true
	}
	for _, m := range milvuspb.MilvusService_ServiceDesc.Streams {
		known[m.StreamName] = true
	}
	for _, name := range rbacMethods {
		if !known[name] {
			t.Errorf("%s is not a MilvusService method", name)
		}
	}
}
