package auth

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
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

// WithIdentitySlot returns a context in which the authenticator records the
// identity it establishes, for interceptors that run before it (access log).
func WithIdentitySlot(ctx context.Context) (context.Context, *Identity) {
	slot := new(Identity)
	return context.WithValue(ctx, slotKey{}, slot), slot
}

// Authenticator authenticates gRPC calls before they are answered or forwarded.
type Authenticator struct {
	verifier     *Verifier
	logger       *slog.Logger
	enabled      atomic.Bool
	certIdentity atomic.Pointer[CertIdentityFunc]
}

// NewAuthenticator returns an Authenticator; enabled mirrors
// common.security.authorizationEnabled and can change live.
func NewAuthenticator(v *Verifier, logger *slog.Logger, enabled bool) *Authenticator {
	a := &Authenticator{verifier: v, logger: logger}
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

// UnaryInterceptor authenticates unary calls of registered services.
func (a *Authenticator) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := a.authenticate(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor authenticates streams, which includes every forwarded call.
func (a *Authenticator) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := a.authenticate(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		if ctx == ss.Context() {
			return handler(srv, ss)
		}
		return handler(srv, &contextStream{ServerStream: ss, ctx: ctx})
	}
}

type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextStream) Context() context.Context { return s.ctx }

func (a *Authenticator) authenticate(ctx context.Context, method string) (context.Context, error) {
	if !a.enabled.Load() {
		return ctx, nil
	}
	p, _ := peer.FromContext(ctx)
	addr := peerHost(p)
	// Only the one key: copying all metadata here would be a second full
	// copy per call (the director makes the other).
	var token string
	if v := metadata.ValueFromIncomingContext(ctx, "authorization"); len(v) > 0 {
		token = v[0]
	}
	id, err := a.Check(ctx, token, verifiedCert(p), addr)
	if err != nil {
		var f *Failure
		if !errors.As(err, &f) {
			return nil, status.Error(codes.Internal, "authproxy: authentication error")
		}
		a.logger.Warn("authentication failed", "method", method, "user", f.User, "peer", addr, "reason", f.Reason)
		return nil, status.Error(codes.Unauthenticated, f.Message)
	}
	if slot, ok := ctx.Value(slotKey{}).(*Identity); ok {
		*slot = id
	}
	return WithIdentity(ctx, id), nil
}

// Check authenticates a raw token (the base64 metadata value; "" when
// absent) and an optional verified client certificate. REST calls it too.
func (a *Authenticator) Check(ctx context.Context, token string, cert *x509.Certificate, addr string) (Identity, error) {
	certUser := a.certUser(cert)
	if token == "" {
		if certUser != "" {
			a.verifier.metrics.outcomes.WithLabelValues("success", "certificate").Inc()
			return Identity{User: certUser, Via: "certificate"}, nil
		}
		a.verifier.metrics.outcomes.WithLabelValues("failure", string(ReasonMissing)).Inc()
		return Identity{}, &Failure{Reason: ReasonMissing, Message: MsgMissing}
	}
	c, err := ParseToken(token)
	if err != nil {
		a.verifier.metrics.outcomes.WithLabelValues("failure", string(ReasonInvalidFormat)).Inc()
		return Identity{}, err
	}
	return a.checkCredential(ctx, c, certUser, addr)
}

// CheckHTTP authenticates a REST request from its Authorization header ("" when
// absent) and an optional verified client certificate.
func (a *Authenticator) CheckHTTP(ctx context.Context, header string, cert *x509.Certificate, addr string) (Identity, error) {
	if header == "" {
		return a.Check(ctx, "", cert, addr)
	}
	c, err := ParseHTTPAuthorization(header)
	if err != nil {
		var f *Failure
		if errors.As(err, &f) {
			a.verifier.metrics.outcomes.WithLabelValues("failure", string(f.Reason)).Inc()
		}
		return Identity{}, err
	}
	return a.checkCredential(ctx, c, a.certUser(cert), addr)
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

func (a *Authenticator) checkCredential(ctx context.Context, c Credential, certUser, addr string) (Identity, error) {
	id, err := a.verifier.Verify(ctx, c, addr)
	if err != nil {
		return Identity{}, err
	}
	if certUser != "" && id.User != certUser {
		a.verifier.metrics.outcomes.WithLabelValues("failure", string(ReasonCertMismatch)).Inc()
		return Identity{}, &Failure{Reason: ReasonCertMismatch, User: id.User,
			Message: "auth check failure, the token's user does not match the client certificate"}
	}
	return id, nil
}

func verifiedCert(p *peer.Peer) *x509.Certificate {
	if p == nil {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return nil
	}
	return info.State.VerifiedChains[0][0]
}
