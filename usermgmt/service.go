package usermgmt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authproxy/authproxy/auth"
	"github.com/authproxy/authproxy/credentials"
	"github.com/authproxy/authproxy/privilege"
	"github.com/authproxy/authproxy/rbac"
)

// Metrics count user-management operations, on a registry the caller chooses.
type Metrics struct {
	ops *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them on reg; a nil reg
// keeps them unregistered.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{ops: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "authproxy_user_operations_total",
		Help: "User-management operations by kind and result (success, denied, invalid, failed).",
	}, []string{"op", "result"})}
	if reg != nil {
		reg.MustRegister(m.ops)
	}
	return m
}

// Caller is who asks. Authenticated is false when authorizationEnabled is
// off: then, as in Milvus, no permission is checked.
type Caller struct {
	rbac.Principal
	Authenticated bool
	// Database is the client's database (metadata "dbname"), for messages.
	Database string
	// Peer is the client address, for the audit trail.
	Peer string
}

// Service implements the user API over a credential store.
type Service struct {
	store      credentials.Store
	logger     *slog.Logger
	superUsers atomic.Pointer[[]string]
	metrics    *Metrics
	passwords  Passwords
	authz      *rbac.Authorizer
	locks      Locks
	now        func() time.Time
}

// Options configure a Service.
type Options struct {
	Store  credentials.Store
	Logger *slog.Logger
	// SuperUsers may change a password without the old one.
	SuperUsers []string
	// Metrics counts operations; nil keeps the counts unregistered.
	Metrics *Metrics
	// Passwords hashes and checks passwords; nil does it directly, without
	// the bounded pool and the limiter (unit tests).
	Passwords Passwords
	// Authorizer decides who may call what: the same decision point as
	// every forwarded call.
	Authorizer *rbac.Authorizer
	// Locks, if set, are the brute-force locks the console lists and lifts.
	Locks Locks
}

// Passwords is where the user API hashes and checks passwords: in the
// proxy, the authenticator's verifier, so that an old-password check is
// bounded, fair and rate-limited like a login.
type Passwords interface {
	// CheckPassword returns nil when password matches storedHash.
	CheckPassword(ctx context.Context, user, storedHash, password, peer string) error
	HashPassword(ctx context.Context, user, password, peer string) (string, error)
}

// directPasswords hashes in the caller's goroutine, with no bound.
type directPasswords struct{}

func (directPasswords) CheckPassword(_ context.Context, _, storedHash, password, _ string) error {
	if !credentials.VerifyPassword(storedHash, password) {
		return errors.New("wrong password")
	}
	return nil
}

func (directPasswords) HashPassword(_ context.Context, _, password, _ string) (string, error) {
	return credentials.HashPassword(password)
}

// NewService returns a Service.
func NewService(opts Options) *Service {
	s := &Service{store: opts.Store, logger: opts.Logger, metrics: opts.Metrics, passwords: opts.Passwords, authz: opts.Authorizer, locks: opts.Locks, now: time.Now}
	if s.metrics == nil {
		s.metrics = NewMetrics(nil)
	}
	if s.passwords == nil {
		s.passwords = directPasswords{}
	}
	s.SetSuperUsers(opts.SuperUsers)
	return s
}

// SetSuperUsers replaces common.security.superUsers (config reload).
func (s *Service) SetSuperUsers(names []string) {
	names = slices.Clone(names)
	s.superUsers.Store(&names)
}

// require checks that the caller holds a privilege that names no object
// (every privilege of the user and role API but two); with authentication
// off, as in Milvus, nothing is checked.
func (s *Service) require(c Caller, priv string) error {
	return s.requireOn(c, priv, "*")
}

// requireOn checks a privilege on one user (UpdateUser, SelectUser):
// everyone may act on themself.
func (s *Service) requireOn(c Caller, priv, user string) error {
	if !c.Authenticated || user == c.User || s.authz.Allowed(c.Principal, priv, c.Database, user) {
		return nil
	}
	return &Error{Kind: KindPermissionDenied, Reason: fmt.Sprintf("%s: permission deny to %s in the `%s` database", privilege.EnumName(priv), c.User, c.database())}
}

// database is the caller's database, default when it names none.
func (c Caller) database() string {
	if c.Database == "" {
		return rbac.DefaultDB
	}
	return c.Database
}

// CreateUser adds a user with no roles.
func (s *Service) CreateUser(ctx context.Context, c Caller, name, password, description string) error {
	return s.audit("create_user", c, name, func() error {
		if err := s.require(c, privCreate); err != nil {
			return err
		}
		if err := validate(name, password); err != nil {
			return err
		}
		if err := checkDescription(description); err != nil {
			return err
		}
		hash, err := s.passwords.HashPassword(ctx, name, password, auth.HostOf(c.Peer))
		if err != nil {
			return Internal(err)
		}
		return s.update(ctx, func(set *credentials.Set) error {
			if _, ok := set.User(name); ok {
				return &Error{Kind: KindExists, Reason: "user already exists: " + name}
			}
			now := s.now().UTC()
			set.PutUser(&credentials.User{Name: name, PasswordHash: hash, Description: description, Created: now, Updated: now})
			return nil
		})
	})
}

// UpdatePassword changes name's password. A user may change their own;
// an admin anyone's; the old password is required unless the caller is in
// superUsers.
func (s *Service) UpdatePassword(ctx context.Context, c Caller, name, oldPassword, newPassword string) error {
	return s.audit("update_password", c, name, func() error {
		if err := s.requireOn(c, privUpdate, name); err != nil {
			return err
		}
		if err := validate(name, newPassword); err != nil {
			return err
		}
		skipOld := c.Authenticated && slices.Contains(*s.superUsers.Load(), c.User)
		user, ok := s.store.Current().User(name)
		switch {
		case !ok && !skipOld:
			// Milvus checks the old password first, and an unknown user
			// has none that matches (impl.go UpdateCredential).
			return &Error{Kind: KindWrongOldPassword, Reason: fmt.Sprintf("old password not correct for %s: not authenticated", name)}
		case !ok:
			return &Error{Kind: KindNotFound, Reason: "user not found: " + name}
		}
		if !skipOld {
			if err := s.passwords.CheckPassword(ctx, name, user.PasswordHash, oldPassword, auth.HostOf(c.Peer)); err != nil {
				// A lockout or a full queue reads as a wrong old password:
				// the caller learns nothing it could guess with.
				return &Error{Kind: KindWrongOldPassword, Reason: fmt.Sprintf("old password not correct for %s: not authenticated", name)}
			}
		}
		hash, err := s.passwords.HashPassword(ctx, name, newPassword, auth.HostOf(c.Peer))
		if err != nil {
			return Internal(err)
		}
		return s.update(ctx, func(set *credentials.Set) error {
			u, ok := set.User(name)
			if !ok {
				return &Error{Kind: KindNotFound, Reason: "user not found: " + name}
			}
			// The old password was checked against this hash: a concurrent
			// change in between must not be silently overwritten.
			if !skipOld && u.PasswordHash != user.PasswordHash {
				return &Error{Kind: KindWrongOldPassword, Reason: fmt.Sprintf("old password not correct for %s: not authenticated", name)}
			}
			u.PasswordHash = hash
			u.Updated = s.now().UTC()
			return nil
		})
	})
}

// DropUser deletes a user (and its API keys); root cannot be deleted.
func (s *Service) DropUser(ctx context.Context, c Caller, name string) error {
	return s.audit("drop_user", c, name, func() error {
		if err := s.require(c, privDrop); err != nil {
			return err
		}
		if name == credentials.RootUser {
			return &Error{Kind: KindRootUndeletable, Reason: "root user cannot be deleted: privilege not permitted"}
		}
		return s.update(ctx, func(set *credentials.Set) error {
			// Like Milvus, dropping a user that does not exist succeeds.
			set.DeleteUser(name)
			return nil
		})
	})
}

// ListUsers returns every user name, sorted.
func (s *Service) ListUsers(c Caller) ([]string, error) {
	if err := s.require(c, privSelect); err != nil {
		s.count("list_users", err)
		return nil, err
	}
	names := s.userNames()
	s.count("list_users", nil)
	return names, nil
}

// SelectAllUsers returns every user name, sorted, for SelectUser naming
// no user (the SDKs' list_users): Milvus checks SelectUser on User "*"
// for it, where ListCredUsers needs SelectOwnership.
func (s *Service) SelectAllUsers(c Caller) ([]string, error) {
	if err := s.requireOn(c, "SelectUser", privilege.Any); err != nil {
		s.count("list_users", err)
		return nil, err
	}
	names := s.userNames()
	s.count("list_users", nil)
	return names, nil
}

func (s *Service) userNames() []string {
	users := s.store.Current().Users()
	names := make([]string, len(users))
	for i, u := range users {
		names[i] = u.Name
	}
	return names
}

// DescribeUser returns the user's roles; found is false for an unknown user
// (a success with no result, as Milvus). Users may describe themselves.
func (s *Service) DescribeUser(c Caller, name string) (roles []string, found bool, err error) {
	if err := s.requireOn(c, "SelectUser", name); err != nil {
		s.count("describe_user", err)
		return nil, false, err
	}
	// The Milvus proxy validates the name first (impl.go SelectUser).
	if err := credentials.ValidateUsername(name); err != nil {
		err := nameError(err)
		s.count("describe_user", err)
		return nil, false, err
	}
	u, ok := s.store.Current().User(name)
	s.count("describe_user", nil)
	if !ok {
		return nil, false, nil
	}
	return slices.Clone(u.Roles), true, nil
}

// SetDescription changes a user's description (pymilvus's update_user):
// a user may change their own, holders of UpdateUser anyone's.
func (s *Service) SetDescription(ctx context.Context, c Caller, name, description string) error {
	return s.audit("update_user", c, name, func() error {
		if err := s.requireOn(c, privUpdate, name); err != nil {
			return err
		}
		if err := checkDescription(description); err != nil {
			return err
		}
		return s.update(ctx, func(set *credentials.Set) error {
			u, ok := set.User(name)
			if !ok {
				return &Error{Kind: KindNotFound, Reason: "user not found: " + name}
			}
			u.Description, u.Updated = description, s.now().UTC()
			return nil
		})
	})
}

// Description is a user's description; callers have checked that the
// caller may describe the user.
func (s *Service) Description(name string) string {
	if u, ok := s.store.Current().User(name); ok {
		return u.Description
	}
	return ""
}

func checkDescription(d string) error {
	if len(d) > credentials.MaxDescriptionLength {
		return &Error{Kind: KindInvalidParameter, Reason: fmt.Sprintf("the description is %d bytes, more than %d", len(d), credentials.MaxDescriptionLength)}
	}
	return nil
}

func validate(name, password string) error {
	if err := credentials.ValidateUsername(name); err != nil {
		return &Error{Kind: KindInvalidParameter, Reason: err.Error()}
	}
	if err := credentials.ValidatePassword(password); err != nil {
		return &Error{Kind: KindInvalidParameter, Reason: err.Error()}
	}
	return nil
}

// update persists a change; a store that cannot be written refuses it with
// a message saying so, and nothing changes.
func (s *Service) update(ctx context.Context, mutate func(*credentials.Set) error) error {
	err := s.store.Update(ctx, mutate)
	var e *Error
	switch {
	case err == nil, errors.As(err, &e):
		return err
	case errors.Is(err, credentials.ErrReadOnly):
		return &Error{Kind: KindReadOnly, Reason: "cannot change users: the credential store is read-only", Detail: err}
	case errors.Is(err, credentials.ErrUnavailable):
		return &Error{Kind: KindUnavailable, Reason: "cannot change users now: the shared credential store (etcd) cannot be reached; nothing was changed, retry later", Detail: err}
	default:
		return Internal(err)
	}
}

// audit runs a change and writes the audit line: who, what, on whom, result.
// Never a password: only names reach it.
func (s *Service) audit(op string, c Caller, target string, change func() error) error {
	err := change()
	s.count(op, err)
	attrs := []any{"op", op, "by", c.User, "source", c.source(), "target", target, "peer", c.Peer}
	if err != nil {
		attrs = append(attrs, "result", resultOf(err), "reason", err.Error())
		if e, ok := errors.AsType[*Error](err); ok && e.Detail != nil {
			attrs = append(attrs, "detail", e.Detail.Error())
		}
		s.logger.Warn("audit: user change refused", attrs...)
	} else {
		s.logger.Info("audit: user changed", append(attrs, "result", "success")...)
	}
	return err
}

func (s *Service) count(op string, err error) {
	s.metrics.ops.WithLabelValues(op, resultOf(err)).Inc()
}

// source names who vouched for the caller, for the audit trail.
func (c Caller) source() string {
	if c.Source == "" {
		return "local"
	}
	return c.Source
}
