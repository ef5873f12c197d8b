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

	"github.com/authproxy/authproxy/usermgmt"
)

// userRequest is the union of the /users/* bodies. Passwords are plain text:
// unlike gRPC, REST clients do not base64 them.
type userRequest struct {
	DBName      string `json:"dbName"`
	UserName    string `json:"userName"`
	Password    string `json:"password"`
	NewPassword string `json:"newPassword"`
	RoleName    string `json:"roleName"`
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
	default: // "roleName"
		return q.RoleName
	}
}

// userOp is one /users/* endpoint: the fields Milvus marks binding:"required"
// and the call into the shared Service.
type userOp struct {
	required []string
	call     func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, q *userRequest) (any, error)
}

// noData is the {} a successful change answers with.
var noData = struct{}{}

var userOps = map[string]userOp{
	"list": {call: func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, _ *userRequest) (any, error) {
		names, err := s.ListUsers(c)
		if names == nil {
			names = []string{}
		}
		return names, err
	}},
	"describe": {required: []string{"userName"}, call: func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, q *userRequest) (any, error) {
		roles, _, err := s.DescribeUser(c, q.UserName)
		if roles == nil {
			roles = []string{} // an unknown user has no roles, as in Milvus
		}
		return roles, err
	}},
	"create": {required: []string{"userName", "password"}, call: func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, q *userRequest) (any, error) {
		return noData, s.CreateUser(ctx, c, q.UserName, q.Password)
	}},
	"update_password": {required: []string{"userName", "password", "newPassword"}, call: func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, q *userRequest) (any, error) {
		return noData, s.UpdatePassword(ctx, c, q.UserName, q.Password, q.NewPassword)
	}},
	"drop": {required: []string{"userName"}, call: func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, q *userRequest) (any, error) {
		return noData, s.DropUser(c, q.UserName)
	}},
	"grant_role": {required: []string{"userName", "roleName"}, call: func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, q *userRequest) (any, error) {
		return noData, s.GrantRole(c, q.UserName, q.RoleName)
	}},
	"revoke_role": {required: []string{"userName", "roleName"}, call: func(ctx context.Context, s *usermgmt.Service, c usermgmt.Caller, q *userRequest) (any, error) {
		return noData, s.RevokeRole(c, q.UserName, q.RoleName)
	}},
}

// serveUsers answers /v2/vectordb/users/<name> from the credential store; no
// users call ever reaches the backend.
func (h *handler) serveUsers(w http.ResponseWriter, r *http.Request, name string, id identity) {
	op, ok := userOps[name]
	if !ok {
		writeError(w, http.StatusNotFound, codeUnexpected,
			fmt.Sprintf("unknown user operation %q: authproxy answers list, describe, create, update_password, drop, grant_role and revoke_role", name))
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, codeUnexpected, "method "+r.Method+" not allowed: users endpoints take POST")
		return
	}
	var q userRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxUserBodyBytes)).Decode(&q); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			h.tooLarge(w, tooBig.Limit)
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
	c := usermgmt.Caller{User: id.user, Authenticated: id.authenticated, Database: q.DBName, Peer: r.RemoteAddr}
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
