package usermgmt

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"

	"github.com/authproxy/authproxy/credentials"
	"github.com/authproxy/authproxy/privilege"
)

// MaxRoles is Milvus's proxy.maxRoleNum: the built-in roles count.
const MaxRoles = 10

// Privileges each RBAC call needs (milvus.proto's privilege_ext_obj).
const (
	privCreate       = "CreateOwnership"
	privDrop         = "DropOwnership"
	privSelect       = "SelectOwnership"
	privManage       = "ManageOwnership"
	privUpdate       = "UpdateUser"
	privCreateGroup  = "CreatePrivilegeGroup"
	privDropGroup    = "DropPrivilegeGroup"
	privListGroups   = "ListPrivilegeGroups"
	privOperateGroup = "OperatePrivilegeGroup"
	privBackup       = "BackupRBAC"
	privRestore      = "RestoreRBAC"
)

func roleNotFound(code commonpb.ErrorCode) *Error {
	return &Error{Kind: KindNotFound, Legacy: code, Reason: "not found the role, maybe the role isn't existed or internal system error"}
}

func invalid(code commonpb.ErrorCode, format string, args ...any) *Error {
	return &Error{Kind: KindInvalidParameter, Legacy: code, Reason: fmt.Sprintf(format, args...)}
}

// CreateRole adds a custom role.
func (s *Service) CreateRole(ctx context.Context, c Caller, name string) error {
	return s.audit("create_role", c, name, func() error {
		if err := s.require(c, privCreate); err != nil {
			return err
		}
		if err := credentials.ValidateRoleName(name); err != nil {
			return invalid(commonpb.ErrorCode_CreateRoleFailure, "invalid role name %s: %s", name, err)
		}
		return s.update(ctx, func(set *credentials.Set) error {
			if set.RoleExists(name) {
				return &Error{Kind: KindExists, Legacy: commonpb.ErrorCode_CreateRoleFailure, Reason: fmt.Sprintf("role [name:%q] already exists", name)}
			}
			if len(set.Roles())+2 >= MaxRoles {
				return invalid(commonpb.ErrorCode_CreateRoleFailure, "unable to create role because the number of roles has reached the limit %d", MaxRoles)
			}
			set.PutRole(&credentials.Role{Name: name, Created: s.now().UTC()})
			return nil
		})
	})
}

// DropRole removes a custom role and its bindings; with grants, only when
// forced, which removes them too.
func (s *Service) DropRole(ctx context.Context, c Caller, name string, force bool) error {
	return s.audit("drop_role", c, name, func() error {
		if err := s.require(c, privDrop); err != nil {
			return err
		}
		if credentials.IsBuiltinRole(name) {
			return invalid(commonpb.ErrorCode_DropRoleFailure, "the role[%s] is a default role, which can't be dropped", name)
		}
		return s.update(ctx, func(set *credentials.Set) error {
			if _, ok := set.Role(name); !ok {
				return roleNotFound(commonpb.ErrorCode_DropRoleFailure)
			}
			if len(set.GrantsOf(name)) > 0 && !force {
				return invalid(commonpb.ErrorCode_DropRoleFailure, "fail to drop the role that it has privileges. Use REVOKE API to revoke privileges")
			}
			set.DeleteRole(name)
			return nil
		})
	})
}

// GrantRole binds a role to a user.
func (s *Service) GrantRole(ctx context.Context, c Caller, name, role string) error {
	return s.operateRole(ctx, "grant_role", c, name, role, true)
}

// RevokeRole unbinds a role from a user.
func (s *Service) RevokeRole(ctx context.Context, c Caller, name, role string) error {
	return s.operateRole(ctx, "revoke_role", c, name, role, false)
}

func (s *Service) operateRole(ctx context.Context, op string, c Caller, name, role string, grant bool) error {
	return s.audit(op, c, name+" "+role, func() error {
		if err := s.require(c, privManage); err != nil {
			return err
		}
		return s.update(ctx, func(set *credentials.Set) error {
			u, ok := set.User(name)
			if !ok {
				return &Error{Kind: KindNotFound, Legacy: commonpb.ErrorCode_OperateUserRoleFailure, Reason: "not found the user, maybe the user isn't existed or internal system error"}
			}
			if !set.RoleExists(role) {
				return roleNotFound(commonpb.ErrorCode_OperateUserRoleFailure)
			}
			has := slices.Contains(u.Roles, role)
			switch {
			case grant && !has:
				u.Roles = append(u.Roles, role)
			case !grant && has:
				u.Roles = slices.DeleteFunc(u.Roles, func(r string) bool { return r == role })
			default:
				return nil // already so: succeed without a write, as Milvus does
			}
			u.Updated = s.now().UTC()
			return nil
		})
	})
}

// RoleInfo is a role and, when asked for, its users.
type RoleInfo struct {
	Name  string
	Users []string
}

// SelectRole describes one role, or every role when name is ""; an unknown
// role is a success with no result.
func (s *Service) SelectRole(c Caller, name string, includeUsers bool) ([]RoleInfo, error) {
	if err := s.require(c, privSelect); err != nil {
		s.count("select_role", err)
		return nil, err
	}
	set := s.store.Current()
	names := []string{credentials.RoleAdmin, credentials.RolePublic}
	for _, r := range set.Roles() {
		names = append(names, r.Name)
	}
	if name != "" {
		if !set.RoleExists(name) {
			s.count("select_role", nil)
			return nil, nil
		}
		names = []string{name}
	}
	out := make([]RoleInfo, 0, len(names))
	for _, r := range names {
		info := RoleInfo{Name: r}
		if includeUsers {
			info.Users = set.UsersOf(r)
		}
		out = append(out, info)
	}
	s.count("select_role", nil)
	return out, nil
}

// GrantInfo is one grant as SelectGrant answers it.
type GrantInfo struct {
	Role, Object, ObjectName, DB, Privilege, Grantor string
}

func grantInfo(g *credentials.Grant) GrantInfo {
	return GrantInfo{Role: g.Role, Object: g.Object, ObjectName: g.ObjectName, DB: g.DB, Privilege: g.Privilege, Grantor: g.Grantor}
}

// SelectGrant lists a role's grants in db ("" the caller's database, "*"
// every one), on one object when object is set; grants on every database
// are included. A caller may list the grants of its own roles.
func (s *Service) SelectGrant(c Caller, role, object, objectName, db string) ([]GrantInfo, error) {
	own := c.Authenticated && slices.Contains(s.authz.RolesOf(c.Principal), role)
	if !own {
		if err := s.require(c, privSelect); err != nil {
			s.count("select_grant", err)
			return nil, err
		}
	}
	set := s.store.Current()
	if !set.RoleExists(role) {
		err := roleNotFound(commonpb.ErrorCode_SelectGrantFailure)
		s.count("select_grant", err)
		return nil, err
	}
	if db == "" {
		db = c.database()
	}
	var out []GrantInfo
	for _, g := range set.GrantsOf(role) {
		if db != privilege.Any && g.DB != db && g.DB != privilege.Any {
			continue
		}
		if object != "" && (g.Object != object || (objectName != "" && g.ObjectName != objectName)) {
			continue
		}
		out = append(out, grantInfo(g))
	}
	s.count("select_grant", nil)
	return out, nil
}

// Privilege is one OperatePrivilege or OperatePrivilegeV2 call.
type Privilege struct {
	Role       string
	Object     string // v1 only: Collection, Global or User
	ObjectName string // v1: the object; v2: the collection ("" is *)
	DB         string // "" is the caller's database
	Privilege  string // API name: Load, CollectionReadOnly, a custom group
	V2         bool
}

// GrantPrivilege grants (grant true) or revokes a privilege, with Milvus's
// rules for v1 and v2 and its related privileges (Load brings
// GetLoadState and GetLoadingProgress, Flush brings GetFlushState).
func (s *Service) GrantPrivilege(ctx context.Context, c Caller, p Privilege, grant bool) error {
	op := "grant_privilege"
	if !grant {
		op = "revoke_privilege"
	}
	if p.V2 {
		op += "_v2"
	}
	target := fmt.Sprintf("%s %s %s.%s %s", p.Role, p.Object, p.DB, p.ObjectName, p.Privilege)
	return s.audit(op, c, target, func() error {
		if err := s.require(c, privManage); err != nil {
			return err
		}
		if p.DB == "" {
			p.DB = c.database()
		}
		// Some SDKs send the stored name (PrivilegeLoad) for the API name.
		if api := privilege.FromEnumName(p.Privilege); api != p.Privilege && privilege.Known(api) {
			p.Privilege = api
		}
		return s.update(ctx, func(set *credentials.Set) error {
			grants, err := s.grantsFor(set, p)
			if err != nil {
				return err
			}
			for _, g := range grants {
				g.Grantor, g.Created = c.User, s.now().UTC()
				if grant {
					set.PutGrant(g)
				} else {
					set.DeleteGrant(g.Key())
				}
			}
			return nil
		})
	})
}

// grantsFor checks p against the set and returns the grants it makes.
func (s *Service) grantsFor(set *credentials.Set, p Privilege) ([]*credentials.Grant, error) {
	const code = commonpb.ErrorCode_OperatePrivilegeFailure
	if p.Role == credentials.RoleAdmin || !set.RoleExists(p.Role) {
		if p.Role == credentials.RoleAdmin {
			return nil, invalid(code, "the role admin holds every privilege; it takes no grants")
		}
		return nil, roleNotFound(code)
	}
	_, custom := set.PrivilegeGroup(p.Privilege)
	_, builtinV2 := privilege.BuiltinGroup(p.Privilege)
	known := custom || privilege.Known(p.Privilege) || p.Privilege == privilege.Any
	if !known {
		return nil, invalid(code, "not found the privilege name[%s]", p.Privilege)
	}
	var out []*credentials.Grant
	add := func(object, name, priv string) {
		db := p.DB
		if privilege.IsClusterLevel(priv) {
			// Checked against every database (Milvus master), so granted there.
			db = privilege.Any
		}
		out = append(out, &credentials.Grant{Role: p.Role, Object: object, ObjectName: name, DB: db, Privilege: priv, V2: p.V2})
	}
	if !p.V2 {
		if custom || builtinV2 {
			return nil, invalid(code, "can not operate the privilege group [%s] through v1 API, please use OperatePrivilegeV2", p.Privilege)
		}
		if !slices.Contains(privilege.ObjectTypes(), p.Object) {
			return nil, invalid(code, "not found the object type[name: %s]", p.Object)
		}
		if !privilege.V1Grantable(p.Object, p.Privilege) {
			return nil, invalid(code, "not found the privilege name[%s] in object[%s]", p.Privilege, p.Object)
		}
		name := p.ObjectName
		if p.Object == privilege.Global {
			name = privilege.Any
		}
		if err := checkScopeName(code, "object name", name); err != nil {
			return nil, err
		}
		add(p.Object, name, p.Privilege)
		for _, r := range privilege.Related(p.Privilege) {
			add(p.Object, name, r)
		}
		return out, nil
	}
	name := p.ObjectName
	if name == "" {
		name = privilege.Any
	}
	if err := checkScopeName(code, "collection name", name); err != nil {
		return nil, err
	}
	if err := checkScopeName(code, "db name", p.DB); err != nil {
		return nil, err
	}
	members := []string{p.Privilege}
	if g, ok := set.PrivilegeGroup(p.Privilege); ok {
		members = g.Privileges
	} else if m, ok := privilege.BuiltinGroup(p.Privilege); ok {
		members = m
	}
	if custom || builtinV2 {
		if err := checkGroupScope(code, privilege.GroupLevel(members), p.DB, name); err != nil {
			return nil, err
		}
		add(privilege.Global, name, p.Privilege)
		return out, nil
	}
	add(privilege.ObjectTypeOf(p.Privilege), name, p.Privilege)
	for _, r := range privilege.Related(p.Privilege) {
		add(privilege.ObjectTypeOf(r), name, r)
	}
	return out, nil
}

func checkScopeName(code commonpb.ErrorCode, what, name string) error {
	if name == privilege.Any {
		return nil
	}
	if err := credentials.ValidateObjectName(name); err != nil {
		return invalid(code, "invalid %s %q: %s", what, name, err)
	}
	return nil
}

// checkGroupScope is validatePrivilegeGroupParams: a cluster group needs
// db * and collection *, a database group collection *, a collection
// group on every database every collection.
func checkGroupScope(code commonpb.ErrorCode, level, db, collection string) error {
	switch {
	case level == privilege.LevelCluster && (db != privilege.Any || collection != privilege.Any):
		return invalid(code, "dbName and collectionName should be * for the cluster level privilege")
	case level == privilege.LevelDatabase && collection != privilege.Any:
		return invalid(code, "collectionName should be * for the database level privilege")
	case level == privilege.LevelCollection && db == privilege.Any && collection != privilege.Any:
		return invalid(code, "please specify database name for the collection level privilege")
	}
	return nil
}

// CreatePrivilegeGroup adds an empty custom group.
func (s *Service) CreatePrivilegeGroup(ctx context.Context, c Caller, name string) error {
	const code = commonpb.ErrorCode_CreatePrivilegeGroupFailure
	return s.audit("create_privilege_group", c, name, func() error {
		if err := s.require(c, privCreateGroup); err != nil {
			return err
		}
		if err := credentials.ValidateRoleName(name); err != nil {
			return invalid(code, "invalid privilege group name %s: %s", name, err)
		}
		if privilege.Known(name) {
			return invalid(code, "privilege group name [%s] is defined by built in privileges or privilege groups in system", name)
		}
		return s.update(ctx, func(set *credentials.Set) error {
			if _, ok := set.PrivilegeGroup(name); ok {
				return &Error{Kind: KindExists, Legacy: code, Reason: fmt.Sprintf("privilege group [%s] already exists", name)}
			}
			set.PutPrivilegeGroup(&credentials.PrivilegeGroup{Name: name, Privileges: []string{}, Created: s.now().UTC()})
			return nil
		})
	})
}

// DropPrivilegeGroup removes a custom group no role holds; a group that
// does not exist is dropped successfully, as in Milvus.
func (s *Service) DropPrivilegeGroup(ctx context.Context, c Caller, name string) error {
	const code = commonpb.ErrorCode_DropPrivilegeGroupFailure
	return s.audit("drop_privilege_group", c, name, func() error {
		if err := s.require(c, privDropGroup); err != nil {
			return err
		}
		if privilege.IsGroup(name) {
			return invalid(code, "privilege group [%s] is a built-in group, which can't be dropped", name)
		}
		return s.update(ctx, func(set *credentials.Set) error {
			for _, g := range set.Grants() {
				if g.Privilege == name {
					return invalid(code, "privilege group [%s] is used by role [%s], Use REVOKE API to revoke it first", name, g.Role)
				}
			}
			set.DeletePrivilegeGroup(name)
			return nil
		})
	})
}

// ListPrivilegeGroups lists the custom groups, then the nine built-in ones.
func (s *Service) ListPrivilegeGroups(c Caller) ([]privilege.Group, error) {
	if err := s.require(c, privListGroups); err != nil {
		s.count("list_privilege_groups", err)
		return nil, err
	}
	var out []privilege.Group
	for _, g := range s.store.Current().PrivilegeGroups() {
		out = append(out, privilege.Group{Name: g.Name, Privileges: slices.Clone(g.Privileges)})
	}
	s.count("list_privilege_groups", nil)
	return append(out, privilege.BuiltinGroups()...), nil
}

// OperatePrivilegeGroup adds privileges to a custom group, or removes them.
func (s *Service) OperatePrivilegeGroup(ctx context.Context, c Caller, name string, privileges []string, add bool) error {
	const code = commonpb.ErrorCode_OperatePrivilegeGroupFailure
	op := "add_privileges_to_group"
	if !add {
		op = "remove_privileges_from_group"
	}
	return s.audit(op, c, name+" "+strings.Join(privileges, ","), func() error {
		if err := s.require(c, privOperateGroup); err != nil {
			return err
		}
		if privilege.IsGroup(name) {
			return invalid(code, "the privilege group [%s] is a built-in group, which can't be changed", name)
		}
		for _, p := range privileges {
			if !privilege.Known(p) || privilege.IsGroup(p) || p == privilege.All {
				return invalid(code, "not found the privilege name[%s]", p)
			}
		}
		return s.update(ctx, func(set *credentials.Set) error {
			g, ok := set.PrivilegeGroup(name)
			if !ok {
				return invalid(code, "there is no privilege group name [%s] to operate", name)
			}
			next := slices.Clone(g.Privileges)
			for _, p := range privileges {
				switch has := slices.Contains(next, p); {
				case add && !has:
					next = append(next, p)
				case !add && has:
					next = slices.DeleteFunc(next, func(x string) bool { return x == p })
				}
			}
			for _, p := range next {
				if privilege.Level(p) != privilege.GroupLevel(next) {
					return invalid(code, "privileges are not the same privilege level")
				}
			}
			g.Privileges = next
			return nil
		})
	})
}

// RBACMeta is what BackupRBAC returns and RestoreRBAC takes. Users carry
// their role bindings only: password hashes never leave the proxy.
type RBACMeta struct {
	Users  map[string][]string // user → custom roles
	Roles  []string
	Grants []GrantInfo
	Groups []privilege.Group
}

// BackupRBAC returns the roles, bindings, grants and custom groups.
func (s *Service) BackupRBAC(c Caller) (*RBACMeta, error) {
	if err := s.require(c, privBackup); err != nil {
		s.count("backup_rbac", err)
		return nil, err
	}
	set := s.store.Current()
	m := &RBACMeta{Users: map[string][]string{}}
	for _, r := range set.Roles() {
		m.Roles = append(m.Roles, r.Name)
	}
	for _, u := range set.Users() {
		if len(u.Roles) > 0 {
			m.Users[u.Name] = slices.Clone(u.Roles)
		}
	}
	for _, g := range set.Grants() {
		m.Grants = append(m.Grants, grantInfo(g))
	}
	for _, g := range set.PrivilegeGroups() {
		m.Groups = append(m.Groups, privilege.Group{Name: g.Name, Privileges: slices.Clone(g.Privileges)})
	}
	s.count("backup_rbac", nil)
	return m, nil
}

// RestoreRBAC adds what a backup holds, all or nothing. Bindings of users
// that do not exist here are refused: users (and their passwords) are
// restored with the credential file, not with RBAC.
func (s *Service) RestoreRBAC(ctx context.Context, c Caller, m *RBACMeta) error {
	return s.audit("restore_rbac", c, "", func() error {
		if err := s.require(c, privRestore); err != nil {
			return err
		}
		return s.update(ctx, func(set *credentials.Set) error {
			now := s.now().UTC()
			for _, r := range m.Roles {
				if !set.RoleExists(r) {
					set.PutRole(&credentials.Role{Name: r, Created: now})
				}
			}
			for _, g := range m.Groups {
				set.PutPrivilegeGroup(&credentials.PrivilegeGroup{Name: g.Name, Privileges: slices.Clone(g.Privileges), Created: now})
			}
			for _, g := range m.Grants {
				set.PutGrant(&credentials.Grant{Role: g.Role, Object: g.Object, ObjectName: g.ObjectName, DB: g.DB,
					Privilege: g.Privilege, Grantor: g.Grantor, Created: now})
			}
			for name, roles := range m.Users {
				u, ok := set.User(name)
				if !ok {
					return invalid(commonpb.ErrorCode_UnexpectedError, "restore rbac: user %s does not exist", name)
				}
				for _, r := range roles {
					if !slices.Contains(u.Roles, r) {
						u.Roles = append(u.Roles, r)
					}
				}
			}
			if len(set.Roles())+2 > MaxRoles {
				return invalid(commonpb.ErrorCode_UnexpectedError, "restore rbac: the number of roles would exceed the limit %d", MaxRoles)
			}
			return nil
		})
	})
}
