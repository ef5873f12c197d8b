package rest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/authproxy/authproxy/admission"
	"github.com/authproxy/authproxy/usermgmt"
)

// userRequest is the union of the /users/*, /roles/* and
// /privilege_groups/* bodies. Passwords are plain text: unlike gRPC, REST
// clients do not base64 them.
type userRequest struct {
	DBName             string   `json:"dbName"`
	UserName           string   `json:"userName"`
	Password           string   `json:"password"`
	NewPassword        string   `json:"newPassword"`
	RoleName           string   `json:"roleName"`
	ObjectType         string   `json:"objectType"`
	ObjectName         string   `json:"objectName"`
	Privilege          string   `json:"privilege"`
	CollectionName     string   `json:"collectionName"`
	PrivilegeGroupName string   `json:"privilegeGroupName"`
	Description        string   `json:"description"`
	Privileges         []string `json:"privileges"`
	// Row-level security (rowpolicy.go).
	PolicyName string            `json:"policyName"`
	Actions    []string          `json:"actions"`
	Roles      []string          `json:"roles"`
	UsingExpr  string            `json:"usingExpr"`
	CheckExpr  string            `json:"checkExpr"`
	Tags       map[string]string `json:"tags"`
	TagKeys    []string          `json:"tagKeys"`
	TagKey     string            `json:"tagKey"`
	TagValue   string            `json:"tagValue"`
}

// field returns the body field named as in JSON.
func (q *userRequest) field(name string) string {
	switch name {
	case "userName":
		return q.UserName
	case "password":
		return q.Password
	case "newPassword":
		return q.NewPassword
	case "roleName":
		return q.RoleName
	case "objectType":
		return q.ObjectType
	case "objectName":
		return q.ObjectName
	case "privilege":
		return q.Privilege
	case "privilegeGroupName":
		return q.PrivilegeGroupName
	case "privileges":
		return strings.Join(q.Privileges, ",")
	case "collectionName":
		return q.CollectionName
	case "policyName":
		return q.PolicyName
	case "actions":
		return strings.Join(q.Actions, ",")
	case "roles":
		return strings.Join(q.Roles, ",")
	case "tags":
		if len(q.Tags) > 0 {
			return "set"
		}
	case "tagKey":
		return q.TagKey
	}
	return ""
}

// userOp is one /users/* endpoint: the fields Milvus marks binding:"required"
// and the call into the shared Service.
type userOp struct {
	required []string
	call     func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, q *userRequest) (any, error)
}

// noData is the {} a successful change answers with.
var noData = struct{}{}

// userOps are the routes under /v2/vectordb/ that the proxy answers, by
// path (A10 of shared/reference/milvus-rbac.md).
var userOps = map[string]userOp{
	"users/list": {call: func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, _ *userRequest) (any, error) {
		names, err := s.ListUsers(c)
		if names == nil {
			names = []string{}
		}
		return names, err
	}},
	"users/describe": {required: []string{"userName"}, call: func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, q *userRequest) (any, error) {
		roles, _, err := s.DescribeUser(c, q.UserName)
		if roles == nil {
			roles = []string{} // an unknown user has no roles, as in Milvus
		}
		return roles, err
	}},
	"users/create": {required: []string{"userName", "password"}, call: func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, q *userRequest) (any, error) {
		return noData, s.CreateUser(ctx, c, q.UserName, q.Password, q.Description)
	}},
	"users/update_password": {required: []string{"userName", "password", "newPassword"}, call: func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, q *userRequest) (any, error) {
		return noData, s.UpdatePassword(ctx, c, q.UserName, q.Password, q.NewPassword)
	}},
	"users/drop": {required: []string{"userName"}, call: func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, q *userRequest) (any, error) {
		return noData, s.DropUser(ctx, c, q.UserName)
	}},
	"users/grant_role": {required: []string{"userName", "roleName"}, call: func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, q *userRequest) (any, error) {
		return noData, s.GrantRole(ctx, c, q.UserName, q.RoleName)
	}},
	"users/revoke_role": {required: []string{"userName", "roleName"}, call: func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, q *userRequest) (any, error) {
		return noData, s.RevokeRole(ctx, c, q.UserName, q.RoleName)
	}},
	"roles/list": {call: func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, _ *userRequest) (any, error) {
		infos, err := s.SelectRole(c, "", false)
		names := []string{}
		for _, i := range infos {
			names = append(names, i.Name)
		}
		return names, err
	}},
	"roles/describe": {required: []string{"roleName"}, call: func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, q *userRequest) (any, error) {
		grants, err := s.SelectGrant(c, q.RoleName, "", "", q.DBName)
		out := []map[string]string{}
		for _, g := range grants {
			out = append(out, map[string]string{"objectType": g.Object, "objectName": g.ObjectName,
				"privilege": g.Privilege, "dbName": g.DB, "grantor": g.Grantor})
		}
		return out, err
	}},
	"roles/create": {required: []string{"roleName"}, call: func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, q *userRequest) (any, error) {
		return noData, s.CreateRole(ctx, c, q.RoleName)
	}},
	"roles/drop": {required: []string{"roleName"}, call: func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, q *userRequest) (any, error) {
		return noData, s.DropRole(ctx, c, q.RoleName, false)
	}},
	"roles/grant_privilege":     privilegeOp(false, true),
	"roles/revoke_privilege":    privilegeOp(false, false),
	"roles/grant_privilege_v2":  privilegeOp(true, true),
	"roles/revoke_privilege_v2": privilegeOp(true, false),
	"privilege_groups/create": {required: []string{"privilegeGroupName"}, call: func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, q *userRequest) (any, error) {
		return noData, s.CreatePrivilegeGroup(ctx, c, q.PrivilegeGroupName)
	}},
	"privilege_groups/drop": {required: []string{"privilegeGroupName"}, call: func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, q *userRequest) (any, error) {
		return noData, s.DropPrivilegeGroup(ctx, c, q.PrivilegeGroupName)
	}},
	"privilege_groups/list": {call: func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, _ *userRequest) (any, error) {
		groups, err := s.ListPrivilegeGroups(c)
		out := []map[string]string{}
		for _, g := range groups {
			out = append(out, map[string]string{"privilegeGroupName": g.Name, "privileges": strings.Join(g.Privileges, ",")})
		}
		return map[string]any{"privilegeGroups": out}, err
	}},
	"privilege_groups/add_privileges_to_group":      groupOp(true),
	"privilege_groups/remove_privileges_from_group": groupOp(false),
}

// privilegeOp is a grant or revoke route, v1 or v2.
func privilegeOp(v2, grant bool) userOp {
	required := []string{"roleName", "objectType", "objectName", "privilege"}
	if v2 {
		required = []string{"roleName", "privilege"}
	}
	return userOp{required: required, call: func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, q *userRequest) (any, error) {
		p := usermgmt.Privilege{Role: q.RoleName, Object: q.ObjectType, ObjectName: q.ObjectName, DB: q.DBName, Privilege: q.Privilege, V2: v2}
		if v2 {
			p.ObjectName = q.CollectionName
		}
		return noData, s.GrantPrivilege(ctx, c, p, grant)
	}}
}

// groupOp adds privileges to a group, or removes them.
func groupOp(add bool) userOp {
	return userOp{required: []string{"privilegeGroupName", "privileges"}, call: func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, q *userRequest) (any, error) {
		return noData, s.OperatePrivilegeGroup(ctx, c, q.PrivilegeGroupName, q.Privileges, add)
	}}
}

// serveUsers answers the user, role and privilege-group routes
// (/v2/vectordb/<name>) from the credential store; none ever reaches the
// backend.
func (h *handler) serveUsers(w http.ResponseWriter, r *http.Request, name string, call *admission.Call) {
	op, ok := userOps[name]
	if !ok {
		op, ok = rowSecurityOps[name]
	}
	if !ok {
		writeError(w, http.StatusNotFound, codeUnexpected,
			fmt.Sprintf("unknown operation %q: authproxy answers the users/, roles/ and privilege_groups/ routes of Milvus's REST API v2, and row_policies/", name))
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, codeUnexpected, "method "+r.Method+" not allowed: these endpoints take POST")
		return
	}
	var q userRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxUserBodyBytes)).Decode(&q); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			h.tooLarge(w, r, tooBig.Limit)
		case errors.Is(err, io.EOF):
			writeError(w, http.StatusOK, codeIncorrectFormat, msgIncorrectFormat+", the request body should be nil, however {} is valid")
		default:
			writeError(w, http.StatusOK, codeIncorrectFormat, msgIncorrectFormat+", error: "+err.Error())
		}
		return
	}
	if missing := missingFields(&q, op.required); missing != "" {
		writeError(w, http.StatusOK, codeMissingParameters, msgMissingParameters+", error: "+missing)
		return
	}
	c := usermgmt.Caller{Principal: call.Principal(), Authenticated: call.Authenticated, Database: q.DBName, Peer: r.RemoteAddr}
	if c.Database == "" {
		c.Database = r.Header.Get("DB-Name")
	}
	data, err := op.call(r.Context(), h.users, c, &q)
	if err != nil {
		writeUserError(w, err)
		return
	}
	writeReply(w, http.StatusOK, reply{Code: codeSuccess, Data: data})
}

// missingFields words empty required fields as gin's validator does.
func missingFields(q *userRequest, required []string) string {
	var msgs []string
	for _, name := range required {
		if q.field(name) == "" {
			msgs = append(msgs, fmt.Sprintf("Key: '%s' Error:Field validation for '%s' failed on the 'required' tag", name, name))
		}
	}
	return strings.Join(msgs, "\n")
}

// writeUserError answers as Milvus: a refused change is HTTP 200 with the
// merr code; a failed privilege check is HTTP 403 carrying the gRPC
// PermissionDenied status text, whose merr code is 65535 (checkAuthorizationV2
// in internal/distributed/proxy/httpserver/handler_v2.go).
func writeUserError(w http.ResponseWriter, err error) {
	var e *usermgmt.Error
	switch {
	case !errors.As(err, &e):
		writeError(w, http.StatusOK, codeUnexpected, usermgmt.Internal(err).Reason)
	case e.Kind == usermgmt.KindPermissionDenied:
		writeError(w, http.StatusForbidden, codeUnexpected, status.Error(codes.PermissionDenied, e.Reason).Error())
	default:
		writeError(w, http.StatusOK, e.Code(), e.Reason)
	}
}
