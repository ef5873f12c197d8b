package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/authproxy/authproxy/test/harness"
)

// Row-policy and user-tag management would reach a backend whose RBAC is
// off and succeed there for any user; the proxy, which has neither, refuses
// them itself, and the backend never sees them.
func TestTagAndRowPolicyRPCsAreRefused(t *testing.T) {
	fake, p := startPair(t, harness.Options{})
	ctx := withToken(testCtx(t, 30*time.Second), "root:Milvus")
	c := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))

	calls := map[string]func() error{
		"CreateRowPolicy": func() error {
			_, err := c.CreateRowPolicy(ctx, &milvuspb.CreateRowPolicyRequest{CollectionName: "books"})
			return err
		},
		"DropRowPolicy": func() error {
			_, err := c.DropRowPolicy(ctx, &milvuspb.DropRowPolicyRequest{CollectionName: "books"})
			return err
		},
		"ListRowPolicies": func() error {
			_, err := c.ListRowPolicies(ctx, &milvuspb.ListRowPoliciesRequest{CollectionName: "books"})
			return err
		},
		"AddUserTags": func() error {
			_, err := c.AddUserTags(ctx, &milvuspb.AddUserTagsRequest{UserName: "root"})
			return err
		},
		"DeleteUserTags": func() error {
			_, err := c.DeleteUserTags(ctx, &milvuspb.DeleteUserTagsRequest{UserName: "root"})
			return err
		},
		"GetUserTags": func() error {
			_, err := c.GetUserTags(ctx, &milvuspb.GetUserTagsRequest{UserName: "root"})
			return err
		},
		"ListUsersWithTag": func() error {
			_, err := c.ListUsersWithTag(ctx, &milvuspb.ListUsersWithTagRequest{TagKey: "team"})
			return err
		},
	}
	for method, call := range calls {
		err := call()
		if st := status.Convert(err); st.Code() != codes.Unimplemented || !strings.Contains(st.Message(), "row policies and user tags are not supported") {
			t.Errorf("%s: got %v, want the proxy's refusal", method, err)
		}
		if n := len(fake.Recorder().CallsTo(method)); n != 0 {
			t.Errorf("backend saw %d %s calls", n, method)
		}
	}
}
