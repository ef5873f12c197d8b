package rbac

import (
	"context"
	"maps"
	"testing"

	"github.com/authproxy/authproxy/credentials"
)

// A caller's tags: a local user's from the store; an external identity's
// from the store under its name, overlaid by its directory's or token's;
// nothing of root's for an external "root".
func TestTagsOf(t *testing.T) {
	a, store := newAuthorizer(t)
	if err := store.Update(context.Background(), func(s *credentials.Set) error {
		for name, tags := range map[string]map[string]string{"alice": {"tenant": "acme", "region": "eu"}, "root": {"tenant": "ops"}} {
			u, _ := s.User(name)
			u.Tags = tags
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what string
		who  Principal
		want map[string]string
	}{
		{"local alice", Principal{User: "alice", Tags: map[string]string{"tenant": "globex"}}, map[string]string{"tenant": "acme", "region": "eu"}},
		{"ldap alice", Principal{User: "alice", Source: "ldap", Tags: map[string]string{"tenant": "globex"}}, map[string]string{"tenant": "globex", "region": "eu"}},
		{"ldap dora, not in the store", Principal{User: "dora", Source: "ldap", Tags: map[string]string{"tenant": "initech"}}, map[string]string{"tenant": "initech"}},
		{"oidc root", Principal{User: "root", Source: "oidc"}, nil},
		{"local nobody", Principal{User: "nobody"}, nil},
	} {
		if got := a.TagsOf(c.who); !maps.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.what, got, c.want)
		}
	}
}
