package auth

import (
	"context"
)

// CheckCredential authenticates a credential typed into a form (the web
// console's sign-in) exactly as a token on the gRPC or REST port: the same
// verifier, cache, hashing pool, lockout and failure log.
func (a *Authenticator) CheckCredential(ctx context.Context, c Credential, call Call) (Identity, error) {
	return a.checkCredential(ctx, c, call, a.verifier.Verify)
}

// Lockouts lists the brute-force locks in force; none without a limiter.
func (v *Verifier) Lockouts() []Lockout {
	if v.limiter == nil {
		return nil
	}
	return v.limiter.Lockouts()
}

// Unlock lifts a lock (user "" for an address's own); false when there
// was none.
func (v *Verifier) Unlock(user, addr string) bool {
	return v.limiter != nil && v.limiter.Unlock(user, addr)
}
