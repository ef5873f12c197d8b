package server

import "testing"

// Made-up names must not become labels: 20k invented methods under
// MilvusService once created 75k series before authentication ran.
func TestMethodLabelIsBoundedToKnownMethods(t *testing.T) {
	cases := map[string]string{
		"/milvus.proto.milvus.MilvusService/Search":      "/milvus.proto.milvus.MilvusService/Search",
		"/grpc.health.v1.Health/Check":                   "/grpc.health.v1.Health/Check",
		"/grpc.health.v1.Health/Watch":                   "/grpc.health.v1.Health/Watch",
		"/milvus.proto.milvus.MilvusService/NoSuchCall1": "other",
		"/milvus.proto.milvus.MilvusService/":            "other",
		"/grpc.health.v1.Health/Made":                    "other",
		"/some.Other/Method":                             "other",
		"":                                               "other",
	}
	for method, want := range cases {
		if got := methodLabel(method); got != want {
			t.Errorf("methodLabel(%q) = %q, want %q", method, got, want)
		}
	}
}
