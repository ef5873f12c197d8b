package auth

import (
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Reason classifies an authentication failure for logs and metrics; the
// client only ever sees Milvus's message, so a lockout is no oracle.
type Reason string

const (
	ReasonMissing       Reason = "missing"
	ReasonInvalidFormat Reason = "invalid_format"
	ReasonUnknownUser   Reason = "unknown_user"
	ReasonBadPassword   Reason = "bad_password"
	ReasonBadAPIKey     Reason = "bad_api_key"
	ReasonExpiredAPIKey Reason = "expired_api_key"
	ReasonLockedOut     Reason = "locked_out"
	ReasonCertMismatch  Reason = "certificate_mismatch"
	ReasonCertIdentity  Reason = "certificate_identity"
	ReasonCanceled      Reason = "canceled"
	// ReasonBusy: the hashing queue of this client was full.
	ReasonBusy Reason = "busy"
	// External identities.
	ReasonBadToken             Reason = "bad_token"
	ReasonExpiredToken         Reason = "expired_token"
	ReasonDirectoryUnavailable Reason = "directory_unavailable"
	ReasonProviderUnavailable  Reason = "provider_unavailable"
)

// MsgBusy is the refusal of a verification whose queue is full; it says
// nothing about the password, and the client may retry.
const MsgBusy = "authproxy: too many password checks waiting, retry later"

// The refusals of external identities that are not the caller's fault
// say so; an expired token says it has expired, which its holder can read
// from the token anyway.
const (
	MsgDirectoryUnavailable = "authproxy: the LDAP directory is unavailable, retry later"
	MsgProviderUnavailable  = "authproxy: the OpenID provider is unavailable, retry later"
	MsgExpiredToken         = "auth check failure, the token has expired"
)

// Failure is a refused authentication: Message is what the client sees.
type Failure struct {
	Reason  Reason
	Message string
	// User is the claimed user name, for logs; empty for API keys.
	User string
}

func (f *Failure) Error() string { return f.Message }

// Unavailable reports a refusal that says nothing about the credential
// (a full queue, a directory or provider that cannot answer): gRPC
// Unavailable, HTTP 503, and the client may retry.
func (f *Failure) Unavailable() bool {
	switch f.Reason {
	case ReasonBusy, ReasonDirectoryUnavailable, ReasonProviderUnavailable:
		return true
	}
	return false
}

// Status is the gRPC status of an authentication error: Unavailable for a
// refusal that says nothing about the credential, Unauthenticated with
// Milvus's message for the others, Internal for what is no refusal.
func Status(err error) error {
	var f *Failure
	switch {
	case !errors.As(err, &f):
		return status.Error(codes.Internal, "authproxy: authentication error")
	case f.Unavailable():
		return status.Error(codes.Unavailable, f.Message)
	}
	return status.Error(codes.Unauthenticated, f.Message)
}
