package usermgmt

import (
	"context"
	"fmt"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"google.golang.org/grpc"
)

// rowPolicyMethods answer row-level security's seven RPCs.
func (s *Service) rowPolicyMethods() []grpc.StreamDesc {
	return []grpc.StreamDesc{
		unary("CreateRowPolicy", func(ctx context.Context, r *milvuspb.CreateRowPolicyRequest) (*commonpb.Status, error) {
			d := RowPolicyDraft{DB: r.GetDbName(), Collection: r.GetCollectionName(), Name: r.GetPolicyName(), Roles: r.GetRoles(),
				UsingExpr: r.GetUsingExpr(), CheckExpr: r.GetCheckExpr(), Description: r.GetDescription()}
			for _, a := range r.GetActions() {
				name, ok := milvuspb.RowPolicyAction_name[int32(a)]
				if !ok {
					return statusReply(&Error{Kind: KindInvalidParameter, Reason: fmt.Sprintf("unknown row policy action %d: invalid parameter", a)})
				}
				d.Actions = append(d.Actions, name)
			}
			return statusReply(s.CreateRowPolicy(ctx, callerOf(ctx), d))
		}),
		unary("DropRowPolicy", func(ctx context.Context, r *milvuspb.DropRowPolicyRequest) (*commonpb.Status, error) {
			return statusReply(s.DropRowPolicy(ctx, callerOf(ctx), r.GetDbName(), r.GetCollectionName(), r.GetPolicyName()))
		}),
		unary("ListRowPolicies", func(ctx context.Context, r *milvuspb.ListRowPoliciesRequest) (*milvuspb.ListRowPoliciesResponse, error) {
			policies, db, err := s.ListRowPolicies(callerOf(ctx), r.GetDbName(), r.GetCollectionName())
			st, gerr := statusReply(err)
			resp := &milvuspb.ListRowPoliciesResponse{Status: st, DbName: db, CollectionName: r.GetCollectionName()}
			for _, p := range policies {
				rp := &milvuspb.RowPolicy{PolicyName: p.Name, Roles: p.Roles, UsingExpr: p.UsingExpr, CheckExpr: p.CheckExpr,
					Description: p.Description, CreatedAt: p.Created.Unix()}
				for _, a := range p.Actions {
					rp.Actions = append(rp.Actions, milvuspb.RowPolicyAction(milvuspb.RowPolicyAction_value[a]))
				}
				resp.Policies = append(resp.Policies, rp)
			}
			return resp, gerr
		}),
		unary("AddUserTags", func(ctx context.Context, r *milvuspb.AddUserTagsRequest) (*commonpb.Status, error) {
			return statusReply(s.AddUserTags(ctx, callerOf(ctx), r.GetUserName(), r.GetTags()))
		}),
		unary("DeleteUserTags", func(ctx context.Context, r *milvuspb.DeleteUserTagsRequest) (*commonpb.Status, error) {
			return statusReply(s.DeleteUserTags(ctx, callerOf(ctx), r.GetUserName(), r.GetTagKeys()))
		}),
		unary("GetUserTags", func(ctx context.Context, r *milvuspb.GetUserTagsRequest) (*milvuspb.GetUserTagsResponse, error) {
			tags, err := s.GetUserTags(callerOf(ctx), r.GetUserName())
			st, gerr := statusReply(err)
			return &milvuspb.GetUserTagsResponse{Status: st, Tags: tags}, gerr
		}),
		unary("ListUsersWithTag", func(ctx context.Context, r *milvuspb.ListUsersWithTagRequest) (*milvuspb.ListUsersWithTagResponse, error) {
			users, err := s.ListUsersWithTag(callerOf(ctx), r.GetTagKey(), r.GetTagValue())
			st, gerr := statusReply(err)
			return &milvuspb.ListUsersWithTagResponse{Status: st, UserNames: users}, gerr
		}),
	}
}
