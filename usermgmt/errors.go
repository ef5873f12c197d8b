package usermgmt

import (
	"errors"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
)

// Kind classifies a refused user-management request.
type Kind int

const (
	KindInternal Kind = iota
	KindInvalidParameter
	KindExists
	KindNotFound
	KindWrongOldPassword
	KindRootUndeletable
	// KindNotPermitted is ErrPrivilegeNotPermitted in the reply's status
	// (dropping a built-in role), not the gRPC refusal of a privilege.
	KindNotPermitted
	KindPermissionDenied
	KindReadOnly
	KindUnavailable
)

// Error is a refused request.
type Error struct {
	Kind Kind
	// Reason is the message the client sees.
	Reason string
	// Detail is the underlying cause, for the proxy's log only: it may name
	// the credential file and carry OS error text, which clients never see.
	Detail error
	// Legacy, when set, is the commonpb.ErrorCode of Milvus's RBAC calls
	// (CreateRoleFailure, OperatePrivilegeFailure, ...).
	Legacy commonpb.ErrorCode
	// MilvusCode, when set, is the merr code Milvus answers with, where
	// Kind alone does not say it (802, 1402 for names).
	MilvusCode int32
}

func (e *Error) Error() string { return e.Reason }

// Internal wraps an unexpected failure: the client learns that the change
// was not made, the log gets the cause.
func Internal(err error) *Error {
	return &Error{Kind: KindInternal, Reason: "authproxy: internal error, nothing was changed; the proxy's log has the cause", Detail: err}
}

// Code is Milvus's merr code for the failure, used in commonpb.Status.code
// and in the REST envelope.
func (e *Error) Code() int32 {
	if e.MilvusCode != 0 {
		return e.MilvusCode
	}
	switch e.Kind {
	case KindInvalidParameter:
		return 1100 // ErrParameterInvalid
	case KindWrongOldPassword:
		return 1400 // ErrPrivilegeNotAuthenticated
	case KindRootUndeletable, KindNotPermitted, KindPermissionDenied:
		return 1401 // ErrPrivilegeNotPermitted
	case KindUnavailable:
		return 2 // ErrServiceNotReady
	default:
		return 65535 // ErrServiceInternal-style catch-all, as merr codes unknown errors
	}
}

// LegacyCode is the deprecated commonpb.ErrorCode older SDKs read.
func (e *Error) LegacyCode() commonpb.ErrorCode {
	if e.Legacy != commonpb.ErrorCode_Success {
		return e.Legacy
	}
	switch e.Kind {
	case KindInvalidParameter:
		return commonpb.ErrorCode_IllegalArgument
	case KindExists:
		return commonpb.ErrorCode_CreateCredentialFailure
	case KindWrongOldPassword, KindNotFound:
		return commonpb.ErrorCode_UpdateCredentialFailure
	case KindRootUndeletable:
		return commonpb.ErrorCode_DeleteCredentialFailure
	case KindPermissionDenied:
		return commonpb.ErrorCode_PermissionDenied
	default:
		return commonpb.ErrorCode_UnexpectedError
	}
}

func resultOf(err error) string {
	var e *Error
	switch {
	case err == nil:
		return "success"
	case !errors.As(err, &e):
		return "failed"
	case e.Kind == KindPermissionDenied:
		return "denied"
	case e.Kind == KindInvalidParameter, e.Kind == KindExists, e.Kind == KindNotFound, e.Kind == KindWrongOldPassword, e.Kind == KindRootUndeletable,
		e.Kind == KindNotPermitted:
		return "invalid"
	default:
		return "failed"
	}
}
