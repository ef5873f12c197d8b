package admission

import (
	"strings"
	"testing"
)

// routeStrict is grpc-go 1.85's routing (server.go, handleStream): the
// leading "/" required, then split at the last "/".
func routeStrict(path string) (service, method string, ok bool) {
	sm, found := strings.CutPrefix(path, "/")
	if !found {
		return "", "", false
	}
	pos := strings.LastIndex(sm, "/")
	if pos == -1 {
		return "", "", false
	}
	return sm[:pos], sm[pos+1:], true
}

// routeLenient is grpc-go 1.65's (Milvus 2.5.24): a leading "/" stripped
// only when present, then split at the last "/".
func routeLenient(path string) (service, method string, ok bool) {
	sm := path
	if sm != "" && sm[0] == '/' {
		sm = sm[1:]
	}
	pos := strings.LastIndex(sm, "/")
	if pos == -1 {
		return "", "", false
	}
	return sm[:pos], sm[pos+1:], true
}

// FuzzSplitMethodMatchesBothRoutings: a path SplitMethod accepts is
// routed to the same service and method by both routing rules grpc-go
// servers have used, so that the proxy decides on the method any backend
// calls; and the refusal is grpc-go's wording.
func FuzzSplitMethodMatchesBothRoutings(f *testing.F) {
	for _, seed := range []string{
		"/milvus.proto.milvus.MilvusService/Search",
		"milvus.proto.milvus.MilvusService/DropCollection",
		"//milvus.proto.milvus.MilvusService/DropCollection",
		"/milvus.proto.milvus.MilvusService/DropCollection/",
		"/milvus.proto.milvus.MilvusService//DropCollection",
		"/a/b/c", "/", "//", "", "/grpc.health.v1.Health/Check", "/x/%2F",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, path string) {
		service, method, ok := SplitMethod(path)
		if !ok {
			if err := malformedMethod(path); !strings.Contains(err.Error(), "malformed method name") {
				t.Fatalf("refusal of %q: %v", path, err)
			}
			return
		}
		for name, route := range map[string]func(string) (string, string, bool){"grpc-go 1.85": routeStrict, "grpc-go 1.65": routeLenient} {
			s, m, routed := route(path)
			if !routed || s != service || m != method {
				t.Fatalf("%q: the proxy reads %s/%s, %s routes it to %s/%s (%v)", path, service, method, name, s, m, routed)
			}
		}
	})
}
