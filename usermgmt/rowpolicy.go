package usermgmt

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/authproxy/authproxy/credentials"
	"github.com/authproxy/authproxy/privilege"
	"github.com/authproxy/authproxy/rbac"
)

// Row-level security's API (milvus-proto's CreateRowPolicy, DropRowPolicy,
// ListRowPolicies, AddUserTags, DeleteUserTags, GetUserTags,
// ListUsersWithTag). The privileges are the descriptors' privilege_ext_obj
// (rbac's method table), checked here too for REST.
const (
	methodAddUserTags    = "AddUserTags"
	methodDeleteUserTags = "DeleteUserTags"
	privSelectUser       = "SelectUser"
)

// RowPolicyDraft is what CreateRowPolicy asks for; DB "" is the caller's
// database.
type RowPolicyDraft struct {
	DB, Collection, Name string
	Actions              []string // credentials.RowPolicyActions
	Roles                []string
	UsingExpr, CheckExpr string
	Description          string
}

// dbOr is the request's database, else the caller's (metadata), else
// default: the rule of every other call.
func (c Caller) dbOr(db string) string {
	if db != "" {
		return db
	}
	return c.database()
}

// requireOnCollection checks a privilege on one collection in db.
func (s *Service) requireOnCollection(c Caller, priv, db, collection string) error {
	if !c.Authenticated || s.authz.Allowed(c.Principal, priv, db, collection) {
		return nil
	}
	return s.denied(c, priv, db)
}

// requireOnUserFor checks priv on user for method: whether acting on
// oneself is exempt is rbac's rule (rbac.SelfExempt), the one the gRPC
// decision applies.
func (s *Service) requireOnUserFor(c Caller, method, priv, user string) error {
	if !c.Authenticated || (user == c.User && rbac.SelfExempt(method)) || s.authz.Allowed(c.Principal, priv, c.Database, user) {
		return nil
	}
	return s.denied(c, priv, c.database())
}

func (s *Service) denied(c Caller, priv, db string) error {
	return &Error{Kind: KindPermissionDenied, Reason: fmt.Sprintf("%s: permission deny to %s in the `%s` database", privilege.EnumName(priv), c.User, db)}
}

// CreateRowPolicy adds a policy to a collection; a policy of the same name
// there is refused (the design: "CreateRowPolicy rejects an existing
// name").
func (s *Service) CreateRowPolicy(ctx context.Context, c Caller, d RowPolicyDraft) error {
	db := c.dbOr(d.DB)
	return s.audit("create_row_policy", c, db+"."+d.Collection+"/"+d.Name, func() error {
		if err := s.requireOnCollection(c, privCreate, db, d.Collection); err != nil {
			return err
		}
		p := &credentials.RowPolicy{DB: db, Collection: d.Collection, Name: d.Name, Actions: inEnumOrder(d.Actions), Roles: sortedUnique(d.Roles),
			UsingExpr: d.UsingExpr, CheckExpr: d.CheckExpr, Description: d.Description, Created: s.now().UTC()}
		if err := credentials.CheckRowPolicy(p); err != nil {
			return nameError(err)
		}
		if len(p.Roles) == 0 {
			return &Error{Kind: KindInvalidParameter, Reason: "a row policy needs at least one role: invalid parameter"}
		}
		return s.update(ctx, func(set *credentials.Set) error {
			if _, ok := set.RowPolicy(p.Key()); ok {
				return &Error{Kind: KindExists, Reason: fmt.Sprintf("row policy %s already exists on collection %s in database %s", p.Name, p.Collection, p.DB)}
			}
			for _, r := range p.Roles {
				if !set.RoleExists(r) {
					return &Error{Kind: KindNotFound, Reason: fmt.Sprintf("role %s not found: a row policy names existing roles", r)}
				}
			}
			if n := len(set.RowPolicies(p.DB, p.Collection)); n >= credentials.MaxRowPoliciesPerCollection {
				return &Error{Kind: KindInvalidParameter, Reason: fmt.Sprintf("collection %s has %d row policies, the most it may have", p.Collection, n)}
			}
			set.PutRowPolicy(p)
			return nil
		})
	})
}

// DropRowPolicy removes a policy; a missing one succeeds, as an idempotent
// retry (the design).
func (s *Service) DropRowPolicy(ctx context.Context, c Caller, db, collection, name string) error {
	db = c.dbOr(db)
	return s.audit("drop_row_policy", c, db+"."+collection+"/"+name, func() error {
		if err := s.requireOnCollection(c, privDrop, db, collection); err != nil {
			return err
		}
		return s.update(ctx, func(set *credentials.Set) error {
			set.DeleteRowPolicy(credentials.RowPolicyKey{DB: db, Collection: collection, Name: name})
			return nil
		})
	})
}

// ListRowPolicies lists a collection's policies by name, with the database
// it looked in.
func (s *Service) ListRowPolicies(c Caller, db, collection string) ([]*credentials.RowPolicy, string, error) {
	db = c.dbOr(db)
	if err := s.requireOnCollection(c, privSelect, db, collection); err != nil {
		s.count("list_row_policies", err)
		return nil, db, err
	}
	s.count("list_row_policies", nil)
	return s.store.Current().RowPolicies(db, collection), db, nil
}

// AddUserTags adds or overwrites tags of a user; the others stay. Never
// on oneself without the privilege (rbac.SelfExempt).
func (s *Service) AddUserTags(ctx context.Context, c Caller, user string, tags map[string]string) error {
	return s.audit("add_user_tags", c, user, func() error {
		if err := s.requireOnUserFor(c, methodAddUserTags, privUpdate, user); err != nil {
			return err
		}
		if len(tags) == 0 {
			return &Error{Kind: KindInvalidParameter, Reason: "no tags to add: invalid parameter"}
		}
		if err := credentials.CheckTags(tags); err != nil {
			return nameError(err)
		}
		return s.update(ctx, func(set *credentials.Set) error {
			u, ok := set.User(user)
			if !ok {
				return &Error{Kind: KindNotFound, Reason: "user not found: " + user}
			}
			merged := maps.Clone(u.Tags)
			if merged == nil {
				merged = map[string]string{}
			}
			maps.Copy(merged, tags)
			if err := credentials.CheckTags(merged); err != nil {
				return nameError(err)
			}
			u.Tags, u.Updated = merged, s.now().UTC()
			return nil
		})
	})
}

// DeleteUserTags removes tag keys of a user (missing ones are ignored); no
// key removes them all (the design's delete_rls_principal_tags).
func (s *Service) DeleteUserTags(ctx context.Context, c Caller, user string, keys []string) error {
	return s.audit("delete_user_tags", c, user, func() error {
		if err := s.requireOnUserFor(c, methodDeleteUserTags, privUpdate, user); err != nil {
			return err
		}
		return s.update(ctx, func(set *credentials.Set) error {
			u, ok := set.User(user)
			if !ok {
				return &Error{Kind: KindNotFound, Reason: "user not found: " + user}
			}
			tags := maps.Clone(u.Tags)
			if len(keys) == 0 {
				tags = nil
			}
			for _, k := range keys {
				delete(tags, k)
			}
			if len(tags) == 0 {
				tags = nil
			}
			u.Tags, u.Updated = tags, s.now().UTC()
			return nil
		})
	})
}

// GetUserTags returns a user's tags; a user may read her own, and a
// company identity asking for its own gets those its directory or token
// gives too (rbac's TagsOf), as policies will see them.
func (s *Service) GetUserTags(c Caller, user string) (map[string]string, error) {
	if err := s.requireOnUserFor(c, "GetUserTags", privSelectUser, user); err != nil {
		s.count("get_user_tags", err)
		return nil, err
	}
	if c.Authenticated && user == c.User && c.External() {
		s.count("get_user_tags", nil)
		return s.authz.TagsOf(c.Principal), nil
	}
	u, ok := s.store.Current().User(user)
	if !ok {
		err := &Error{Kind: KindNotFound, Reason: "user not found: " + user}
		s.count("get_user_tags", err)
		return nil, err
	}
	s.count("get_user_tags", nil)
	return maps.Clone(u.Tags), nil
}

// ListUsersWithTag lists, by name, the users whose tag key has value
// (SelectUser on every user, as the descriptor says).
func (s *Service) ListUsersWithTag(c Caller, key, value string) ([]string, error) {
	if err := s.requireOnUserFor(c, "ListUsersWithTag", privSelectUser, privilege.Any); err != nil {
		s.count("list_users_with_tag", err)
		return nil, err
	}
	if err := credentials.CheckTagKey(key); err != nil {
		err := nameError(err)
		s.count("list_users_with_tag", err)
		return nil, err
	}
	s.count("list_users_with_tag", nil)
	return s.store.Current().UsersWithTag(key, value), nil
}

// ParseRowPolicyAction reads an action by its proto name, in any case
// (REST and the CLI say "query" where the enum says Query).
func ParseRowPolicyAction(name string) (string, error) {
	for _, a := range credentials.RowPolicyActions {
		if strings.EqualFold(a, name) {
			return a, nil
		}
	}
	return "", &Error{Kind: KindInvalidParameter, Reason: fmt.Sprintf("unknown row policy action %q (want %s): invalid parameter", name, strings.Join(credentials.RowPolicyActions, ", "))}
}

// inEnumOrder lists actions once each in RowPolicyAction's order; names
// that are no action stay, last, for CheckRowPolicy to refuse.
func inEnumOrder(actions []string) []string {
	var out []string
	for _, a := range credentials.RowPolicyActions {
		if slices.Contains(actions, a) {
			out = append(out, a)
		}
	}
	unknown := slices.DeleteFunc(slices.Clone(actions), func(a string) bool { return slices.Contains(credentials.RowPolicyActions, a) })
	return append(out, sortedUnique(unknown)...)
}

func sortedUnique(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}
