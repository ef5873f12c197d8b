package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/authproxy/authproxy/test/harness"
)

// Method names are chosen by the client before it authenticates: made-up
// ones under a known service must all count as one "other" label, not one
// series each.
func TestMadeUpMethodsShareOneMetricLabel(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	ctx := testCtx(t, 60*time.Second)
	conn := dial(t, p.Addr, nil)
	const n = 300
	for i := range n {
		method := fmt.Sprintf("/milvus.proto.milvus.MilvusService/Invented%d", i)
		err := conn.Invoke(ctx, method, &emptypb.Empty{}, &emptypb.Empty{})
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("%s without a token: %v", method, err)
		}
	}
	if strings.Contains(p.Metrics(), "Invented") {
		t.Fatal("a made-up method name became a metric label")
	}
	if got := metricValue(t, p, `authproxy_grpc_calls_total{code="Unauthenticated",method="other"}`); got != n {
		t.Fatalf(`calls_total{method="other"} = %v, want %d`, got, n)
	}
}
