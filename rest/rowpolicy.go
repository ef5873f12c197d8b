package rest

import (
	"context"

	"github.com/authproxy/authproxy/usermgmt"
)

// rowSecurityOps are the REST routes of row-level security, for clients
// without an SDK that has the RPCs. Milvus's REST API v2 has none yet;
// these follow its style (POST, camelCase bodies, the users/ and roles/
// envelopes) and call the same Service as gRPC.
var rowSecurityOps = map[string]userOp{
	"row_policies/create": {required: []string{"collectionName", "policyName", "actions", "roles"}, call: func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, q *userRequest) (any, error) {
		d := usermgmt.RowPolicyDraft{DB: q.DBName, Collection: q.CollectionName, Name: q.PolicyName, Roles: q.Roles,
			UsingExpr: q.UsingExpr, CheckExpr: q.CheckExpr, Description: q.Description}
		for _, a := range q.Actions {
			action, err := usermgmt.ParseRowPolicyAction(a)
			if err != nil {
				return nil, err
			}
			d.Actions = append(d.Actions, action)
		}
		return noData, s.CreateRowPolicy(ctx, c, d)
	}},
	"row_policies/drop": {required: []string{"collectionName", "policyName"}, call: func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, q *userRequest) (any, error) {
		return noData, s.DropRowPolicy(ctx, c, q.DBName, q.CollectionName, q.PolicyName)
	}},
	"row_policies/list": {required: []string{"collectionName"}, call: func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, q *userRequest) (any, error) {
		policies, _, err := s.ListRowPolicies(c, q.DBName, q.CollectionName)
		out := []map[string]any{}
		for _, p := range policies {
			out = append(out, map[string]any{"policyName": p.Name, "actions": p.Actions, "roles": p.Roles, "usingExpr": p.UsingExpr,
				"checkExpr": p.CheckExpr, "description": p.Description, "createdAt": p.Created.Unix()})
		}
		return out, err
	}},
	"users/add_tags": {required: []string{"userName", "tags"}, call: func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, q *userRequest) (any, error) {
		return noData, s.AddUserTags(ctx, c, q.UserName, q.Tags)
	}},
	"users/delete_tags": {required: []string{"userName"}, call: func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, q *userRequest) (any, error) {
		return noData, s.DeleteUserTags(ctx, c, q.UserName, q.TagKeys)
	}},
	"users/get_tags": {required: []string{"userName"}, call: func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, q *userRequest) (any, error) {
		tags, err := s.GetUserTags(c, q.UserName)
		if tags == nil {
			tags = map[string]string{}
		}
		return tags, err
	}},
	"users/list_with_tag": {required: []string{"tagKey"}, call: func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, q *userRequest) (any, error) {
		names, err := s.ListUsersWithTag(c, q.TagKey, q.TagValue)
		if names == nil {
			names = []string{}
		}
		return names, err
	}},
}
