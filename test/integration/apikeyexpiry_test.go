package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/authproxy/authproxy/test/harness"
)

// An API key created with a 2 s lifetime works, then is refused with
// Milvus's API-key message; a rotated key works and its predecessor does
// not; the keys close to expiry are counted.
func TestAPIKeyExpiryAndRotation(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	ctx := testCtx(t, 60*time.Second)
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))

	shortLived := strings.TrimSpace(cli(t, p, "", "apikey", "create", "short", "--expires", "2s"))
	harness.APIKey(shortLived)
	created := time.Now()
	within(t, 2*time.Second, "the new key works", func() error { return getVersion(ctx, m, shortLived) })
	if !strings.Contains(cli(t, p, "", "apikey", "list"), "short") {
		t.Fatal("apikey list lacks the key")
	}
	if n := metricValue(t, p, "authproxy_api_keys_expiring"); n != 1 {
		t.Errorf("keys expiring within 7 days: %v, want 1", n)
	}
	time.Sleep(time.Until(created.Add(2100 * time.Millisecond)))
	err := getVersion(ctx, m, shortLived)
	if st := status.Convert(err); st.Code() != codes.Unauthenticated || st.Message() != msgAPIKey {
		t.Fatalf("the key after its 2 s: %v, want Unauthenticated %q", err, msgAPIKey)
	}
	if got := metricValue(t, p, `authproxy_auth_total{reason="expired_api_key",result="failure"}`); got < 1 {
		t.Errorf("expired refusals counted: %v", got)
	}

	old := strings.TrimSpace(cli(t, p, "", "apikey", "create", "ci"))
	harness.APIKey(old)
	within(t, 2*time.Second, "the key before rotation", func() error { return getVersion(ctx, m, old) })
	rotated := strings.TrimSpace(cli(t, p, "", "apikey", "rotate", "ci"))
	harness.APIKey(rotated)
	within(t, 2*time.Second, "the rotated key works and the old one does not", func() error {
		if err := getVersion(ctx, m, rotated); err != nil {
			return fmt.Errorf("rotated: %v", err)
		}
		if getVersion(ctx, m, old) == nil {
			return fmt.Errorf("the old key still works")
		}
		return nil
	})
}
