package config

import (
	"maps"
	"slices"
	"strings"

	"github.com/authproxy/authproxy/credentials"
)

// IdentityTags give a company identity its row-security tags
// ($current_user_tags in row policies), so that it carries its tenant:
// identities.tags.ldap maps a tag key to an attribute of the user's
// directory entry, identities.tags.oidc a tag key to a string claim of
// the token. A value the identity does not have leaves the tag absent (a
// policy naming it then matches no row); an attribute with several values,
// or a claim that is not a string, refuses the login: the proxy never
// picks one.
type IdentityTags struct {
	LDAP map[string]string `yaml:"ldap"`
	OIDC map[string]string `yaml:"oidc"`
}

func (c *Identities) validateTags(bad func(key, format string, args ...any)) {
	for _, m := range []struct {
		key     string
		mapping map[string]string
	}{{"identities.tags.ldap", c.Tags.LDAP}, {"identities.tags.oidc", c.Tags.OIDC}} {
		for _, k := range slices.Sorted(maps.Keys(m.mapping)) {
			if err := credentials.CheckTagKey(k); err != nil {
				bad(m.key, "%v", err)
			}
			if v := m.mapping[k]; strings.TrimSpace(v) == "" || strings.ContainsAny(v, " \t\n,") {
				bad(m.key+"."+k, "%q: want one attribute or claim name", v)
			}
		}
	}
	if len(c.Tags.LDAP) > 0 {
		switch l := c.LDAP; {
		case l == nil:
			bad("identities.tags.ldap", "needs identities.ldap")
		case l.UserSearch == nil && !strings.Contains(l.BindDN, "="):
			bad("identities.tags.ldap", "needs identities.ldap.userSearch, or a bindDN that is a DN, to read the user's entry")
		}
	}
	if len(c.Tags.OIDC) > 0 && c.OIDC == nil {
		bad("identities.tags.oidc", "needs identities.oidc")
	}
}
