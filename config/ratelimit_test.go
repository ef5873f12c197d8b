package config

import (
	"strings"
	"testing"
)

// Every bad limit is refused with its index, its name and the key.
func TestRateLimitsValidation(t *testing.T) {
	good := `rateLimits:
  exempt: {users: [root], roles: [admin]}
  limits:
    - {name: a.search, user: alice, rate: dql.searchRate, max: 50, burst: 100}
    - {name: analysts, role: analyst, each: true, rate: dql.callRate, max: 0.5}
    - {name: dbs, database: "*", rate: ddl.callRate, max: 1}
    - {name: ldap, identitySource: ldap, rate: dml.insertRate, max: 5}
`
	c, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if l := c.RateLimits.Limits[1]; !l.Each || l.Role != "analyst" || l.Max != 0.5 {
		t.Fatalf("read %+v", l)
	}
	for limit, want := range map[string]string{
		`{name: "bad name", user: a, rate: callRate, max: 1}`:     `rateLimits.limits[0].name: "bad name": want 1 to 64 letters`,
		`{name: x, rate: callRate, max: 1}`:                       "rateLimits.limits[0] (x): needs exactly one of user, role, database, identitySource; got 0",
		`{name: x, role: "*", rate: callRate, max: 1}`:            `rateLimits.limits[0] (x).role: "*" is not a role`,
		`{name: x, identitySource: saml, rate: callRate, max: 1}`: `rateLimits.limits[0] (x).identitySource: "saml" is not one of local, ldap, oidc`,
		`{name: x, user: a, each: true, rate: callRate, max: 1}`:  "rateLimits.limits[0] (x).each: a user limit is per user already",
		`{name: x, user: a, rate: insertRate, max: 1}`:            `rateLimits.limits[0] (x).rate: "insertRate" is not one of callRate, ddl.callRate`,
		`{name: x, user: a, rate: callRate, max: .nan}`:           "rateLimits.limits[0] (x).max: must be a positive number, got NaN",
		`{name: x, user: a, rate: callRate, max: -1}`:             "rateLimits.limits[0] (x).max: must be a positive number, got -1",
		`{name: x, user: a, rate: callRate, max: 1, burst: -2}`:   "rateLimits.limits[0] (x).burst: must be 0 (one second's worth) or a positive number, got -2",
		`{name: x, user: a, rate: callRate, max: 1, burst: .inf}`: "rateLimits.limits[0] (x).burst: must be 0 (one second's worth) or a positive number, got +Inf",
		`{name: x, user: a, rate: callRate, max: 1, brust: 2}`:    `unknown key "brust"`,
	} {
		c, err := Parse([]byte("rateLimits:\n  limits:\n    - " + limit + "\n"))
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", limit, err, want)
		}
	}
}
