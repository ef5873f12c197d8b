package credentials

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Refusals of API-key changes, shared by the CLI and the console.
var (
	ErrAPIKeyExists   = errors.New("api key already exists")
	ErrAPIKeyNotFound = errors.New("api key not found")
	ErrUserNotFound   = errors.New("user not found")
)

// CreateAPIKey adds a key named name acting as user, with the digest of its
// secret; lifetime 0 never expires.
func (s *Set) CreateAPIKey(name, user, digest string, now time.Time, lifetime time.Duration) error {
	if _, exists := s.User(user); !exists {
		return fmt.Errorf("%w: %s", ErrUserNotFound, user)
	}
	if _, exists := s.keys[name]; exists {
		return fmt.Errorf("%w: %s", ErrAPIKeyExists, name)
	}
	k := &APIKey{Name: name, User: user, Digest: digest, Created: now}
	if lifetime > 0 {
		k.Expires = now.Add(lifetime)
	}
	return s.PutAPIKey(k)
}

// RotateAPIKey gives the named key a new secret's digest: it keeps its name
// and user, and a key that expires gets its lifetime again from now. The
// old secret is refused from the next call on.
func (s *Set) RotateAPIKey(name, digest string, now time.Time) error {
	old, ok := s.keys[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrAPIKeyNotFound, name)
	}
	next := &APIKey{Name: old.Name, User: old.User, Digest: digest, Created: now}
	if !old.Expires.IsZero() {
		next.Expires = now.Add(old.Expires.Sub(old.Created))
	}
	return s.PutAPIKey(next)
}

// APIKey returns the named key.
func (s *Set) APIKey(name string) (*APIKey, bool) {
	k, ok := s.keys[name]
	return k, ok
}

// ParseLifetime reads a key's lifetime: a Go duration, or a number of days
// ("30d"). Empty is no expiry.
func ParseLifetime(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	bad := fmt.Errorf("%q: want a positive number of days (30d) or a duration (12h)", s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 {
			return 0, bad
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, bad
	}
	return d, nil
}
