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
	KindPermissionDenied
	KindReadOnly
)

// Error is a refused request. Reason is the message the client sees.
type Error struct {
	Kind   Kind
	Reason string
}

func (e *Error) Error() string { return e.Reason }

func internal(err error) error {
	return &Error{Kind: KindInternal, Reason: "authproxy: " + err.Error()}
}

// Code is Milvus's merr code for the failure, used in commonpb.Status.code
// and in the REST envelope.
func (e *Error) Code() int32 {
	switch e.Kind {
	case KindInvalidParameter:
		return 1100 // ErrParameterInvalid
	case KindWrongOldPassword:
		return 1400 // ErrPrivilegeNotAuthenticated
	case KindRootUndeletable, KindPermissionDenied:
		return 1401 // ErrPrivilegeNotPermitted
	default:
		return 65535 // ErrServiceInternal-style catch-all, as merr codes unknown errors
	}
}

// LegacyCode is the deprecated commonpb.ErrorCode older SDKs read.
func (e *Error) LegacyCode() commonpb.ErrorCode {
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
	case e.Kind == KindInvalidParameter, e.Kind == KindExists, e.Kind == KindNotFound, e.Kind == KindWrongOldPassword, e.Kind == KindRootUndeletable:
		return "invalid"
	default:
		return "failed"
	}
}
