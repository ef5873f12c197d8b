package auth

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
)

// MsgBusy is the refusal of a verification whose queue is full; it says
// nothing about the password, and the client may retry.
const MsgBusy = "authproxy: too many password checks waiting, retry later"

// Failure is a refused authentication: Message is what the client sees.
type Failure struct {
	Reason  Reason
	Message string
	// User is the claimed user name, for logs; empty for API keys.
	User string
}

func (f *Failure) Error() string { return f.Message }
