package usermgmt

import (
	"context"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"google.golang.org/grpc"

	"github.com/authproxy/authproxy/privilege"
)

// rbacMethods serve the role and privilege API of MilvusService.
func (s *Service) rbacMethods() []grpc.StreamDesc {
	return []grpc.StreamDesc{
		unary("CreateRole", func(ctx context.Context, r *milvuspb.CreateRoleRequest) (*commonpb.Status, error) {
			return statusReply(s.CreateRole(ctx, callerOf(ctx), r.GetEntity().GetName()))
		}),
		unary("DropRole", func(ctx context.Context, r *milvuspb.DropRoleRequest) (*commonpb.Status, error) {
			return statusReply(s.DropRole(ctx, callerOf(ctx), r.GetRoleName(), r.GetForceDrop()))
		}),
		unary("SelectGrant", func(ctx context.Context, r *milvuspb.SelectGrantRequest) (*milvuspb.SelectGrantResponse, error) {
			e := r.GetEntity()
			grants, err := s.SelectGrant(callerOf(ctx), e.GetRole().GetName(), e.GetObject().GetName(), e.GetObjectName(), e.GetDbName())
			st, gerr := statusReply(err)
			resp := &milvuspb.SelectGrantResponse{Status: st}
			for _, g := range grants {
				resp.Entities = append(resp.Entities, grantEntity(g))
			}
			return resp, gerr
		}),
		unary("OperatePrivilege", func(ctx context.Context, r *milvuspb.OperatePrivilegeRequest) (*commonpb.Status, error) {
			e := r.GetEntity()
			p := Privilege{Role: e.GetRole().GetName(), Object: e.GetObject().GetName(), ObjectName: e.GetObjectName(),
				DB: e.GetDbName(), Privilege: e.GetGrantor().GetPrivilege().GetName(), V2: r.GetVersion() == "v2"}
			return statusReply(s.GrantPrivilege(ctx, callerOf(ctx), p, r.GetType() == milvuspb.OperatePrivilegeType_Grant))
		}),
		unary("OperatePrivilegeV2", func(ctx context.Context, r *milvuspb.OperatePrivilegeV2Request) (*commonpb.Status, error) {
			p := Privilege{Role: r.GetRole().GetName(), ObjectName: r.GetCollectionName(), DB: r.GetDbName(),
				Privilege: r.GetGrantor().GetPrivilege().GetName(), V2: true}
			return statusReply(s.GrantPrivilege(ctx, callerOf(ctx), p, r.GetType() == milvuspb.OperatePrivilegeType_Grant))
		}),
		unary("CreatePrivilegeGroup", func(ctx context.Context, r *milvuspb.CreatePrivilegeGroupRequest) (*commonpb.Status, error) {
			return statusReply(s.CreatePrivilegeGroup(ctx, callerOf(ctx), r.GetGroupName()))
		}),
		unary("DropPrivilegeGroup", func(ctx context.Context, r *milvuspb.DropPrivilegeGroupRequest) (*commonpb.Status, error) {
			return statusReply(s.DropPrivilegeGroup(ctx, callerOf(ctx), r.GetGroupName()))
		}),
		unary("ListPrivilegeGroups", func(ctx context.Context, _ *milvuspb.ListPrivilegeGroupsRequest) (*milvuspb.ListPrivilegeGroupsResponse, error) {
			groups, err := s.ListPrivilegeGroups(callerOf(ctx))
			st, gerr := statusReply(err)
			return &milvuspb.ListPrivilegeGroupsResponse{Status: st, PrivilegeGroups: groupInfos(groups)}, gerr
		}),
		unary("OperatePrivilegeGroup", func(ctx context.Context, r *milvuspb.OperatePrivilegeGroupRequest) (*commonpb.Status, error) {
			var names []string
			for _, p := range r.GetPrivileges() {
				names = append(names, p.GetName())
			}
			add := r.GetType() == milvuspb.OperatePrivilegeGroupType_AddPrivilegesToGroup
			return statusReply(s.OperatePrivilegeGroup(ctx, callerOf(ctx), r.GetGroupName(), names, add))
		}),
		unary("BackupRBAC", func(ctx context.Context, _ *milvuspb.BackupRBACMetaRequest) (*milvuspb.BackupRBACMetaResponse, error) {
			m, err := s.BackupRBAC(callerOf(ctx))
			st, gerr := statusReply(err)
			resp := &milvuspb.BackupRBACMetaResponse{Status: st}
			if m != nil {
				resp.RBACMeta = rbacMetaProto(m)
			}
			return resp, gerr
		}),
		unary("RestoreRBAC", func(ctx context.Context, r *milvuspb.RestoreRBACMetaRequest) (*commonpb.Status, error) {
			return statusReply(s.RestoreRBAC(ctx, callerOf(ctx), rbacMetaFrom(r.GetRBACMeta())))
		}),
	}
}

func grantEntity(g GrantInfo) *milvuspb.GrantEntity {
	return &milvuspb.GrantEntity{
		Role:       &milvuspb.RoleEntity{Name: g.Role},
		Object:     &milvuspb.ObjectEntity{Name: g.Object},
		ObjectName: g.ObjectName,
		DbName:     g.DB,
		Grantor: &milvuspb.GrantorEntity{
			User:      &milvuspb.UserEntity{Name: g.Grantor},
			Privilege: &milvuspb.PrivilegeEntity{Name: g.Privilege},
		},
	}
}

func groupInfos(groups []privilege.Group) []*milvuspb.PrivilegeGroupInfo {
	out := make([]*milvuspb.PrivilegeGroupInfo, 0, len(groups))
	for _, g := range groups {
		info := &milvuspb.PrivilegeGroupInfo{GroupName: g.Name}
		for _, p := range g.Privileges {
			info.Privileges = append(info.Privileges, &milvuspb.PrivilegeEntity{Name: p})
		}
		out = append(out, info)
	}
	return out
}

func rbacMetaProto(m *RBACMeta) *milvuspb.RBACMeta {
	out := &milvuspb.RBACMeta{PrivilegeGroups: groupInfos(m.Groups)}
	for _, r := range m.Roles {
		out.Roles = append(out.Roles, &milvuspb.RoleEntity{Name: r})
	}
	for user, roles := range m.Users {
		info := &milvuspb.UserInfo{User: user}
		for _, r := range roles {
			info.Roles = append(info.Roles, &milvuspb.RoleEntity{Name: r})
		}
		out.Users = append(out.Users, info)
	}
	for _, g := range m.Grants {
		out.Grants = append(out.Grants, grantEntity(g))
	}
	return out
}

func rbacMetaFrom(p *milvuspb.RBACMeta) *RBACMeta {
	m := &RBACMeta{Users: map[string][]string{}}
	for _, r := range p.GetRoles() {
		m.Roles = append(m.Roles, r.GetName())
	}
	for _, u := range p.GetUsers() {
		for _, r := range u.GetRoles() {
			m.Users[u.GetUser()] = append(m.Users[u.GetUser()], r.GetName())
		}
	}
	for _, g := range p.GetGrants() {
		m.Grants = append(m.Grants, GrantInfo{Role: g.GetRole().GetName(), Object: g.GetObject().GetName(), ObjectName: g.GetObjectName(),
			DB: g.GetDbName(), Privilege: g.GetGrantor().GetPrivilege().GetName(), Grantor: g.GetGrantor().GetUser().GetName()})
	}
	for _, g := range p.GetPrivilegeGroups() {
		group := privilege.Group{Name: g.GetGroupName()}
		for _, e := range g.GetPrivileges() {
			group.Privileges = append(group.Privileges, e.GetName())
		}
		m.Groups = append(m.Groups, group)
	}
	return m
}
