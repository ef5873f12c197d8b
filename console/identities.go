package console

import (
	"net/http"
	"slices"

	"github.com/authproxy/authproxy/auth"
	"github.com/authproxy/authproxy/config"
)

type identitiesData struct {
	LDAP   *config.LDAP
	OIDC   []config.OIDCIssuer
	Tested *testedLogin
	// MayTest: testing a login tells which roles any name gets, which is
	// what listing users and roles tells: the same right.
	MayTest bool
}

type testedLogin struct {
	Name, Source, Via string
	Roles             []string // mapped from groups, then bound in the store
	Admin             bool
}

func (c *Console) identitiesPage(q *request) { c.showIdentities(q, http.StatusOK, page{}, nil) }

func (c *Console) showIdentities(q *request, status int, result page, tested *testedLogin) {
	p := q.page("identities", "Identities")
	p.Notice, p.Error = result.Notice, result.Error
	ids := c.opts.Identities()
	d := identitiesData{LDAP: ids.LDAP, Tested: tested, MayTest: c.opts.Users.SeesEveryUser(q.caller)}
	if ids.OIDC != nil {
		d.OIDC = ids.OIDC.Issuers
	}
	p.Data = d
	c.render(q.w, status, "identities", p)
}

// testLogin runs a credential through the authenticator, as a sign-in
// would (the lockout counts it), and shows the roles it gets; no session
// is made and nothing is written. A name alone shows the store's
// bindings: a directory's groups need its password.
func (c *Console) testLogin(q *request) {
	if !c.opts.Users.SeesEveryUser(q.caller) {
		c.showIdentities(q, http.StatusForbidden, page{Error: "testing a login needs the right to list users and roles (SelectOwnership)"}, nil)
		return
	}
	f := q.r.PostFormValue
	var id auth.Identity
	switch {
	case f("token") != "":
		var err error
		if id, err = c.opts.Authn.CheckCredential(q.r.Context(), auth.Credential{APIKey: f("token")}, auth.Call{Protocol: "console", Target: "/identities/test", Peer: peerHost(q.r)}); err != nil {
			c.showIdentities(q, http.StatusOK, page{Error: "refused: " + err.Error()}, nil)
			return
		}
	case f("password") != "":
		var err error
		if id, err = c.opts.Authn.CheckCredential(q.r.Context(), auth.Credential{User: f("name"), Password: f("password")}, auth.Call{Protocol: "console", Target: "/identities/test", Peer: peerHost(q.r)}); err != nil {
			c.showIdentities(q, http.StatusOK, page{Error: "refused: " + err.Error()}, nil)
			return
		}
	default:
		id = auth.Identity{User: f("name"), Source: auth.SourceLocal, Via: "name only"}
	}
	roles := slices.Clone(c.opts.Authz.RolesOf(id.Principal()))
	slices.Sort(roles)
	tested := &testedLogin{Name: id.User, Source: id.Source, Via: id.Via, Roles: slices.Compact(roles), Admin: c.opts.Authz.IsAdmin(id.Principal())}
	c.showIdentities(q, http.StatusOK, page{}, tested)
}
