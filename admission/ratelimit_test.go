package admission

import (
	"net/http"
	"slices"
	"testing"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/authproxy/authproxy/config"
	"github.com/authproxy/authproxy/ratelimit"
)

// The rate limit is the step after authorization and visibility: it
// counts only admitted calls (a denied one spends nothing), reads a
// Search's nq and the database as the authorizer does, and refuses with
// Milvus's own answer on gRPC (a reply with a RateLimit status) and
// REST (429, 1807, Retry-After).
func TestRateLimitStep(t *testing.T) {
	a, _ := newAdmitter(t)
	limits := ratelimit.New(ratelimit.Options{})
	t.Cleanup(limits.Close)
	limits.Set(config.RateLimits{Limits: []config.RateLimit{
		{Name: "db1-vectors", Database: "db1", Rate: "dql.searchRate", Max: 0.001, Burst: 10},
	}})
	a.limits = limits

	if f, _ := a.ReadsMessage(&Call{Method: method("Search"), Unary: true}); !slices.Contains(f, 12) {
		t.Fatalf("Search's nq (field 12) is not read with limits set: %v", f)
	}
	// Denied (films is not granted): counts nothing.
	for range 20 {
		if _, err := admit(a, Arrival{Protocol: GRPC, Path: method("Search"), Credential: token("alice")},
			marshal(t, &milvuspb.SearchRequest{CollectionName: "films", DbName: "db1", Nq: 5})); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("denied search: %v", err)
		}
	}
	search := func(nq int64) error {
		_, err := admit(a, Arrival{Protocol: GRPC, Path: method("Search"), Credential: token("alice")},
			marshal(t, &milvuspb.SearchRequest{CollectionName: "books", DbName: "db1", Nq: nq}))
		return err
	}
	if err := search(6); err != nil {
		t.Fatalf("6 of 10 vectors: %v", err)
	}
	if err := search(4); err != nil {
		t.Fatalf("4 more: %v", err)
	}
	err := search(1)
	reply, ok := ReplyOf(err)
	if !ok {
		t.Fatalf("over the limit: %v, want a reply", err)
	}
	var res milvuspb.SearchResults
	if err := proto.Unmarshal(reply, &res); err != nil {
		t.Fatal(err)
	}
	if st := res.GetStatus(); st.GetCode() != 8 || st.GetErrorCode() != commonpb.ErrorCode_RateLimit {
		t.Fatalf("reply status %v", st)
	}
	r := err.(*Refusal)
	if r.HTTP != http.StatusTooManyRequests || r.Code != 1807 || r.RetryAfter == "" {
		t.Fatalf("REST answer %d %d %q", r.HTTP, r.Code, r.RetryAfter)
	}
	// Another database is not limited; an admin is counted too (only the
	// exemption list spares anyone).
	if _, err := admit(a, Arrival{Protocol: GRPC, Path: method("Search"), Credential: token("ops")},
		marshal(t, &milvuspb.SearchRequest{CollectionName: "books", DbName: "db2"})); err != nil {
		t.Fatalf("db2: %v", err)
	}
	if _, err := admit(a, Arrival{Protocol: GRPC, Path: method("Search"), Credential: token("ops")},
		marshal(t, &milvuspb.SearchRequest{CollectionName: "books", DbName: "db1"})); err == nil {
		t.Fatal("ops on db1 passed a spent limit")
	}
	// A message that cannot be read is refused, not charged as nq 0.
	if _, err := admit(a, Arrival{Protocol: GRPC, Path: method("Search"), Credential: token("ops")},
		[][]byte{{0x60}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("malformed: %v", err)
	}
}
