package credentials

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// User is one account. PasswordHash is an argon2id PHC string or an imported
// bcrypt hash (see VerifyPassword).
type User struct {
	Name         string
	PasswordHash string
	Roles        []string // built-in or custom; RolePublic is implicit
	Description  string
	// Tags are the user's row-security attributes ($current_user_tags);
	// nil when it has none.
	Tags    map[string]string
	Created time.Time
	Updated time.Time
}

// APIKey binds the SHA-256 digest of a secret key to a user. The key itself is
// never stored.
type APIKey struct {
	Name    string // unique label, for listing and revocation
	User    string // the user the key authenticates as
	Digest  string // APIKeyDigest(key)
	Created time.Time
	// Expires, if set, is when the key stops authenticating.
	Expires time.Time
}

// Expired reports whether the key no longer authenticates at now.
func (k *APIKey) Expired(now time.Time) bool { return !k.Expires.IsZero() && !now.Before(k.Expires) }

// ErrReadOnly is wrapped by Update errors when the backing storage refuses
// writes (read-only filesystem or mount, missing permission).
var ErrReadOnly = errors.New("credential store is read-only")

// Store holds the credential Set and persists changes to it.
type Store interface {
	// Current returns the latest published Set; cheap and safe for concurrent
	// readers. The Set must not be modified.
	Current() *Set
	// Update applies mutate to a Clone of the freshest state, persists the
	// result durably, then publishes it. If mutate, validation or the write
	// fails, neither memory nor storage changes and mutate's error is returned
	// as is. Errors from a read-only backing store wrap ErrReadOnly.
	Update(ctx context.Context, mutate func(*Set) error) error
	// Reload re-reads the backing storage and publishes it if it is valid and
	// differs from the current state. On error the old Set stays in place and
	// the error names the problem (file and line).
	Reload(ctx context.Context) (changed bool, err error)
}

// Set is an immutable snapshot of all credentials; never modify one you did
// not Clone.
type Set struct {
	users    map[string]*User
	keys     map[string]*APIKey // by name
	byDigest map[string]*APIKey
	rbac     rbacState
	policies map[RowPolicyKey]*RowPolicy
}

// NewSet returns an empty Set.
func NewSet() *Set {
	return &Set{users: map[string]*User{}, keys: map[string]*APIKey{}, byDigest: map[string]*APIKey{}, rbac: newRBACState(), policies: map[RowPolicyKey]*RowPolicy{}}
}

// User returns the named user.
func (s *Set) User(name string) (*User, bool) {
	u, ok := s.users[name]
	return u, ok
}

// Users returns all users sorted by name.
func (s *Set) Users() []*User { return byName(s.users) }

// byName lists the entries of a map keyed by name, in name order.
func byName[T any](m map[string]*T) []*T {
	out := make([]*T, 0, len(m))
	for _, name := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[name])
	}
	return out
}

// APIKeyByDigest returns the key whose digest is digest (see APIKeyDigest).
func (s *Set) APIKeyByDigest(digest string) (*APIKey, bool) {
	k, ok := s.byDigest[digest]
	return k, ok
}

// APIKeys returns all API keys sorted by name.
func (s *Set) APIKeys() []*APIKey { return byName(s.keys) }

// ReplaceWith makes s a deep copy of src: every user, key, role, grant and
// group, row policy and tag of s is src's (store copy).
func (s *Set) ReplaceWith(src *Set) { *s = *src.Clone() }

// Clone returns a deep copy that the caller may modify.
func (s *Set) Clone() *Set {
	c := NewSet()
	for name, u := range s.users {
		cu := *u
		cu.Roles = slices.Clone(u.Roles)
		cu.Tags = maps.Clone(u.Tags)
		c.users[name] = &cu
	}
	for name, k := range s.keys {
		ck := *k
		c.keys[name] = &ck
		c.byDigest[ck.Digest] = &ck
	}
	c.rbac = s.rbac.clone()
	c.policies = clonePolicies(s.policies)
	return c
}

// PutUser adds u or replaces the user of the same name; the Set takes
// ownership of u. The rules are checked when the Set is persisted.
func (s *Set) PutUser(u *User) {
	s.users[u.Name] = u
}

// DeleteUser removes the named user and its API keys, and reports whether the
// user existed.
func (s *Set) DeleteUser(name string) bool {
	if _, ok := s.users[name]; !ok {
		return false
	}
	delete(s.users, name)
	for kname, k := range s.keys {
		if k.User == name {
			delete(s.keys, kname)
			delete(s.byDigest, k.Digest)
		}
	}
	return true
}

// PutAPIKey adds k or replaces the key of the same name. The key's user must
// exist and its digest must not belong to another key.
func (s *Set) PutAPIKey(k *APIKey) error {
	if err := checkKey(k); err != nil {
		return fmt.Errorf("api key %q: %w", k.Name, err)
	}
	if _, ok := s.users[k.User]; !ok {
		return fmt.Errorf("api key %q: user %q does not exist", k.Name, k.User)
	}
	if other, ok := s.byDigest[k.Digest]; ok && other.Name != k.Name {
		return fmt.Errorf("api key %q: same digest as api key %q", k.Name, other.Name)
	}
	if old, ok := s.keys[k.Name]; ok {
		delete(s.byDigest, old.Digest)
	}
	s.keys[k.Name] = k
	s.byDigest[k.Digest] = k
	return nil
}

// DeleteAPIKey removes the named key and reports whether it existed.
func (s *Set) DeleteAPIKey(name string) bool {
	k, ok := s.keys[name]
	if !ok {
		return false
	}
	delete(s.keys, name)
	delete(s.byDigest, k.Digest)
	return true
}

// validate checks every rule of a Set: each entry's own, and those between
// entries (a key's user exists, digests are unique, roles exist). It is the
// one place these rules live: the file parser calls it too, and adds the
// line of the entry an error names.
func (s *Set) validate() error {
	for _, u := range s.Users() {
		if err := checkUser(u); err != nil {
			return &entryError{"user", u.Name, err}
		}
	}
	digests := map[string]string{}
	for _, k := range s.APIKeys() {
		if err := checkKey(k); err != nil {
			return &entryError{"api key", k.Name, err}
		}
		if _, ok := s.users[k.User]; !ok {
			return &entryError{"api key", k.Name, fmt.Errorf("user %q does not exist", k.User)}
		}
		if other, ok := digests[k.Digest]; ok {
			return &entryError{"api key", k.Name, fmt.Errorf("same digest as api key %q", other)}
		}
		digests[k.Digest] = k.Name
	}
	if err := s.validateRBAC(); err != nil {
		return err
	}
	return s.validateRowPolicies()
}

// entryError is a broken rule of one entry of a Set.
type entryError struct {
	kind, name string // "user" and its name, "grant" and its description, ...
	err        error
}

func (e *entryError) Error() string { return fmt.Sprintf("%s %q: %v", e.kind, e.name, e.err) }

// checkUser checks the rules of one user except uniqueness.
func checkUser(u *User) error {
	if err := ValidateUsername(u.Name); err != nil {
		return err
	}
	if err := CheckHashFormat(u.PasswordHash); err != nil {
		return err
	}
	if len(u.Description) > MaxDescriptionLength {
		return fmt.Errorf("description longer than %d bytes", MaxDescriptionLength)
	}
	return CheckTags(u.Tags)
}

// checkKey checks the rules of one API key except uniqueness and its user's
// existence. Key names follow the user name rule.
func checkKey(k *APIKey) error {
	if ValidateUsername(k.Name) != nil {
		return errors.New("invalid name: want a letter, then letters, digits or _ (at most 32)")
	}
	return checkDigest(k.Digest)
}

const digestPrefix = "sha256:"

// APIKeyDigest returns the stored form of an API key: "sha256:" and the hex
// SHA-256 of the key. A fast hash suffices: keys carry 256 random bits.
func APIKeyDigest(key string) string {
	sum := sha256.Sum256([]byte(key))
	return digestPrefix + hex.EncodeToString(sum[:])
}

func checkDigest(d string) error {
	h, ok := strings.CutPrefix(d, digestPrefix)
	if !ok || len(h) != 64 || strings.ToLower(h) != h {
		return errors.New("digest must be \"sha256:\" followed by 64 lowercase hex digits")
	}
	if _, err := hex.DecodeString(h); err != nil {
		return errors.New("digest must be \"sha256:\" followed by 64 lowercase hex digits")
	}
	return nil
}

// apiKeyPrefix marks authproxy keys. Keys contain no ':' so Milvus SDKs send
// them as API keys rather than user:password.
const apiKeyPrefix = "ap_"

// NewAPIKey returns a new random API key: "ap_" and 32 random bytes in
// unpadded base64url. Store only APIKeyDigest(key).
func NewAPIKey() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("new api key: %w", err)
	}
	return apiKeyPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}
