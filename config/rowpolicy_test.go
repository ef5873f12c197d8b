package config

import (
	"strings"
	"testing"
)

func TestIdentityTagsRefusedWithTheirReason(t *testing.T) {
	ldap := "identities:\n  ldap:\n    url: ldaps://dc:636\n    bindDN: \"{user}@corp\"\n"
	for in, want := range map[string]string{
		"identities:\n  tags:\n    ldap: {tenant: o}\n":                 "identities.tags.ldap: needs identities.ldap",
		"identities:\n  tags:\n    oidc: {tenant: tid}\n":               "identities.tags.oidc: needs identities.oidc",
		ldap + "  tags:\n    ldap: {tenant: o}\n":                       "needs identities.ldap.userSearch, or a bindDN that is a DN",
		ldap + "  tags:\n    ldap: {\"it's\": o}\n":                     `tag key "it's": only letters`,
		ldap + "  tags:\n    ldap: {tenant: \"o, ou\"}\n":               `identities.tags.ldap.tenant: "o, ou": want one attribute or claim name`,
		"identities:\n  tags:\n    oidc: {tenant: tid}\n    bogus: 1\n": `line 4: unknown key "bogus"`,
	} {
		c, err := Parse([]byte(in))
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v does not name %q", in, err, want)
		}
	}
	ok := "identities:\n  ldap:\n    url: ldaps://dc:636\n    bindDN: \"uid={user},ou=people,dc=x\"\n  tags:\n    ldap: {tenant: departmentNumber}\n"
	c, err := Parse([]byte(ok))
	if err == nil {
		err = c.Validate()
	}
	if err != nil || c.Identities.Tags.LDAP["tenant"] != "departmentNumber" {
		t.Errorf("a valid mapping: %v %+v", err, c.Identities.Tags)
	}
}
