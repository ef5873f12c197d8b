package auth

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/authproxy/authproxy/config"
)

// Sources of an identity, named in access and audit logs.
const (
	SourceLocal = "local"
	SourceLDAP  = "ldap"
	SourceOIDC  = "oidc"
)

// ErrDirectoryUnavailable: the directory could not be asked. The caller
// sees Unavailable, never a refusal that looks like a wrong password and
// never an accept.
var ErrDirectoryUnavailable = errors.New("directory unavailable")

// errDirectoryRefused: the directory refused the bind (wrong password,
// unknown or disabled account).
var errDirectoryRefused = errors.New("directory refused the bind")

// Directory checks user:password tokens by an LDAP bind as the user, over
// LDAPS or StartTLS, and reads the user's groups with that same bind.
type Directory struct {
	cfg    config.LDAP
	tls    *tls.Config
	groups []groupRoles
	pool   *hashPool
	// tags maps a row-security tag key to an attribute of the user's entry.
	tags map[string]string
}

type groupRoles struct {
	dn    *ldap.DN
	roles []string
}

// NewDirectory prepares a Directory; nothing is dialled until a check.
// tags maps tag keys to attributes of the user's entry (identities.tags.ldap).
func NewDirectory(cfg config.LDAP, tags map[string]string, tlsCfg *tls.Config) (*Directory, error) {
	d := &Directory{cfg: cfg, tls: tlsCfg, pool: newHashPool(cfg.MaxConcurrentBinds), tags: tags}
	for dn, roles := range cfg.Groups {
		parsed, err := ldap.ParseDN(dn)
		if err != nil {
			return nil, fmt.Errorf("identities.ldap.groups: %q is not a DN: %w", dn, err)
		}
		d.groups = append(d.groups, groupRoles{dn: parsed, roles: roles})
	}
	return d, nil
}

// Takes reports whether the directory decides on this name: it ends with
// the realm, or it is not a local user.
func (d *Directory) Takes(user string, local bool) bool {
	if d.cfg.Realm != "" && strings.HasSuffix(user, d.cfg.Realm) {
		return true
	}
	return !local
}

// CacheTTL is how long a successful bind is reused.
func (d *Directory) CacheTTL() time.Duration { return d.cfg.CacheTTL }

// Check binds as user and returns the roles of the user's groups and its
// tags. The error is errDirectoryRefused for a refused bind,
// ErrDirectoryUnavailable (wrapped) when the directory cannot answer or
// gives a tag attribute several values.
func (d *Directory) Check(ctx context.Context, user, password string) (roles []string, tags map[string]string, err error) {
	if password == "" || user == "" {
		// An empty password is an anonymous bind in LDAP: a success that proves nothing.
		return nil, nil, errDirectoryRefused
	}
	conn, err := d.dial(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	name := strings.TrimSuffix(user, d.cfg.Realm)
	bindDN := strings.ReplaceAll(d.cfg.BindDN, "{user}", escapeForDN(d.cfg.BindDN, name))
	if err := conn.Bind(bindDN, password); err != nil {
		return nil, nil, classify(err)
	}
	dn := bindDN
	var groupDNs []string
	attrs := slices.Collect(maps.Values(d.tags))
	if d.cfg.GroupAttribute != "" {
		attrs = append(attrs, d.cfg.GroupAttribute)
	}
	var entry *ldap.Entry
	if s := d.cfg.UserSearch; s != nil {
		entry, err = d.searchOne(conn, s.BaseDN, ldap.ScopeWholeSubtree, strings.ReplaceAll(s.Filter, "{user}", ldap.EscapeFilter(name)), attrs)
		if err != nil {
			return nil, nil, err
		}
		dn = entry.DN
		if d.cfg.GroupAttribute != "" {
			groupDNs = append(groupDNs, entry.GetAttributeValues(d.cfg.GroupAttribute)...)
		}
	} else if len(d.tags) > 0 {
		// The bind DN is the user's entry (the config requires it).
		if entry, err = d.searchOne(conn, bindDN, ldap.ScopeBaseObject, "(objectClass=*)", attrs); err != nil {
			return nil, nil, err
		}
	}
	if tags, err = d.tagsOf(entry); err != nil {
		return nil, nil, err
	}
	if s := d.cfg.GroupSearch; s != nil {
		filter := strings.ReplaceAll(s.Filter, "{dn}", ldap.EscapeFilter(dn))
		filter = strings.ReplaceAll(filter, "{user}", ldap.EscapeFilter(name))
		res, err := conn.Search(ldap.NewSearchRequest(s.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
			0, int(d.cfg.Timeout.Seconds()), false, filter, []string{"dn"}, nil))
		if err != nil {
			return nil, nil, classify(err)
		}
		for _, e := range res.Entries {
			groupDNs = append(groupDNs, e.DN)
		}
	}
	return d.rolesOf(groupDNs), tags, nil
}

// tagsOf reads the tag attributes of the user's entry: an absent one
// leaves its tag absent; one with several values is refused, as the
// proxy never picks one of a user's tenants.
func (d *Directory) tagsOf(entry *ldap.Entry) (map[string]string, error) {
	if len(d.tags) == 0 || entry == nil {
		return nil, nil
	}
	tags := map[string]string{}
	for key, attr := range d.tags {
		switch values := entry.GetAttributeValues(attr); len(values) {
		case 0:
		case 1:
			tags[key] = values[0]
		default:
			return nil, fmt.Errorf("%w: attribute %s of %s has %d values, tag %s takes one", ErrDirectoryUnavailable, attr, entry.DN, len(values), key)
		}
	}
	return tags, nil
}

// escapeForDN escapes the name for a DN template ("uid={user},..."), and
// leaves it as it is for a user principal name ("{user}@corp").
func escapeForDN(template, name string) string {
	if strings.Contains(template, "=") {
		return ldap.EscapeDN(name)
	}
	return name
}

func (d *Directory) searchOne(conn *ldap.Conn, base string, scope int, filter string, attrs []string) (*ldap.Entry, error) {
	attrs = append([]string{"dn"}, attrs...)
	res, err := conn.Search(ldap.NewSearchRequest(base, scope, ldap.NeverDerefAliases,
		2, int(d.cfg.Timeout.Seconds()), false, filter, attrs, nil))
	if err != nil {
		return nil, classify(err)
	}
	if len(res.Entries) != 1 {
		// The bind worked but the entry is not unique: decide nothing.
		return nil, fmt.Errorf("%w: the user search found %d entries, want 1", ErrDirectoryUnavailable, len(res.Entries))
	}
	return res.Entries[0], nil
}

// rolesOf maps group DNs to roles, each role once.
func (d *Directory) rolesOf(groupDNs []string) []string {
	var roles []string
	for _, g := range groupDNs {
		parsed, err := ldap.ParseDN(g)
		if err != nil {
			continue
		}
		for _, m := range d.groups {
			if m.dn.EqualFold(parsed) {
				roles = appendNew(roles, m.roles...)
			}
		}
	}
	return roles
}

func appendNew(list []string, items ...string) []string {
	for _, it := range items {
		found := false
		for _, have := range list {
			found = found || have == it
		}
		if !found {
			list = append(list, it)
		}
	}
	return list
}

func (d *Directory) dial(ctx context.Context) (*ldap.Conn, error) {
	dialer := &net.Dialer{Timeout: d.cfg.Timeout}
	if deadline, ok := ctx.Deadline(); ok {
		dialer.Deadline = deadline
	}
	conn, err := ldap.DialURL(d.cfg.URL, ldap.DialWithDialer(dialer), ldap.DialWithTLSConfig(d.tls))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDirectoryUnavailable, err)
	}
	conn.SetTimeout(d.cfg.Timeout)
	if d.cfg.StartTLS {
		if err := conn.StartTLS(d.tls); err != nil {
			conn.Close()
			return nil, fmt.Errorf("%w: StartTLS: %v", ErrDirectoryUnavailable, err)
		}
	}
	return conn, nil
}

// classify tells a refused bind from a directory that cannot answer.
func classify(err error) error {
	var le *ldap.Error
	if errors.As(err, &le) {
		switch le.ResultCode {
		case ldap.LDAPResultInvalidCredentials, ldap.LDAPResultInappropriateAuthentication,
			ldap.LDAPResultInsufficientAccessRights, ldap.LDAPResultUnwillingToPerform,
			ldap.LDAPResultNoSuchObject, ldap.ErrorEmptyPassword:
			return errDirectoryRefused
		}
	}
	return fmt.Errorf("%w: %v", ErrDirectoryUnavailable, err)
}
