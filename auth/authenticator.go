package auth

import (
	"context"
	"crypto/x509"
	"errors"
	"sync/atomic"

	"github.com/authproxy/authproxy/edge"
)

// CertIdentityFunc maps a verified client certificate to a user name.
type CertIdentityFunc func(cert *x509.Certificate) (string, error)

type identityKey struct{}

// WithIdentity returns ctx carrying the caller's identity.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// FromContext returns the caller's identity, if the call was authenticated.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

type slotKey struct{}

// WithIdentitySlot returns a context in which the admission step records
// the identity it establishes (RecordIdentity), for interceptors that run
// before it (access log).
func WithIdentitySlot(ctx context.Context) (context.Context, *Identity) {
	slot := new(Identity)
	return context.WithValue(ctx, slotKey{}, slot), slot
}

// RecordIdentity fills the slot of WithIdentitySlot in ctx, if any.
func RecordIdentity(ctx context.Context, id Identity) {
	if slot, ok := ctx.Value(slotKey{}).(*Identity); ok {
		*slot = id
	}
}

// Authenticator checks the credentials of gRPC and REST calls for the
// admission step; every refusal goes to the one failure log.
type Authenticator struct {
	verifier     *Verifier
	failures     *edge.FailureLog
	enabled      atomic.Bool
	certIdentity atomic.Pointer[CertIdentityFunc]
}

// NewAuthenticator returns an Authenticator; enabled mirrors
// common.security.authorizationEnabled and can change live.
func NewAuthenticator(v *Verifier, failures *edge.FailureLog, enabled bool) *Authenticator {
	a := &Authenticator{verifier: v, failures: failures}
	a.enabled.Store(enabled)
	return a
}

// SetEnabled turns token checking on or off for new calls.
func (a *Authenticator) SetEnabled(on bool) { a.enabled.Store(on) }

// Enabled reports whether token checking is on.
func (a *Authenticator) Enabled() bool { return a.enabled.Load() }

// SetCertIdentity sets (or, with nil, clears) how client certificates map to users.
func (a *Authenticator) SetCertIdentity(f CertIdentityFunc) {
	if f == nil {
		a.certIdentity.Store(nil)
		return
	}
	a.certIdentity.Store(&f)
}

// Verifier returns the verifier, for the REST side.
func (a *Authenticator) Verifier() *Verifier { return a.verifier }

// Call says where a credential was presented, for the failure log.
type Call struct {
	Protocol string // grpc or rest
	Target   string // method or path
	Peer     string // client address, without the port
	Cert     *x509.Certificate
}

// CheckToken authenticates a gRPC token (the base64 metadata value; ""
// when absent) and the call's verified client certificate, if any.
func (a *Authenticator) CheckToken(ctx context.Context, token string, call Call) (Identity, error) {
	return a.checkToken(ctx, token, call, a.verifier.Verify)
}

// errWouldWait stands for a check QuickCheckToken leaves to CheckToken.
var errWouldWait = errors.New("the check would wait")

// QuickCheckToken is CheckToken for a caller that must not wait (the frame
// relay's connection reader): done is false when the check needs a hash,
// a bind, a key fetch or a refusal's wait, which CheckToken then does.
func (a *Authenticator) QuickCheckToken(ctx context.Context, token string, call Call) (id Identity, err error, done bool) {
	id, err = a.checkToken(ctx, token, call, func(_ context.Context, c Credential, peer string) (Identity, error) {
		if id, ok := a.verifier.Cached(c, peer); ok {
			return id, nil
		}
		return Identity{}, errWouldWait
	})
	if errors.Is(err, errWouldWait) {
		return Identity{}, nil, false
	}
	return id, err, true
}

type verifyFunc func(ctx context.Context, c Credential, peer string) (Identity, error)

func (a *Authenticator) checkToken(ctx context.Context, token string, call Call, verify verifyFunc) (Identity, error) {
	if token == "" {
		return a.checkCertOnly(call)
	}
	c, err := ParseToken(token)
	if err != nil {
		return a.refused(call, err)
	}
	return a.checkCredential(ctx, c, call, verify)
}

// CheckHTTP authenticates a REST request from its Authorization header (""
// when absent) and the call's verified client certificate, if any.
func (a *Authenticator) CheckHTTP(ctx context.Context, header string, call Call) (Identity, error) {
	if header == "" {
		return a.checkCertOnly(call)
	}
	c, err := ParseHTTPAuthorization(header)
	if err != nil {
		return a.refused(call, err)
	}
	return a.checkCredential(ctx, c, call, a.verifier.Verify)
}

func (a *Authenticator) checkCertOnly(call Call) (Identity, error) {
	if u := a.certUser(call.Cert); u != "" {
		a.verifier.metrics.outcomes.WithLabelValues("success", "certificate").Inc()
		return Identity{User: u, Via: "certificate", Source: SourceLocal}, nil
	}
	return a.refused(call, &Failure{Reason: ReasonMissing, Message: MsgMissing})
}

// certUser is the user a verified client certificate names, if it maps to
// one that exists; "" otherwise.
func (a *Authenticator) certUser(cert *x509.Certificate) string {
	f := a.certIdentity.Load()
	if f == nil || cert == nil {
		return ""
	}
	if u, err := (*f)(cert); err == nil && a.verifier.UserExists(u) {
		return u
	}
	return ""
}

func (a *Authenticator) checkCredential(ctx context.Context, c Credential, call Call, verify verifyFunc) (Identity, error) {
	id, err := verify(ctx, c, call.Peer)
	if errors.Is(err, errWouldWait) {
		return Identity{}, err
	}
	if err != nil {
		// The verifier counted it; only the log is left.
		if f, ok := err.(*Failure); ok {
			a.failures.Record(edge.Refusal{Protocol: call.Protocol, Target: call.Target, User: f.User, Peer: call.Peer, Reason: string(f.Reason)})
		}
		return Identity{}, err
	}
	if certUser := a.certUser(call.Cert); certUser != "" && id.User != certUser {
		return a.refused(call, &Failure{Reason: ReasonCertMismatch, User: edge.Bound(id.User),
			Message: "auth check failure, the token's user does not match the client certificate"})
	}
	return id, nil
}

// refused counts and logs a refusal decided here rather than by the verifier.
func (a *Authenticator) refused(call Call, err error) (Identity, error) {
	var f *Failure
	if errors.As(err, &f) {
		a.verifier.metrics.outcomes.WithLabelValues("failure", string(f.Reason)).Inc()
		a.failures.Record(edge.Refusal{Protocol: call.Protocol, Target: call.Target, User: f.User, Peer: call.Peer, Reason: string(f.Reason)})
	}
	return Identity{}, err
}
