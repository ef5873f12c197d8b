package usermgmt

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/authproxy/authproxy/credentials"
	"github.com/authproxy/authproxy/rbac"
)

// The limits and rules of row policies and tags, refused with their reason
// and the kind that gives Milvus's codes; nothing of a refused change is
// stored.
func TestRowPolicyAndTagRules(t *testing.T) {
	s, store, logs := newService(t)
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.CreateRole(ctx, root, "tenant"))
	must(s.CreateUser(ctx, root, "alice", "Alice-pw-1", ""))
	draft := func(name string) RowPolicyDraft {
		return RowPolicyDraft{Collection: "docs", Name: name, Actions: []string{"Upsert", "Query", "Query"}, Roles: []string{"tenant"},
			UsingExpr: "tenant == 'a'", CheckExpr: "tenant == 'a'"}
	}
	must(s.CreateRowPolicy(ctx, root, draft("p0")))
	got, _, err := s.ListRowPolicies(root, "", "docs")
	must(err)
	if len(got) != 1 || !slices.Equal(got[0].Actions, []string{"Query", "Upsert"}) || got[0].DB != "default" {
		t.Fatalf("stored policy: %+v", got)
	}
	for i := 1; i < credentials.MaxRowPoliciesPerCollection; i++ {
		must(s.CreateRowPolicy(ctx, root, draft(fmt.Sprintf("p%d", i))))
	}
	for what, c := range map[string]struct {
		err    error
		kind   Kind
		reason string
	}{
		"one policy too many":    {s.CreateRowPolicy(ctx, root, draft("extra")), KindInvalidParameter, "collection docs has 64 row policies, the most it may have"},
		"no role":                {s.CreateRowPolicy(ctx, root, RowPolicyDraft{Collection: "c", Name: "p", Actions: []string{"Query"}, UsingExpr: "true"}), KindInvalidParameter, "a row policy needs at least one role"},
		"bad policy name":        {s.CreateRowPolicy(ctx, root, RowPolicyDraft{Collection: "c", Name: "1p", Actions: []string{"Query"}, Roles: []string{"tenant"}, UsingExpr: "true"}), KindInvalidParameter, "the first character of policy name must be an underscore or letter"},
		"long expression":        {s.CreateRowPolicy(ctx, root, RowPolicyDraft{Collection: "c", Name: "p", Actions: []string{"Query"}, Roles: []string{"tenant"}, UsingExpr: strings.Repeat("x", 5000)}), KindInvalidParameter, "using_expr is 5000 bytes, more than 4096"},
		"no tag":                 {s.AddUserTags(ctx, root, "alice", nil), KindInvalidParameter, "no tags to add"},
		"tags of a missing user": {s.AddUserTags(ctx, root, "ghost", map[string]string{"a": "b"}), KindNotFound, "user not found: ghost"},
		"a value too long":       {s.AddUserTags(ctx, root, "alice", map[string]string{"a": strings.Repeat("v", 257)}), KindInvalidParameter, "the value of tag a must be valid UTF-8 of at most 256 bytes"},
	} {
		if kindOf(c.err) != c.kind || !strings.Contains(fmt.Sprint(c.err), c.reason) {
			t.Errorf("%s: %v (kind %d), want kind %d %q", what, c.err, kindOf(c.err), c.kind, c.reason)
		}
	}
	// Tags merge up to the limit; one more is refused and nothing changes.
	tags := map[string]string{}
	for i := range credentials.MaxTagsPerUser {
		tags[fmt.Sprintf("k%d", i)] = "v"
	}
	must(s.AddUserTags(ctx, root, "alice", tags))
	if err := s.AddUserTags(ctx, root, "alice", map[string]string{"one": "more"}); kindOf(err) != KindInvalidParameter {
		t.Errorf("tag beyond the limit: %v", err)
	}
	u, _ := store.Current().User("alice")
	if !maps.Equal(u.Tags, tags) {
		t.Errorf("alice's tags after the refused add: %d tags", len(u.Tags))
	}
	must(s.DeleteUserTags(ctx, root, "alice", nil))
	if u, _ := store.Current().User("alice"); u.Tags != nil {
		t.Errorf("no key deletes every tag: %v", u.Tags)
	}
	if !strings.Contains(logs.String(), "op=add_user_tags by=root") {
		t.Errorf("no audit line for the tag change:\n%s", logs.String())
	}
}

// Who may manage policies: the descriptors' CreateOwnership, DropOwnership
// and SelectOwnership, which are cluster-level: a grant of one on Global
// holds on every database, on every collection.
func TestPolicyManagersHoldOwnership(t *testing.T) {
	s, _, _ := newService(t)
	ctx := context.Background()
	for _, err := range []error{
		s.CreateRole(ctx, root, "policy_admin"),
		s.CreateRole(ctx, root, "tenant"),
		s.CreateUser(ctx, root, "pat", "Pat-pw-123", ""),
		s.GrantRole(ctx, root, "pat", "policy_admin"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	pat := Caller{Principal: rbac.Principal{User: "pat"}, Authenticated: true}
	d := RowPolicyDraft{DB: "db2", Collection: "docs", Name: "p", Actions: []string{"Query"}, Roles: []string{"tenant"}, UsingExpr: "true"}
	if err := s.CreateRowPolicy(ctx, pat, d); kindOf(err) != KindPermissionDenied ||
		err.Error() != "PrivilegeCreateOwnership: permission deny to pat in the `db2` database" {
		t.Fatalf("without CreateOwnership: %v", err)
	}
	if err := s.GrantPrivilege(ctx, root, Privilege{Role: "policy_admin", Object: "Global", ObjectName: "*", Privilege: "CreateOwnership"}, true); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRowPolicy(ctx, pat, d); err != nil {
		t.Fatalf("with CreateOwnership: %v", err)
	}
	if err := s.DropRowPolicy(ctx, pat, "db2", "docs", "p"); kindOf(err) != KindPermissionDenied {
		t.Fatalf("drop without DropOwnership: %v", err)
	}
	if _, _, err := s.ListRowPolicies(pat, "db2", "docs"); kindOf(err) != KindPermissionDenied {
		t.Fatalf("list without SelectOwnership: %v", err)
	}
}
