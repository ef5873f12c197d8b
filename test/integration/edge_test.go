package integration

import (
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"google.golang.org/grpc/metadata"

	"github.com/authproxy/authproxy/test/harness"
)

// CGI-style backends read X_Authproxy_User as the identity header: a
// client's underscore spelling is stripped on gRPC and REST alike, and only
// the proxy's assertion arrives.
func TestIdentityHeaderSpellingsStrippedOnBothSides(t *testing.T) {
	fake := startFake(t)
	restAddr, err := fake.StartREST("127.0.0.1:0")
	must(t, err)
	p := harness.Start(t, harness.Options{Backend: fake.Addr(), BackendREST: "http://" + restAddr})

	r := curl(t, "http://"+p.Addr+"/v2/vectordb/collections/list", "Bearer root:Milvus", `{}`,
		"--header", "X_Authproxy_User: admin", "--header", "x-AUTHPROXY-user: admin")
	if r.status != 200 {
		t.Fatalf("REST call: %d %s", r.status, r.body)
	}
	ctx := metadata.AppendToOutgoingContext(withToken(testCtx(t, 30*time.Second), "root:Milvus"),
		"x_authproxy_user", "admin", "sourceid", "QEBtaWx2dXMtbWVtYmVyQEA=")
	if _, err := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil)).GetVersion(ctx, &milvuspb.GetVersionRequest{}); err != nil {
		t.Fatal(err)
	}

	for _, method := range []string{"collections/list", "GetVersion"} {
		calls := fake.Recorder().CallsTo(method)
		if len(calls) != 1 {
			t.Fatalf("backend saw %d %s calls", len(calls), method)
		}
		md := calls[0].Metadata
		for _, k := range []string{"x_authproxy_user", "authorization", "sourceid"} {
			if v := md.Get(k); len(v) != 0 {
				t.Errorf("%s: client's %s reached the backend: %q", method, k, v)
			}
		}
		if u := md.Get("x-authproxy-user"); len(u) != 1 || u[0] != "root" {
			t.Errorf("%s: identity %q, want [root]", method, u)
		}
	}
}
