package rbac

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/authproxy/authproxy/credentials"
	"github.com/authproxy/authproxy/privilege"
)

// Options are the RBAC settings of common.security.
type Options struct {
	// EnablePublicPrivilege gives the public role Milvus's defaults:
	// DescribeCollection and ListAliases on every collection, IndexDetail
	// on every collection, in every database.
	EnablePublicPrivilege bool
	// RootShouldBindRole makes root an ordinary user who needs roles.
	RootShouldBindRole bool
	// OtherServicesAdminOnly restricts calls to services other than
	// MilvusService to admin; otherwise any authenticated user may call them.
	OtherServicesAdminOnly bool
}

// scope is where a privilege holds: a database and an object name, "*"
// for every one.
type scope struct{ db, name string }

func (s scope) matches(db, name string) bool {
	return (s.db == privilege.Any || s.db == db) && (s.name == privilege.Any || s.name == name)
}

// subject is what one user may do, all its roles merged.
type subject struct {
	all   bool // root (unbound) or admin: every check passes
	roles []string
	privs map[string][]scope // by privilege, "All" and "*" included
	// visible are the (db, collection) pairs whose grants make a
	// collection visible in ShowCollections; public's do not count, as in
	// Milvus. dbs are the databases that appear in the user's own grants.
	visible []scope
	dbs     []string
}

// policy is the compiled form of one credential Set.
type policy struct {
	set      *credentials.Set
	opts     Options
	roles    map[string]*roleGrants
	subjects map[string]*subject
	public   *subject // anyone not in the store (never authenticated, but safe)
	// external holds the subjects of external identities, by name and
	// mapped roles, up to maxExternalSubjects; a new Set starts afresh.
	external      sync.Map
	externalCount atomic.Int64
}

// maxExternalSubjects bounds the memory of external subjects per policy;
// beyond it they are merged for each call.
const maxExternalSubjects = 4096

// roleGrants is what one role holds.
type roleGrants struct {
	privs   map[string][]scope
	visible []scope
	dbs     []string
}

var publicDefaults = []struct{ privilege, name string }{
	{"DescribeCollection", privilege.Any}, {"ListAliases", privilege.Any}, {"IndexDetail", privilege.Any},
}

func compile(set *credentials.Set, opts Options) *policy {
	roles := map[string]*roleGrants{}
	get := func(role string) *roleGrants {
		r := roles[role]
		if r == nil {
			r = &roleGrants{privs: map[string][]scope{}}
			roles[role] = r
		}
		return r
	}
	add := func(r *roleGrants, priv string, s scope) {
		r.privs[priv] = append(r.privs[priv], s)
		if priv == privilege.All || privilege.ObjectTypeOf(priv) == privilege.Collection {
			r.visible = append(r.visible, s)
		}
	}
	for _, g := range set.Grants() {
		r := get(g.Role)
		members, isGroup := groupMembers(set, g.Privilege)
		// A cluster-level privilege (SelectUser, CreateOwnership, ...) is
		// granted on every database ("*") whatever database the grant
		// named, so its db says nothing of where the role works: it shows
		// no database (Milvus 2.5 shows the one named in the grant; every
		// one would show more than Milvus does).
		if isGroup || !privilege.IsClusterLevel(g.Privilege) {
			r.dbs = append(r.dbs, g.DB)
		}
		if !isGroup {
			add(r, g.Privilege, scope{g.DB, g.ObjectName})
			continue
		}
		// A group grant becomes one per member; a member of the Global
		// type holds on every object of the database (RootCoord's
		// expandPrivilegeGroups).
		for _, p := range members {
			name := g.ObjectName
			if privilege.ObjectTypeOf(p) == privilege.Global {
				name = privilege.Any
			}
			add(r, p, scope{g.DB, name})
		}
	}
	if opts.EnablePublicPrivilege {
		pub := get(credentials.RolePublic)
		for _, d := range publicDefaults {
			pub.privs[d.privilege] = append(pub.privs[d.privilege], scope{privilege.Any, d.name})
		}
	}

	p := &policy{set: set, opts: opts, roles: roles, subjects: map[string]*subject{}}
	p.public = p.merge(false, []string{credentials.RolePublic})
	for _, u := range set.Users() {
		names := append(append([]string(nil), u.Roles...), credentials.RolePublic)
		all := (u.Name == credentials.RootUser && !opts.RootShouldBindRole) || slices.Contains(u.Roles, credentials.RoleAdmin)
		p.subjects[u.Name] = p.merge(all, names)
	}
	return p
}

// merge is the subject holding all of names' grants.
func (p *policy) merge(all bool, names []string) *subject {
	s := &subject{all: all, roles: names, privs: map[string][]scope{}}
	for _, name := range names {
		r := p.roles[name]
		if r == nil {
			continue
		}
		for priv, scopes := range r.privs {
			s.privs[priv] = append(s.privs[priv], scopes...)
		}
		if name != credentials.RolePublic {
			s.visible = append(s.visible, r.visible...)
			s.dbs = append(s.dbs, r.dbs...)
		}
	}
	return s
}

// subjectOf is the subject of a principal: a local user's compiled one,
// or for an external identity its mapped roles with the roles the store
// binds to its name. Nothing of root's applies to an external "root",
// neither its implicit rights nor its admin binding: a provider that lets
// users pick their name must not make one of them root.
func (p *policy) subjectOf(who Principal) *subject {
	if !who.External() {
		return p.subject(who.User)
	}
	key := who.User + "\x00" + strings.Join(who.Roles, "\x00")
	if s, ok := p.external.Load(key); ok {
		return s.(*subject)
	}
	var names []string
	if u, ok := p.set.User(who.User); ok && who.User != credentials.RootUser {
		names = append(names, u.Roles...)
	}
	for _, r := range who.Roles {
		if !slices.Contains(names, r) && r != credentials.RolePublic {
			names = append(names, r)
		}
	}
	s := p.merge(slices.Contains(names, credentials.RoleAdmin), append(names, credentials.RolePublic))
	if p.externalCount.Add(1) <= maxExternalSubjects {
		p.external.Store(key, s)
	}
	return s
}

// groupMembers returns the privileges of a group: a custom one of the set,
// a v2 built-in or a legacy one.
func groupMembers(set *credentials.Set, name string) ([]string, bool) {
	if g, ok := set.PrivilegeGroup(name); ok {
		return g.Privileges, true
	}
	if m, ok := privilege.BuiltinGroup(name); ok {
		return m, true
	}
	return privilege.LegacyGroup(name)
}

// subject is a local user's subject.
func (p *policy) subject(user string) *subject {
	if s, ok := p.subjects[user]; ok {
		return s
	}
	return p.public
}

// allows reports whether the subject holds priv on name in db, through the
// privilege itself, All, or a grant of "*".
func (s *subject) allows(priv, db, name string) bool {
	if s.all {
		return true
	}
	for _, key := range [...]string{priv, privilege.All, privilege.Any} {
		for _, sc := range s.privs[key] {
			if sc.matches(db, name) {
				return true
			}
		}
	}
	return false
}

// seesCollection reports whether a collection shows in ShowCollections.
func (s *subject) seesCollection(db, name string) bool {
	if s.all {
		return true
	}
	for _, sc := range s.visible {
		if sc.matches(db, name) {
			return true
		}
	}
	return false
}

// seesDatabase reports whether a database shows in ListDatabases.
func (s *subject) seesDatabase(db string) bool {
	if s.all {
		return true
	}
	for _, d := range s.dbs {
		if d == privilege.Any || d == db {
			return true
		}
	}
	return false
}
