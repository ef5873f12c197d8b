package credentials

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// RowPolicy is a row-level security policy of one collection
// (milvus-proto's CreateRowPolicyRequest): which rows the roles it names
// may read (UsingExpr) and write (CheckExpr) for the actions it names.
type RowPolicy struct {
	DB          string
	Collection  string
	Name        string
	Actions     []string // RowPolicyActions, sorted, no duplicates
	Roles       []string // sorted, no duplicates
	UsingExpr   string
	CheckExpr   string
	Description string
	Created     time.Time
}

// RowPolicyKey identifies a policy: its name is unique in its collection.
type RowPolicyKey struct{ DB, Collection, Name string }

// Key is the policy's identity.
func (p *RowPolicy) Key() RowPolicyKey { return RowPolicyKey{p.DB, p.Collection, p.Name} }

// RowPolicyActions are milvus-proto's RowPolicyAction names, in enum order.
var RowPolicyActions = []string{"Query", "Search", "Insert", "Delete", "Upsert"}

// Limits of row policies and user tags. Milvus's design makes them
// configurable (proxy.rls.*) without saying their defaults; these bound
// what one request or one user can make the store and every decision hold.
const (
	MaxRowPoliciesPerCollection = 64
	MaxRowPolicyExprLength      = 4096
	MaxTagsPerUser              = 32
	MaxTagKeyLength             = 64
	MaxTagValueLength           = 256
)

// readActions use UsingExpr; writeActions use CheckExpr; Upsert uses both
// (the design's table of actions).
func usesUsing(action string) bool { return action != "Insert" }
func usesCheck(action string) bool { return action == "Insert" || action == "Upsert" }

// RowPolicy returns a policy.
func (s *Set) RowPolicy(k RowPolicyKey) (*RowPolicy, bool) {
	p, ok := s.policies[k]
	return p, ok
}

// RowPolicies lists the policies of one collection, by name.
func (s *Set) RowPolicies(db, collection string) []*RowPolicy {
	return slices.DeleteFunc(s.AllRowPolicies(), func(p *RowPolicy) bool { return p.DB != db || p.Collection != collection })
}

// AllRowPolicies lists every policy by database, collection and name.
func (s *Set) AllRowPolicies() []*RowPolicy {
	out := slices.Collect(maps.Values(s.policies))
	slices.SortFunc(out, func(a, b *RowPolicy) int {
		return cmp.Or(strings.Compare(a.DB, b.DB), strings.Compare(a.Collection, b.Collection), strings.Compare(a.Name, b.Name))
	})
	return out
}

// PutRowPolicy adds or replaces a policy; the Set takes ownership of p.
func (s *Set) PutRowPolicy(p *RowPolicy) { s.policies[p.Key()] = p }

// DeleteRowPolicy removes a policy and reports whether it existed.
func (s *Set) DeleteRowPolicy(k RowPolicyKey) bool {
	_, ok := s.policies[k]
	delete(s.policies, k)
	return ok
}

// UsersWithTag lists, by name, the users whose tag key has value.
func (s *Set) UsersWithTag(key, value string) []string {
	var out []string
	for _, u := range s.Users() {
		if v, ok := u.Tags[key]; ok && v == value {
			out = append(out, u.Name)
		}
	}
	return out
}

// dropRoleFromPolicies removes a dropped role from every policy, as its
// grants and bindings go with it: a policy left with no role applies to
// nobody, which keeps its collection closed (deny by default), never open.
func (s *Set) dropRoleFromPolicies(role string) {
	for _, p := range s.policies {
		p.Roles = slices.DeleteFunc(p.Roles, func(r string) bool { return r == role })
	}
}

func clonePolicies(in map[RowPolicyKey]*RowPolicy) map[RowPolicyKey]*RowPolicy {
	out := make(map[RowPolicyKey]*RowPolicy, len(in))
	for k, p := range in {
		cp := *p
		cp.Actions, cp.Roles = slices.Clone(p.Actions), slices.Clone(p.Roles)
		out[k] = &cp
	}
	return out
}

// validateRowPolicies checks every policy and its roles, and the number of
// policies per collection.
func (s *Set) validateRowPolicies() error {
	perCollection := map[[2]string]int{}
	for _, p := range s.AllRowPolicies() {
		if err := CheckRowPolicy(p); err != nil {
			return &entryError{"row policy", p.describe(), err}
		}
		for _, r := range p.Roles {
			if !s.RoleExists(r) {
				return &entryError{"row policy", p.describe(), fmt.Errorf("unknown role %q", r)}
			}
		}
		c := [2]string{p.DB, p.Collection}
		if perCollection[c]++; perCollection[c] > MaxRowPoliciesPerCollection {
			return &entryError{"row policy", p.describe(), fmt.Errorf("more than %d policies on collection %s", MaxRowPoliciesPerCollection, p.Collection)}
		}
	}
	return nil
}

// describe names a policy in errors.
func (p *RowPolicy) describe() string {
	return fmt.Sprintf("%s on %s.%s", p.Name, p.DB, p.Collection)
}

// CheckRowPolicy checks the rules of one policy except its roles' existence:
// Milvus's name rules for its names, known actions, valid role names (none
// is allowed: a policy whose roles were dropped applies to nobody), and
// the expressions its actions use present, bounded and valid UTF-8. Whether
// an expression parses is the filter package's to say.
func CheckRowPolicy(p *RowPolicy) error {
	if err := ValidateDatabaseName(p.DB); err != nil {
		return err
	}
	if err := ValidateName(p.Collection, "collection name"); err != nil {
		return err
	}
	if err := ValidateName(p.Name, "policy name"); err != nil {
		return err
	}
	if len(p.Actions) == 0 {
		return invalidParam("a row policy needs at least one action (%s)", strings.Join(RowPolicyActions, ", "))
	}
	needUsing, needCheck := false, false
	for _, a := range p.Actions {
		if !slices.Contains(RowPolicyActions, a) {
			return invalidParam("unknown row policy action %q (want %s)", a, strings.Join(RowPolicyActions, ", "))
		}
		needUsing = needUsing || usesUsing(a)
		needCheck = needCheck || usesCheck(a)
	}
	for _, r := range p.Roles {
		if err := ValidateRoleName(r); err != nil {
			return err
		}
	}
	for _, e := range []struct {
		name, expr string
		needed     bool
	}{{"using_expr", p.UsingExpr, needUsing}, {"check_expr", p.CheckExpr, needCheck}} {
		switch {
		case e.needed && strings.TrimSpace(e.expr) == "":
			return invalidParam("%s must not be empty for actions %s", e.name, strings.Join(p.Actions, ", "))
		case len(e.expr) > MaxRowPolicyExprLength:
			return invalidParam("%s is %d bytes, more than %d", e.name, len(e.expr), MaxRowPolicyExprLength)
		case !utf8.ValidString(e.expr):
			return invalidParam("%s is not valid UTF-8", e.name)
		}
	}
	if len(p.Description) > MaxDescriptionLength {
		return invalidParam("the description is %d bytes, more than %d", len(p.Description), MaxDescriptionLength)
	}
	return nil
}

// CheckTags checks a user's tags: at most MaxTagsPerUser; keys of letters,
// digits, '_', '-' and '.' (a policy names a key inside
// $current_user_tags['key'], whose syntax defines no escape); values valid
// UTF-8 of bounded length (they reach filters only as escaped literals).
func CheckTags(tags map[string]string) error {
	if len(tags) > MaxTagsPerUser {
		return invalidParam("a user may have at most %d tags, got %d", MaxTagsPerUser, len(tags))
	}
	for k, v := range tags {
		if err := CheckTagKey(k); err != nil {
			return err
		}
		if len(v) > MaxTagValueLength || !utf8.ValidString(v) {
			return invalidParam("the value of tag %s must be valid UTF-8 of at most %d bytes", k, MaxTagValueLength)
		}
	}
	return nil
}

// CheckTagKey is the rule of a tag key.
func CheckTagKey(k string) error {
	if k == "" || len(k) > MaxTagKeyLength {
		return invalidParam("a tag key must have 1 to %d characters", MaxTagKeyLength)
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c != '_' && c != '-' && c != '.' && !isLetter(c) && !isDigit(c) {
			return invalidParam("tag key %q: only letters, digits, '_', '-' and '.' are allowed", k)
		}
	}
	return nil
}
