package usermgmt

import (
	"context"
	"errors"
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

// invalid is merr.WrapErrParameterInvalidMsg in a RootCoord answer: code
// 1100, "<message>: invalid parameter", the call's legacy code.
func invalid(code commonpb.ErrorCode, format string, args ...any) *Error {
	return &Error{Kind: KindInvalidParameter, Legacy: code, Reason: fmt.Sprintf(format, args...) + ": invalid parameter"}
}

// refused is a RootCoord refusal made with errors.New: merr codes such an
// error 65535 (unexpected), with the call's legacy code.
func refused(code commonpb.ErrorCode, format string, args ...any) *Error {
	return &Error{Kind: KindInvalidParameter, MilvusCode: codeUnexpected, Legacy: code, Reason: fmt.Sprintf(format, args...)}
}

// codeUnexpected is merr's code for an error that is not a merr error.
const codeUnexpected = 65535

// nameError is the Milvus proxy's refusal of a name (validateName,
// ValidateDatabaseName, ValidatePrivilegeGroupName): merr.Status, whose
// legacy code follows the merr code.
func nameError(err error) *Error {
	re, ok := errors.AsType[*credentials.RuleError](err)
	if !ok {
		return Internal(err)
	}
	legacy := commonpb.ErrorCode_UnexpectedError
	if re.Code() == credentials.CodeParameterInvalid {
		legacy = commonpb.ErrorCode_IllegalArgument
	}
	return &Error{Kind: KindInvalidParameter, MilvusCode: re.Code(), Legacy: legacy, Reason: re.Reason}
}

// CreateRole adds a custom role.
func (s *Service) CreateRole(ctx context.Context, c Caller, name string) error {
	return s.audit("create_role", c, name, func() error {
		if err := s.require(c, privCreate); err != nil {
			return err
		}
		if err := credentials.ValidateRoleName(name); err != nil {
			return nameError(err)
		}
		return s.update(ctx, func(set *credentials.Set) error {
			if set.RoleExists(name) {
				return &Error{Kind: KindExists, Legacy: commonpb.ErrorCode_CreateRoleFailure, Reason: fmt.Sprintf("role [name:%q] already exists", name)}
			}
			if len(set.Roles())+2 >= MaxRoles {
				return refused(commonpb.ErrorCode_CreateRoleFailure, "unable to create role because the number of roles has reached the limit %d", MaxRoles)
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
		if err := credentials.ValidateRoleName(name); err != nil {
			return nameError(err)
		}
		if credentials.IsBuiltinRole(name) {
			// The Milvus proxy's refusal (impl.go DropRole): 1401 in the status.
			return &Error{Kind: KindNotPermitted, Legacy: commonpb.ErrorCode_UnexpectedError,
				Reason: fmt.Sprintf("the role[%s] is a default role, which can't be dropped: privilege not permitted", name)}
		}
		return s.update(ctx, func(set *credentials.Set) error {
			if _, ok := set.Role(name); !ok {
				return roleNotFound(commonpb.ErrorCode_DropRoleFailure)
			}
			if len(set.GrantsOf(name)) > 0 && !force {
				return refused(commonpb.ErrorCode_DropRoleFailure, "fail to drop the role that it has privileges. Use REVOKE API to revoke privileges")
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
		if err := credentials.ValidateUsername(name); err != nil {
			return nameError(err)
		}
		if err := credentials.ValidateRoleName(role); err != nil {
			return nameError(err)
		}
		return s.update(ctx, func(set *credentials.Set) error {
			// RootCoord's order: the role, then (to add) the user; removing
			// a user that does not exist, or was dropped, succeeds.
			if !set.RoleExists(role) {
				return roleNotFound(commonpb.ErrorCode_OperateUserRoleFailure)
			}
			u, ok := set.User(name)
			switch {
			case !ok && grant:
				return &Error{Kind: KindNotFound, Legacy: commonpb.ErrorCode_OperateUserRoleFailure, Reason: "not found the user, maybe the user isn't existed or internal system error"}
			case !ok:
				return nil
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
		// The Milvus proxy validates the name first (impl.go SelectRole).
		if err := credentials.ValidateRoleName(name); err != nil {
			err := nameError(err)
			s.count("select_role", err)
			return nil, err
		}
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
	if err := validateGrantFilter(role, object, objectName); err != nil {
		s.count("select_grant", err)
		return nil, err
	}
	set := s.store.Current()
	if !set.RoleExists(role) {
		err := roleNotFound(commonpb.ErrorCode_SelectGrantFailure)
		s.count("select_grant", err)
		return nil, err
	}
	if object != "" && !slices.Contains(privilege.ObjectTypes(), object) {
		err := refused(commonpb.ErrorCode_SelectGrantFailure, "%s", unknownObjectType(object))
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

// validateGrantFilter is the Milvus proxy's validGrantParams.
func validateGrantFilter(role, object, objectName string) error {
	if object != "" {
		if err := credentials.ValidateName(object, "ObjectType"); err != nil {
			return nameError(err)
		}
		if err := credentials.ValidateObjectName(objectName); err != nil {
			return nameError(err)
		}
	}
	if err := credentials.ValidateRoleName(role); err != nil {
		return nameError(err)
	}
	return nil
}

// unknownObjectType is RootCoord's isValidObject message. Milvus lists the
// types in map order (lo.Keys); here they are sorted.
func unknownObjectType(object string) string {
	return fmt.Sprintf("not found the object type[name: %s], supported the object types: [%s]", object, strings.Join(privilege.ObjectTypes(), " "))
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

// grantsFor checks p against the set and returns the grants it makes. The
// checks run in Milvus's order, with its messages: the proxy's name
// checks (validPrivilegeParams, validateOperatePrivilegeV2Params), then
// RootCoord's (the object type, the role, the privilege, a group's scope).
func (s *Service) grantsFor(set *credentials.Set, p Privilege) ([]*credentials.Grant, error) {
	const code = commonpb.ErrorCode_OperatePrivilegeFailure
	if err := validatePrivilegeNames(p); err != nil {
		return nil, err
	}
	if !p.V2 && !slices.Contains(privilege.ObjectTypes(), p.Object) {
		return nil, refused(code, "the object entity in the request is nil or invalid")
	}
	if p.Role == credentials.RoleAdmin {
		return nil, refused(code, "the role admin holds every privilege; it takes no grants")
	}
	if !set.RoleExists(p.Role) {
		return nil, roleNotFound(code)
	}
	_, custom := set.PrivilegeGroup(p.Privilege)
	_, builtinV2 := privilege.BuiltinGroup(p.Privilege)
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
		switch {
		case custom:
			return nil, refused(code, "can not operate the custom privilege group [%s]", p.Privilege)
		case builtinV2:
			return nil, refused(code, "can not operate the built-in privilege group [%s]", p.Privilege)
		case !privilege.V1Grantable(p.Object, p.Privilege):
			return nil, refused(code, "not found the privilege name[%s] in object[%s]", p.Privilege, p.Object)
		}
		name := p.ObjectName
		if p.Object == privilege.Global {
			name = privilege.Any
		}
		add(p.Object, name, p.Privilege)
		for _, r := range privilege.Related(p.Privilege) {
			add(p.Object, name, r)
		}
		return out, nil
	}
	if !custom && !privilege.Known(p.Privilege) && p.Privilege != privilege.Any {
		return nil, refused(code, "not found the privilege name[%s]", p.Privilege)
	}
	name := p.ObjectName
	if name == "" {
		name = privilege.Any
	}
	members := []string{p.Privilege}
	if g, ok := set.PrivilegeGroup(p.Privilege); ok {
		members = g.Privileges
	} else if m, ok := privilege.BuiltinGroup(p.Privilege); ok {
		members = m
	}
	if custom || builtinV2 {
		if err := checkGroupScope(code, p.Privilege, privilege.GroupLevel(members), p.DB, name); err != nil {
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

// validatePrivilegeNames is the Milvus proxy's check of a grant's names:
// validPrivilegeParams (v1) and validateOperatePrivilegeV2Params (v2),
// whose database rule forbids '$' and '-'. A v1 grant's database, which
// Milvus stores unchecked, is held to the same rule here: a name Milvus
// cannot create would make a grant that never applies.
func validatePrivilegeNames(p Privilege) error {
	checks := []func() error{
		func() error { return credentials.ValidateRoleName(p.Role) },
		func() error { return validatePrivilegeName(p.Privilege) },
		func() error { return validateScopeDB(p.DB) },
		func() error {
			if p.ObjectName == "" || p.ObjectName == privilege.Any {
				return nil
			}
			return credentials.ValidateName(p.ObjectName, "collection name")
		},
	}
	if !p.V2 {
		checks = []func() error{
			func() error { return validatePrivilegeName(p.Privilege) },
			func() error { return credentials.ValidateName(p.Object, "ObjectType") },
			func() error { return credentials.ValidateObjectName(p.ObjectName) },
			func() error { return credentials.ValidateRoleName(p.Role) },
			func() error { return validateScopeDB(p.DB) },
		}
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return nameError(err)
		}
	}
	return nil
}

// validatePrivilegeName is Milvus's ValidatePrivilege: "*" or a name.
func validatePrivilegeName(name string) error {
	if name == privilege.Any {
		return nil
	}
	return credentials.ValidateName(name, "Privilege")
}

func validateScopeDB(db string) error {
	if db == privilege.Any {
		return nil
	}
	return credentials.ValidateDatabaseName(db)
}

// checkGroupScope is validatePrivilegeGroupParams: a cluster group needs
// db * and collection *, a database group collection *, a collection
// group on every database every collection.
func checkGroupScope(code commonpb.ErrorCode, group, level, db, collection string) error {
	switch {
	case level == privilege.LevelCluster && (db != privilege.Any || collection != privilege.Any):
		return invalid(code, "dbName and collectionName should be * for the cluster level privilege: %s", group)
	case level == privilege.LevelDatabase && collection != privilege.Any:
		return invalid(code, "collectionName should be * for the database level privilege: %s", group)
	case level == privilege.LevelCollection && db == privilege.Any && collection != privilege.Any:
		return invalid(code, "please specify database name for the collection level privilege: %s", group)
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
		if err := credentials.ValidatePrivilegeGroupName(name); err != nil {
			return nameError(err)
		}
		return s.update(ctx, func(set *credentials.Set) error {
			// MetaTable.CreatePrivilegeGroup's order and messages.
			if _, ok := set.PrivilegeGroup(name); ok {
				return &Error{Kind: KindExists, MilvusCode: credentials.CodeParameterInvalid, Legacy: code,
					Reason: fmt.Sprintf("privilege group name [%s] is defined by users: invalid parameter", name)}
			}
			if privilege.Known(name) {
				return invalid(code, "privilege group name [%s] is defined by built in privileges or privilege groups in system", name)
			}
			set.PutPrivilegeGroup(&credentials.PrivilegeGroup{Name: name, Privileges: []string{}, Created: s.now().UTC()})
			return nil
		})
	})
}

// DropPrivilegeGroup removes a custom group no role holds; a group that
// does not exist, or a built-in one, is dropped successfully, as in
// Milvus (MetaTable.DropPrivilegeGroup does nothing for a name that is
// not a custom group).
func (s *Service) DropPrivilegeGroup(ctx context.Context, c Caller, name string) error {
	const code = commonpb.ErrorCode_DropPrivilegeGroupFailure
	return s.audit("drop_privilege_group", c, name, func() error {
		if err := s.require(c, privDropGroup); err != nil {
			return err
		}
		if err := credentials.ValidatePrivilegeGroupName(name); err != nil {
			return nameError(err)
		}
		return s.update(ctx, func(set *credentials.Set) error {
			if _, custom := set.PrivilegeGroup(name); !custom {
				return nil
			}
			for _, g := range set.Grants() {
				if g.Privilege == name {
					return refused(code, "privilege group [%s] is used by role [%s], Use REVOKE API to revoke it first", name, g.Role)
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
		// The Milvus proxy validates the names first, then
		// MetaTable.OperatePrivilegeGroup looks the group up.
		if err := credentials.ValidatePrivilegeGroupName(name); err != nil {
			return nameError(err)
		}
		for _, p := range privileges {
			if err := validatePrivilegeName(p); err != nil {
				return nameError(err)
			}
		}
		if privilege.IsGroup(name) {
			return invalid(code, "the privilege group name [%s] is defined by built in privilege groups in system", name)
		}
		return s.update(ctx, func(set *credentials.Set) error {
			g, ok := set.PrivilegeGroup(name)
			if !ok {
				return invalid(code, "there is no privilege group name [%s] to operate", name)
			}
			// Milvus would store a group or "All" as a member, which then
			// means nothing; here they are refused, with Milvus's message
			// for a name it does not know.
			for _, p := range privileges {
				if !privilege.Known(p) || privilege.IsGroup(p) || p == privilege.All {
					return invalid(code, "there is no privilege name or privilege group name [%s] defined in system to operate", p)
				}
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
					return refused(code, "privileges are not the same privilege level")
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
