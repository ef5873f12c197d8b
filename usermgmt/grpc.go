package usermgmt

import (
	"context"
	"encoding/base64"
	"errors"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/authproxy/authproxy/auth"
)

// milvusService is MilvusService's full name: registering a partial copy of
// it routes these methods here and leaves every other method unknown to the
// server, hence forwarded.
const milvusService = "milvus.proto.milvus.MilvusService"

// RegisterGRPC registers the user API on s.
func (s *Service) RegisterGRPC(server *grpc.Server) {
	methods := []grpc.StreamDesc{
		unary("CreateCredential", func(ctx context.Context, r *milvuspb.CreateCredentialRequest) (*commonpb.Status, error) {
			password, err := decodePassword(r.GetPassword())
			if err == nil {
				description, _ := unknownString(r, createDescriptionField)
				err = s.CreateUser(ctx, callerOf(ctx), r.GetUsername(), password, description)
			}
			return statusReply(err)
		}),
		unary("UpdateCredential", func(ctx context.Context, r *milvuspb.UpdateCredentialRequest) (*commonpb.Status, error) {
			description, hasDescription := unknownString(r, updateDescriptionField)
			if hasDescription && r.GetNewPassword() == "" {
				// update_user with a description and no new password.
				return statusReply(s.SetDescription(ctx, callerOf(ctx), r.GetUsername(), description))
			}
			oldPassword, err := decodePassword(r.GetOldPassword())
			if err != nil {
				return statusReply(err)
			}
			newPassword, err := decodePassword(r.GetNewPassword())
			if err == nil {
				err = s.UpdatePassword(ctx, callerOf(ctx), r.GetUsername(), oldPassword, newPassword)
			}
			if err == nil && hasDescription {
				err = s.SetDescription(ctx, callerOf(ctx), r.GetUsername(), description)
			}
			return statusReply(err)
		}),
		unary("DeleteCredential", func(ctx context.Context, r *milvuspb.DeleteCredentialRequest) (*commonpb.Status, error) {
			return statusReply(s.DropUser(ctx, callerOf(ctx), r.GetUsername()))
		}),
		unary("ListCredUsers", func(ctx context.Context, _ *milvuspb.ListCredUsersRequest) (*milvuspb.ListCredUsersResponse, error) {
			names, err := s.ListUsers(callerOf(ctx))
			st, gerr := statusReply(err)
			return &milvuspb.ListCredUsersResponse{Status: st, Usernames: names}, gerr
		}),
		unary("SelectUser", func(ctx context.Context, r *milvuspb.SelectUserRequest) (*milvuspb.SelectUserResponse, error) {
			c := callerOf(ctx)
			names := []string{r.GetUser().GetName()}
			if r.GetUser() == nil {
				all, err := s.SelectAllUsers(c)
				if err != nil {
					st, gerr := statusReply(err)
					return &milvuspb.SelectUserResponse{Status: st}, gerr
				}
				names = all
			}
			resp := &milvuspb.SelectUserResponse{}
			for _, name := range names {
				roles, found, err := s.DescribeUser(c, name)
				if err != nil {
					st, gerr := statusReply(err)
					return &milvuspb.SelectUserResponse{Status: st}, gerr
				}
				if !found {
					continue
				}
				res := &milvuspb.UserResult{User: &milvuspb.UserEntity{Name: name}}
				if d := s.Description(name); d != "" {
					setUnknownString(res, resultDescriptionField, d)
				}
				if r.GetIncludeRoleInfo() {
					for _, role := range roles {
						res.Roles = append(res.Roles, &milvuspb.RoleEntity{Name: role})
					}
				}
				resp.Results = append(resp.Results, res)
			}
			resp.Status, _ = statusReply(nil)
			return resp, nil
		}),
		unary("OperateUserRole", func(ctx context.Context, r *milvuspb.OperateUserRoleRequest) (*commonpb.Status, error) {
			var err error
			switch r.GetType() {
			case milvuspb.OperateUserRoleType_AddUserToRole:
				err = s.GrantRole(ctx, callerOf(ctx), r.GetUsername(), r.GetRoleName())
			case milvuspb.OperateUserRoleType_RemoveUserFromRole:
				err = s.RevokeRole(ctx, callerOf(ctx), r.GetUsername(), r.GetRoleName())
			default:
				err = &Error{Kind: KindInvalidParameter, Reason: "invalid operate user role type: invalid parameter"}
			}
			return statusReply(err)
		}),
		unary("SelectRole", func(ctx context.Context, r *milvuspb.SelectRoleRequest) (*milvuspb.SelectRoleResponse, error) {
			infos, err := s.SelectRole(callerOf(ctx), r.GetRole().GetName(), r.GetIncludeUserInfo())
			st, gerr := statusReply(err)
			resp := &milvuspb.SelectRoleResponse{Status: st}
			for _, info := range infos {
				res := &milvuspb.RoleResult{Role: &milvuspb.RoleEntity{Name: info.Name}}
				for _, u := range info.Users {
					res.Users = append(res.Users, &milvuspb.UserEntity{Name: u})
				}
				resp.Results = append(resp.Results, res)
			}
			return resp, gerr
		}),
	}
	methods = append(methods, s.rbacMethods()...)
	methods = append(methods, s.rowPolicyMethods()...)
	server.RegisterService(&grpc.ServiceDesc{
		ServiceName: milvusService,
		HandlerType: (*any)(nil),
		Streams:     methods,
	}, s)
}

// MaxRequestBytes bounds a user-management request: a few names and
// passwords of at most 256 bytes each. REST applies it to its bodies too.
const MaxRequestBytes = 64 << 10

// unary serves a unary method as a stream handler. grpc-go reads a unary
// request whole (up to the server's limit, 256 MiB by default) before any
// interceptor runs; a stream handler runs after the stream interceptors,
// so the caller is authenticated before the body is read, and the body is
// then refused past MaxRequestBytes. Both stream flags must be set: grpc-go
// treats a StreamDesc with neither as unary and skips the stream
// interceptors, authentication included.
func unary[Req any, PReq interface {
	*Req
	proto.Message
}, Resp any](name string, h func(context.Context, PReq) (Resp, error)) grpc.StreamDesc {
	return grpc.StreamDesc{
		StreamName:    name,
		ClientStreams: true,
		ServerStreams: true,
		Handler: func(_ any, ss grpc.ServerStream) error {
			req := PReq(new(Req))
			if err := ss.RecvMsg(req); err != nil {
				return err
			}
			if n := proto.Size(req); n > MaxRequestBytes {
				return status.Errorf(codes.ResourceExhausted, "authproxy: a %s request may carry %d bytes, got %d", name, MaxRequestBytes, n)
			}
			resp, err := h(ss.Context(), req)
			if err != nil {
				return err
			}
			return ss.SendMsg(resp)
		},
	}
}

// callerOf builds the Caller from what the admission step established.
func callerOf(ctx context.Context) Caller {
	var c Caller
	if id, ok := auth.FromContext(ctx); ok {
		c.Principal, c.Authenticated = id.Principal(), true
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if db := md.Get("dbname"); len(db) > 0 {
			c.Database = db[0]
		}
	}
	c.Peer = auth.ClientAddr(ctx)
	return c
}

// decodePassword undoes the SDKs' base64 of passwords in credential RPCs.
func decodePassword(b64 string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", &Error{Kind: KindInvalidParameter, Reason: "decode password fail: " + err.Error()}
	}
	return string(raw), nil
}

// statusReply turns a Service error into Milvus's reply: business errors are
// a failing commonpb.Status inside an OK reply; a permission failure is a
// gRPC PERMISSION_DENIED status, as Milvus's RBAC interceptor returns.
func statusReply(err error) (*commonpb.Status, error) {
	if err == nil {
		return &commonpb.Status{ErrorCode: commonpb.ErrorCode_Success}, nil
	}
	var e *Error
	if !errors.As(err, &e) {
		e = Internal(err)
	}
	if e.Kind == KindPermissionDenied {
		return nil, status.Error(codes.PermissionDenied, e.Reason)
	}
	return &commonpb.Status{ErrorCode: e.LegacyCode(), Code: e.Code(), Reason: e.Reason}, nil
}

// User descriptions (pymilvus 2.6 and 3.0, the Node SDK 3.0) are fields of
// milvus-proto newer than the linked go-api v2.6.18, the newest the Go
// module proxy serves. Their numbers, from that newer milvus.proto (as the
// Node SDK 3.0.6 bundles it), are read and written as unknown fields.
const (
	createDescriptionField protowire.Number = 6 // CreateCredentialRequest.description
	updateDescriptionField protowire.Number = 7 // UpdateCredentialRequest.description
	resultDescriptionField protowire.Number = 3 // UserResult.description
)

// unknownString reads the last occurrence of string field num among m's
// unknown fields.
func unknownString(m proto.Message, num protowire.Number) (string, bool) {
	b := m.ProtoReflect().GetUnknown()
	var out string
	var found bool
	for len(b) > 0 {
		n, typ, tl := protowire.ConsumeTag(b)
		if tl < 0 {
			return out, found
		}
		b = b[tl:]
		if n == num && typ == protowire.BytesType {
			v, vl := protowire.ConsumeString(b)
			if vl < 0 {
				return out, found
			}
			out, found = v, true
			b = b[vl:]
			continue
		}
		vl := protowire.ConsumeFieldValue(n, typ, b)
		if vl < 0 {
			return out, found
		}
		b = b[vl:]
	}
	return out, found
}

// setUnknownString adds string field num to m's unknown fields.
func setUnknownString(m proto.Message, num protowire.Number, v string) {
	r := m.ProtoReflect()
	b := protowire.AppendTag(r.GetUnknown(), num, protowire.BytesType)
	r.SetUnknown(protowire.AppendString(b, v))
}
