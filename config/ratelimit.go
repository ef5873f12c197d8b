package config

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
)

// RateLimits are per-tenant limits on forwarded calls (package
// ratelimit). Each limit counts one rate, in milvus.yaml's
// quotaAndLimits vocabulary and units where Milvus has one, for the
// callers one selector picks.
type RateLimits struct {
	// Exempt callers are never limited (operators doing recovery).
	Exempt RateExempt `yaml:"exempt"`
	// Limits are checked in order; a call counts against every limit
	// that selects it and is refused if one of them is spent.
	Limits []RateLimit `yaml:"limits"`
}

// RateExempt lists callers no limit applies to.
type RateExempt struct {
	Users []string `yaml:"users"`
	Roles []string `yaml:"roles"`
}

// RateLimit is one limit: who (exactly one of User, Role, Database,
// IdentitySource), what (Rate) and how much (Max, Burst).
type RateLimit struct {
	// Name labels the limit in metrics and logs: letters, digits, '_', '-', '.'.
	Name string `yaml:"name"`
	// User selects one user, or each user with "*".
	User string `yaml:"user"`
	// Role selects the holders of a role (bound in the store or mapped
	// from a company identity's groups).
	Role string `yaml:"role"`
	// Database selects calls on one database, or on each with "*".
	Database string `yaml:"database"`
	// IdentitySource selects users vouched for by local (the store),
	// ldap or oidc.
	IdentitySource string `yaml:"identitySource"`
	// Each gives every selected user a bucket of their own; false, the
	// selected callers share one bucket (per database or user with "*").
	Each bool `yaml:"each"`
	// Rate is what is counted: see RateNames.
	Rate string `yaml:"rate"`
	// Max is the rate, in Rate's unit.
	Max float64 `yaml:"max"`
	// Burst is how much may be spent at once from a full bucket, in
	// Rate's unit; 0 means one second's worth (Max).
	Burst float64 `yaml:"burst"`
}

// RateNames are the rates a limit may count, with their units: Milvus's
// own names (quotaAndLimits.dml.insertRate, ...) in milvus.yaml's units,
// and calls per second of a class of methods, which Milvus has no name
// for.
var RateNames = map[string]string{
	"dml.insertRate": "MB/s of Insert requests",
	"dml.upsertRate": "MB/s of Upsert requests",
	"dml.deleteRate": "MB/s of Delete requests",
	"dql.searchRate": "vectors/s searched (a Search's nq)",
	"dql.queryRate":  "Query calls/s",
	"dml.callRate":   "Insert, Upsert and Delete calls/s",
	"dql.callRate":   "Search, Query and HybridSearch calls/s",
	"ddl.callRate":   "DDL calls/s (collections, partitions, indexes, flush, compaction, databases)",
	"callRate":       "calls/s of every forwarded method",
}

// IdentitySources are the sources an identitySource selector may name.
var IdentitySources = []string{"local", "ldap", "oidc"}

var limitName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// validate checks every limit; an error names the limit (by its name, or
// its index when the name itself is bad).
func (r *RateLimits) validate(bad func(key, format string, args ...any)) {
	seen := map[string]bool{}
	for i, l := range r.Limits {
		key := fmt.Sprintf("rateLimits.limits[%d]", i)
		if limitName.MatchString(l.Name) {
			key = fmt.Sprintf("rateLimits.limits[%d] (%s)", i, l.Name)
		} else {
			bad(key+".name", "%q: want 1 to 64 letters, digits, '_', '-' or '.' (it labels the metrics)", l.Name)
		}
		if seen[l.Name] {
			bad(key+".name", "%q is used by another limit", l.Name)
		}
		seen[l.Name] = true
		selectors := 0
		for _, s := range []string{l.User, l.Role, l.Database, l.IdentitySource} {
			if s != "" {
				selectors++
			}
		}
		if selectors != 1 {
			bad(key, "needs exactly one of user, role, database, identitySource; got %d", selectors)
		}
		if l.Role == "*" {
			bad(key+".role", `"*" is not a role; to limit every user use user: "*"`)
		}
		if l.IdentitySource != "" && !slices.Contains(IdentitySources, l.IdentitySource) {
			bad(key+".identitySource", "%q is not one of %s", l.IdentitySource, strings.Join(IdentitySources, ", "))
		}
		if l.User != "" && l.Each {
			bad(key+".each", "a user limit is per user already")
		}
		if _, ok := RateNames[l.Rate]; !ok {
			names := make([]string, 0, len(RateNames))
			for n := range RateNames {
				names = append(names, n)
			}
			slices.Sort(names)
			bad(key+".rate", "%q is not one of %s", l.Rate, strings.Join(names, ", "))
		}
		if !(l.Max > 0) || math.IsInf(l.Max, 0) {
			bad(key+".max", "must be a positive number, got %v", l.Max)
		}
		if l.Burst < 0 || math.IsNaN(l.Burst) || math.IsInf(l.Burst, 0) {
			bad(key+".burst", "must be 0 (one second's worth) or a positive number, got %v", l.Burst)
		}
	}
	for i, u := range r.Exempt.Users {
		if u == "" {
			bad(fmt.Sprintf("rateLimits.exempt.users[%d]", i), "empty name")
		}
	}
	for i, u := range r.Exempt.Roles {
		if u == "" {
			bad(fmt.Sprintf("rateLimits.exempt.roles[%d]", i), "empty name")
		}
	}
}
