package integration

import (
	"maps"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"google.golang.org/grpc/codes"

	"github.com/authproxy/authproxy/test/harness"
)

// ownTags is what a caller reads as her own tags.
func ownTags(t *testing.T, c milvuspb.MilvusServiceClient, token, user string) (map[string]string, error) {
	t.Helper()
	resp, err := c.GetUserTags(withToken(testCtx(t, 20*time.Second), token), &milvuspb.GetUserTagsRequest{UserName: user})
	return resp.GetTags(), err
}

// A directory user carries her tenant from an attribute of her entry
// (identities.tags.ldap), read with her own bind, through the user search
// (StartTLS) or from the bind DN's entry (LDAPS): she reads it as her own
// tags, as policies will. No attribute, no tag; two values refuse the
// login rather than pick one.
func TestLDAPAttributesAreTags(t *testing.T) {
	for _, startTLS := range []bool{true, false} {
		name := "ldaps, the bind DN's entry"
		if startTLS {
			name = "starttls, the user search"
		}
		t.Run(name, func(t *testing.T) {
			l := harness.StartLDAP(t)
			alice := l.AddUser("alice", "Alice-dir-pw")
			l.SetAttribute(alice, "departmentNumber", "acme")
			l.AddUser("carol", "Carol-dir-pw")
			bob := l.AddUser("bob", "Bob-dir-pw")
			l.SetAttribute(bob, "departmentNumber", "acme", "globex")
			harness.Password("alice", "Alice-dir-pw")
			harness.Password("carol", "Carol-dir-pw")
			harness.Password("bob", "Bob-dir-pw")
			_, p := startPair(t, harness.Options{Extra: ldapConfig(l, startTLS, "  tags:\n    ldap:\n      tenant: departmentNumber\n")})
			c := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))

			tags, err := ownTags(t, c, "alice:Alice-dir-pw", "alice")
			if err != nil || !maps.Equal(tags, map[string]string{"tenant": "acme"}) {
				t.Errorf("alice's tags: %v %v, want tenant=acme", tags, err)
			}
			if tags, err := ownTags(t, c, "carol:Carol-dir-pw", "carol"); err != nil || len(tags) != 0 {
				t.Errorf("carol (no attribute): %v %v, want no tag", tags, err)
			}
			_, err = ownTags(t, c, "bob:Bob-dir-pw", "bob")
			wantStatus(t, "bob, two departments", err, codes.Unavailable, msgDirectoryDown)
		})
	}
}

// A token carries its tenant in a claim (identities.tags.oidc); a claim
// that is not a string refuses the token.
func TestOIDCClaimsAreTags(t *testing.T) {
	o := harness.StartOIDC(t)
	o.AddUser("dana", "Dana-idp-pw-1")
	o.SetClaim("dana", "tenant_id", "acme")
	o.AddUser("erin", "Erin-idp-pw-1")
	o.SetClaim("erin", "tenant_id", []string{"acme", "globex"})
	o.AddUser("fred", "Fred-idp-pw-1")
	_, p := startPair(t, harness.Options{Extra: oidcConfig(o.Issuer, o.ClientID, "  tags:\n    oidc:\n      tenant: tenant_id\n")})
	c := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))

	if tags, err := ownTags(t, c, login(t, o, "dana", "Dana-idp-pw-1"), "dana"); err != nil || !maps.Equal(tags, map[string]string{"tenant": "acme"}) {
		t.Errorf("dana's tags: %v %v, want tenant=acme", tags, err)
	}
	if tags, err := ownTags(t, c, login(t, o, "fred", "Fred-idp-pw-1"), "fred"); err != nil || len(tags) != 0 {
		t.Errorf("fred (no claim): %v %v, want no tag", tags, err)
	}
	_, err := ownTags(t, c, login(t, o, "erin", "Erin-idp-pw-1"), "erin")
	wantStatus(t, "erin, a list of tenants", err, codes.Unauthenticated, msgAPIKey)
}
