package usermgmt

import (
	"context"
	"errors"
	"time"

	"github.com/authproxy/authproxy/auth"
	"github.com/authproxy/authproxy/credentials"
)

// API keys and lockouts have no Milvus API; they follow the rule of the
// password, which they stand beside: a user manages their own, and whoever
// may reset a user's password (UpdateUser on that user) manages that
// user's keys and lifts that user's lockouts. A lock on a whole address
// names no user: it needs UpdateUser on every user.

// APIKeyInfo is a key as it may be shown: never its secret or digest.
type APIKeyInfo struct {
	Name, User       string
	Created, Expires time.Time
}

// Locks are the brute-force locks in force (the verifier's limiter).
type Locks interface {
	Lockouts() []auth.Lockout
	Unlock(user, addr string) bool
}

// ListAPIKeys lists the keys of the users the caller manages.
func (s *Service) ListAPIKeys(c Caller) []APIKeyInfo {
	var out []APIKeyInfo
	for _, k := range s.store.Current().APIKeys() {
		if s.requireOn(c, privUpdate, k.User) == nil {
			out = append(out, APIKeyInfo{Name: k.Name, User: k.User, Created: k.Created, Expires: k.Expires})
		}
	}
	return out
}

// CreateAPIKey adds a key acting as user and returns its secret, which is
// shown once and kept nowhere: the store holds its digest.
func (s *Service) CreateAPIKey(ctx context.Context, c Caller, name, user string, lifetime time.Duration) (string, error) {
	return s.issueKey(ctx, "create_api_key", c, name, func() error { return s.requireOn(c, privUpdate, user) },
		func(set *credentials.Set, digest string, now time.Time) error {
			return set.CreateAPIKey(name, user, digest, now, lifetime)
		})
}

// RotateAPIKey gives a key a new secret and returns it; the old one is
// refused from the next call on.
func (s *Service) RotateAPIKey(ctx context.Context, c Caller, name string) (string, error) {
	return s.issueKey(ctx, "rotate_api_key", c, name, func() error { return s.requireOnKey(c, name) },
		func(set *credentials.Set, digest string, now time.Time) error {
			return set.RotateAPIKey(name, digest, now)
		})
}

// issueKey makes a new secret and stores its digest with put, once allowed
// says the caller may.
func (s *Service) issueKey(ctx context.Context, op string, c Caller, name string, allowed func() error,
	put func(set *credentials.Set, digest string, now time.Time) error) (string, error) {
	var secret string
	err := s.audit(op, c, name, func() error {
		if err := allowed(); err != nil {
			return err
		}
		key, err := credentials.NewAPIKey()
		if err != nil {
			return Internal(err)
		}
		now := s.now().UTC()
		if err := s.update(ctx, func(set *credentials.Set) error {
			return keyError(put(set, credentials.APIKeyDigest(key), now))
		}); err != nil {
			return err
		}
		secret = key
		return nil
	})
	return secret, err
}

// RevokeAPIKey removes a key.
func (s *Service) RevokeAPIKey(ctx context.Context, c Caller, name string) error {
	return s.audit("revoke_api_key", c, name, func() error {
		if err := s.requireOnKey(c, name); err != nil {
			return err
		}
		return s.update(ctx, func(set *credentials.Set) error {
			if !set.DeleteAPIKey(name) {
				return &Error{Kind: KindNotFound, Reason: "api key not found: " + name}
			}
			return nil
		})
	})
}

// requireOnKey checks that the caller manages the named key's user. A key
// the caller may not see reads as one that does not exist.
func (s *Service) requireOnKey(c Caller, name string) error {
	k, ok := s.store.Current().APIKey(name)
	if !ok || s.requireOn(c, privUpdate, k.User) != nil {
		return &Error{Kind: KindNotFound, Reason: "api key not found: " + name}
	}
	return nil
}

func keyError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, credentials.ErrAPIKeyExists):
		return &Error{Kind: KindExists, Reason: err.Error()}
	case errors.Is(err, credentials.ErrAPIKeyNotFound), errors.Is(err, credentials.ErrUserNotFound):
		return &Error{Kind: KindNotFound, Reason: err.Error()}
	}
	return &Error{Kind: KindInvalidParameter, Reason: err.Error()}
}

// Lockouts lists the locks in force that the caller may lift.
func (s *Service) Lockouts(c Caller) []auth.Lockout {
	if s.locks == nil {
		return nil
	}
	var out []auth.Lockout
	for _, l := range s.locks.Lockouts() {
		if s.mayUnlock(c, l.User) == nil {
			out = append(out, l)
		}
	}
	return out
}

// Unlock lifts the lock of user (or of the address, user "") from addr.
func (s *Service) Unlock(c Caller, user, addr string) error {
	return s.audit("unlock", c, user+"@"+addr, func() error {
		if err := s.mayUnlock(c, user); err != nil {
			return err
		}
		if s.locks == nil || !s.locks.Unlock(user, addr) {
			return &Error{Kind: KindNotFound, Reason: "no lockout of " + user + " from " + addr}
		}
		return nil
	})
}

func (s *Service) mayUnlock(c Caller, user string) error {
	if user == "" {
		return s.require(c, privUpdate)
	}
	return s.requireOn(c, privUpdate, user)
}

// SeesEveryUser reports whether the caller may list every user (what the
// SDKs' list_users needs): the console shows others' lockouts, denials
// and test logins only to them.
func (s *Service) SeesEveryUser(c Caller) bool {
	return s.require(c, privSelect) == nil
}
