package credentials

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/authproxy/authproxy/privilege"
)

// Role is a custom role; the built-in admin and public are never stored.
type Role struct {
	Name    string
	Created time.Time
}

// Grant gives a role a privilege (or a privilege group) on an object:
// (Object, ObjectName) in database DB, where "*" means every object or every
// database. Version 2 grants (OperatePrivilegeV2) are stored with object
// Global, as Milvus stores them, and name the collection in ObjectName.
type Grant struct {
	Role       string
	Object     string // privilege.Collection, Global or User
	ObjectName string
	DB         string
	Privilege  string // API name: Load, CollectionReadOnly, a custom group, or *
	Grantor    string
	V2         bool // made by OperatePrivilegeV2: groups are expanded per member's type
	Created    time.Time
}

// GrantKey identifies a grant; granting twice is one grant.
type GrantKey struct{ Role, Object, ObjectName, DB, Privilege string }

// Key is the grant's identity.
func (g *Grant) Key() GrantKey {
	return GrantKey{g.Role, g.Object, g.ObjectName, g.DB, g.Privilege}
}

// PrivilegeGroup is a custom privilege group.
type PrivilegeGroup struct {
	Name       string
	Privileges []string
	Created    time.Time
}

// rbacState is the part of a Set that authorization reads.
type rbacState struct {
	roles  map[string]*Role
	grants map[GrantKey]*Grant
	groups map[string]*PrivilegeGroup
}

func newRBACState() rbacState {
	return rbacState{roles: map[string]*Role{}, grants: map[GrantKey]*Grant{}, groups: map[string]*PrivilegeGroup{}}
}

func (r rbacState) clone() rbacState {
	c := newRBACState()
	for k, v := range r.roles {
		cv := *v
		c.roles[k] = &cv
	}
	for k, v := range r.grants {
		cv := *v
		c.grants[k] = &cv
	}
	for k, v := range r.groups {
		cv := *v
		cv.Privileges = slices.Clone(v.Privileges)
		c.groups[k] = &cv
	}
	return c
}

// Role returns a custom role.
func (s *Set) Role(name string) (*Role, bool) {
	r, ok := s.rbac.roles[name]
	return r, ok
}

// RoleExists reports whether name is a built-in or a custom role.
func (s *Set) RoleExists(name string) bool {
	_, ok := s.rbac.roles[name]
	return ok || IsBuiltinRole(name)
}

// Roles lists the custom roles by name.
func (s *Set) Roles() []*Role { return byName(s.rbac.roles) }

// PutRole adds a custom role.
func (s *Set) PutRole(r *Role) { s.rbac.roles[r.Name] = r }

// DeleteRole removes a custom role, its grants and every user's binding to
// it, and reports whether it existed.
func (s *Set) DeleteRole(name string) bool {
	if _, ok := s.rbac.roles[name]; !ok {
		return false
	}
	delete(s.rbac.roles, name)
	for k := range s.rbac.grants {
		if k.Role == name {
			delete(s.rbac.grants, k)
		}
	}
	for _, u := range s.users {
		u.Roles = slices.DeleteFunc(u.Roles, func(r string) bool { return r == name })
	}
	s.dropRoleFromPolicies(name)
	return true
}

// UsersOf lists the users bound to a role, by name.
func (s *Set) UsersOf(role string) []string {
	var out []string
	for _, u := range s.Users() {
		if slices.Contains(u.Roles, role) {
			out = append(out, u.Name)
		}
	}
	return out
}

// Grants lists every grant, ordered by role, database, object, name and
// privilege.
func (s *Set) Grants() []*Grant {
	out := make([]*Grant, 0, len(s.rbac.grants))
	for _, g := range s.rbac.grants {
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b *Grant) int {
		return cmp.Or(strings.Compare(a.Role, b.Role), strings.Compare(a.DB, b.DB), strings.Compare(a.Object, b.Object),
			strings.Compare(a.ObjectName, b.ObjectName), strings.Compare(a.Privilege, b.Privilege))
	})
	return out
}

// GrantsOf lists a role's grants, in the order of Grants.
func (s *Set) GrantsOf(role string) []*Grant {
	return slices.DeleteFunc(s.Grants(), func(g *Grant) bool { return g.Role != role })
}

// PutGrant adds a grant; an identical one is kept as it is.
func (s *Set) PutGrant(g *Grant) {
	if _, ok := s.rbac.grants[g.Key()]; !ok {
		s.rbac.grants[g.Key()] = g
	}
}

// DeleteGrant removes a grant and reports whether it existed.
func (s *Set) DeleteGrant(k GrantKey) bool {
	_, ok := s.rbac.grants[k]
	delete(s.rbac.grants, k)
	return ok
}

// PrivilegeGroup returns a custom group.
func (s *Set) PrivilegeGroup(name string) (*PrivilegeGroup, bool) {
	g, ok := s.rbac.groups[name]
	return g, ok
}

// PrivilegeGroups lists the custom groups by name.
func (s *Set) PrivilegeGroups() []*PrivilegeGroup { return byName(s.rbac.groups) }

// PutPrivilegeGroup adds or replaces a custom group.
func (s *Set) PutPrivilegeGroup(g *PrivilegeGroup) { s.rbac.groups[g.Name] = g }

// DeletePrivilegeGroup removes a custom group and reports whether it existed.
func (s *Set) DeletePrivilegeGroup(name string) bool {
	_, ok := s.rbac.groups[name]
	delete(s.rbac.groups, name)
	return ok
}

// validateRBAC checks the roles, bindings, grants and groups together.
func (s *Set) validateRBAC() error {
	for _, r := range s.Roles() {
		if err := ValidateRoleName(r.Name); err != nil {
			return &entryError{"role", r.Name, err}
		}
		if IsBuiltinRole(r.Name) {
			return &entryError{"role", r.Name, errors.New("a built-in role is not stored")}
		}
	}
	for _, u := range s.Users() {
		for _, r := range u.Roles {
			if !s.RoleExists(r) {
				return &entryError{"user", u.Name, fmt.Errorf("unknown role %q (not built in, not under roles)", r)}
			}
		}
	}
	for _, g := range s.PrivilegeGroups() {
		if err := ValidatePrivilegeGroupName(g.Name); err != nil {
			return &entryError{"privilege group", g.Name, err}
		}
		if privilege.Known(g.Name) {
			return &entryError{"privilege group", g.Name, errors.New("the name of a built-in privilege or group")}
		}
		for _, p := range g.Privileges {
			if !privilege.Known(p) || privilege.IsGroup(p) {
				return &entryError{"privilege group", g.Name, fmt.Errorf("%q is not a privilege", p)}
			}
		}
	}
	for _, g := range s.Grants() {
		if err := s.checkGrant(g); err != nil {
			return &entryError{"grant", g.describe(), err}
		}
	}
	return nil
}

// describe names a grant in errors.
func (g *Grant) describe() string {
	return fmt.Sprintf("%s on %s %s in db %s to role %s", g.Privilege, g.Object, g.ObjectName, g.DB, g.Role)
}

func (s *Set) checkGrant(g *Grant) error {
	if _, ok := s.rbac.roles[g.Role]; !ok && g.Role != RolePublic {
		return errors.New("the role does not exist (grants to admin are not needed)")
	}
	if !slices.Contains(privilege.ObjectTypes(), g.Object) {
		return fmt.Errorf("unknown object type %q (want Collection, Global or User)", g.Object)
	}
	if err := ValidateObjectName(g.ObjectName); err != nil {
		return fmt.Errorf("invalid object name %q: %w", g.ObjectName, err)
	}
	if g.DB != privilege.Any {
		if err := ValidateDatabaseName(g.DB); err != nil {
			return fmt.Errorf("invalid db %q: %w", g.DB, err)
		}
	}
	_, custom := s.rbac.groups[g.Privilege]
	if !custom && !privilege.Known(g.Privilege) && g.Privilege != privilege.Any {
		return fmt.Errorf("unknown privilege %q", g.Privilege)
	}
	return nil
}

// RoleNameMax is Milvus's proxy.maxNameLength.
const RoleNameMax = 255

// Merr codes of the name rules that are not ErrParameterInvalid.
const (
	CodeDatabaseNameInvalid       = 802  // merr.ErrDatabaseInvalidName
	CodePrivilegeGroupNameInvalid = 1402 // merr.ErrPrivilegeGroupInvalidName
)

// ValidateRoleName applies Milvus's validateName to role names: not empty
// (after trimming spaces, as Milvus does), at most 255 characters, a
// letter or _ first, then letters, digits, _ or $.
func ValidateRoleName(name string) error {
	return ValidateName(name, "role name")
}

// ValidateObjectName is Milvus's ValidateObjectName: "*" or a name by
// validateName.
func ValidateObjectName(name string) error {
	if name == privilege.Any {
		return nil
	}
	return ValidateName(name, "object name")
}

// ValidateName is Milvus 2.5's validateName (internal/proxy/util.go) with
// its messages, merr's rendering included; nameType is how the message
// names the field ("role name", "Privilege", "ObjectType", "object name",
// "collection name").
func ValidateName(entity, nameType string) error {
	entity = strings.TrimSpace(entity)
	if entity == "" {
		return &RuleError{Reason: nameType + " should be not empty: invalid parameter[expected=not empty][actual=]"}
	}
	if len(entity) > RoleNameMax {
		return &RuleError{Reason: fmt.Sprintf("the length of %s must be not greater than limit: invalid parameter[%d out of range 0 <= value <= %d]",
			nameType, len(entity), RoleNameMax)}
	}
	// merr prints the expected rune '_' and the byte found as numbers.
	if c := entity[0]; c != '_' && !isLetter(c) {
		return &RuleError{Reason: fmt.Sprintf("the first character of %s must be an underscore or letter: invalid parameter[expected=%d][actual=%d]",
			nameType, '_', c)}
	}
	for i := 1; i < len(entity); i++ {
		if c := entity[i]; c != '_' && c != '$' && !isLetter(c) && !isDigit(c) {
			return invalidParam("%s can only contain numbers, letters, dollars and underscores, found %c at %d", nameType, c, i)
		}
	}
	return nil
}

// ValidateDatabaseName is Milvus's ValidateDatabaseName: no '$' and no
// '-', unlike other names; code 802.
func ValidateDatabaseName(db string) error {
	bad := func(msg string) error {
		return &RuleError{Reason: fmt.Sprintf("%s: invalid database name[database=%s]", msg, db), code: CodeDatabaseNameInvalid}
	}
	switch {
	case db == "":
		return bad("database name couldn't be empty")
	case len(db) > RoleNameMax:
		return bad(fmt.Sprintf("the length of a database name must be less than %d characters", RoleNameMax))
	case db[0] != '_' && !isLetter(db[0]):
		return bad("the first character of a database name must be an underscore or letter")
	}
	for i := 1; i < len(db); i++ {
		if c := db[i]; c != '_' && !isLetter(c) && !isDigit(c) {
			return bad("database name can only contain numbers, letters and underscores")
		}
	}
	return nil
}

// ValidatePrivilegeGroupName is Milvus's ValidatePrivilegeGroupName: no
// '$'. Its messages are merr's rendering of how Milvus calls
// WrapErrPrivilegeGroupNameInvalid, which takes the format as the group
// and the name as the message (hence the literal %s), code 1402; a bad
// character is ErrParameterInvalid (1100).
func ValidatePrivilegeGroupName(name string) error {
	bad := func(field string, msg ...string) error {
		reason := "invalid privilege group name[privilegeGroup=" + field + "]"
		if len(msg) > 0 {
			reason = strings.Join(msg, "->") + ": " + reason
		}
		return &RuleError{Reason: reason, code: CodePrivilegeGroupNameInvalid}
	}
	switch {
	case name == "":
		return bad("privilege group name should not be empty")
	case len(name) > RoleNameMax:
		return bad("the length of a privilege group name %s must be less than %s characters", name, fmt.Sprint(RoleNameMax))
	case name[0] != '_' && !isLetter(name[0]):
		return bad("the first character of a privilege group name %s must be an underscore or letter", name)
	}
	for i := 1; i < len(name); i++ {
		if c := name[i]; c != '_' && !isLetter(c) && !isDigit(c) {
			return invalidParam("privilege group name %s can only contain numbers, letters and underscores", name)
		}
	}
	return nil
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
