package rbac

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/authproxy/authproxy/credentials"
	"github.com/authproxy/authproxy/edge"
	"github.com/authproxy/authproxy/privilege"
)

// DefaultDB is the database of a call that names none.
const DefaultDB = "default"

// Metrics count decisions, on a registry the caller chooses.
type Metrics struct {
	decisions *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them on reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "authproxy_authz_decisions_total",
		Help: "Authorization decisions by result (allowed, denied) and privilege (open, admin for calls that need none or admin).",
	}, []string{"result", "privilege"})}
	if reg != nil {
		reg.MustRegister(m.decisions)
	}
	return m
}

// Authorizer decides on calls against the store's current grants. A change
// of grants, roles, bindings or groups (through the API or a reload of the
// file) applies to the next call: the compiled policy follows the store's
// snapshot.
type Authorizer struct {
	store   credentials.Store
	table   *Table
	logger  *slog.Logger
	metrics *Metrics
	opts    atomic.Pointer[Options]

	mu  sync.Mutex // one compilation at a time
	cur atomic.Pointer[policy]
	// allowed holds each privilege's "allowed" counter, resolved once: a
	// label lookup per call would cost more than the decision.
	allowed map[string]prometheus.Counter
	// denials, if set, keeps the last denials for the console.
	denials atomic.Pointer[edge.Denials]
}

// SetDenials makes every denial also land in d (the console's ring).
func (a *Authorizer) SetDenials(d *edge.Denials) { a.denials.Store(d) }

// NewAuthorizer returns an Authorizer over store.
func NewAuthorizer(store credentials.Store, table *Table, opts Options, logger *slog.Logger, metrics *Metrics) *Authorizer {
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	a := &Authorizer{store: store, table: table, logger: logger, metrics: metrics, allowed: map[string]prometheus.Counter{}}
	for _, label := range append([]string{"open", "admin"}, table.privileges()...) {
		a.allowed[label] = metrics.decisions.WithLabelValues("allowed", label)
	}
	a.opts.Store(&opts)
	return a
}

// SetOptions changes the options for the next call (config reload).
func (a *Authorizer) SetOptions(opts Options) { a.opts.Store(&opts) }

// Table is the method table in use.
func (a *Authorizer) Table() *Table { return a.table }

func (a *Authorizer) policy() *policy {
	set, opts := a.store.Current(), a.opts.Load()
	if p := a.cur.Load(); p != nil && p.set == set && p.opts == *opts {
		return p
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if p := a.cur.Load(); p != nil && p.set == set && p.opts == *opts {
		return p
	}
	p := compile(set, *opts)
	a.cur.Store(p)
	return p
}

// Principal is who a decision is for.
type Principal struct {
	User string
	// Roles come from outside the store: an LDAP or OpenID identity's
	// groups, mapped by the config. The store's bindings of User are added.
	Roles []string
	// Source is who vouches for User: "" or local for the store, else an
	// external provider (ldap, oidc), whose identities never have root's
	// implicit privileges, whatever their name: only a mapped or bound
	// admin role.
	Source string
	// Tags are an external identity's row-security tags (directory
	// attributes, token claims); see TagsOf.
	Tags map[string]string
}

// External reports whether the identity comes from outside the store.
func (p Principal) External() bool { return p.Source != "" && p.Source != "local" }

// Call is one call to decide on.
type Call struct {
	Principal
	Method     string
	MetadataDB string   // the dbname metadata, "" when absent
	Message    [][]byte // the request message, for methods that name an object
}

// Authorize decides on a call: nil, or a PermissionDenied status with
// Milvus's message. The object and database come from the message itself
// (Scan); the database is the request's db_name, else the dbname metadata,
// else default, and cluster-level privileges are checked against every
// database ("*"), which is Milvus master's rule.
func (a *Authorizer) Authorize(c Call) error {
	p := a.policy()
	s := p.subjectOf(c.Principal)
	rule, ok := a.table.Rule(c.Method)
	if !ok {
		return a.methodLevel(p, s, c)
	}
	if s.all {
		a.allowed[rule.Privilege].Inc()
		return nil
	}
	t, err := Scan(rule, c.Message)
	if err != nil {
		return status.Error(codes.InvalidArgument, "authproxy: "+err.Error())
	}
	// The database named in a denial is the request's; the check of a
	// cluster-level privilege is against every database.
	db := view(t.DB)
	switch {
	case db == "" && c.MetadataDB != "":
		db = c.MetadataDB
	case db == "":
		db = DefaultDB
	}
	checkDB := db
	if privilege.IsClusterLevel(rule.Privilege) {
		checkDB = privilege.Any
	}
	name := view(t.Name)
	if rule.NameField == 0 || (rule.NameInMessage && name == "") {
		name = privilege.Any
	}
	allowed := true
	switch {
	case rule.SelfExempt && name == c.User:
		// Anyone may change their own password and describe themself,
		// never their own tags (SelfExempt).
	case rule.NamesField > 0:
		allowed = len(t.Names) > 0
		for _, n := range t.Names {
			allowed = allowed && s.allows(rule.Privilege, checkDB, view(n))
		}
	default:
		allowed = s.allows(rule.Privilege, checkDB, name)
	}
	if allowed {
		a.allowed[rule.Privilege].Inc()
		return nil
	}
	return a.deny(c, rule.Privilege, rule.Object, strings.Clone(name), strings.Clone(db))
}

// methodLevel decides on methods that name no object: open ones, the
// admin-only ones, and other services.
func (a *Authorizer) methodLevel(p *policy, s *subject, c Call) error {
	adminOnly := a.table.adminOnly[c.Method]
	switch {
	case a.table.open[c.Method]:
		a.allowed["open"].Inc()
		return nil
	case strings.HasPrefix(c.Method, "/"+Service+"/") && !adminOnly:
		// A MilvusService method newer than the linked protos: its
		// privilege is unknown, so only admin may call it.
		adminOnly = true
	case !adminOnly && !p.opts.OtherServicesAdminOnly:
		a.allowed["open"].Inc()
		return nil
	}
	if s.all {
		a.allowed["admin"].Inc()
		return nil
	}
	return a.deny(c, "admin", "", "", "")
}

func (a *Authorizer) deny(c Call, priv, object, name, db string) error {
	a.metrics.decisions.WithLabelValues("denied", priv).Inc()
	a.logger.Warn("audit: call denied", "user", c.User, "source", sourceOf(c.Principal), "method", edge.Bound(c.Method), "privilege", priv,
		"object", object, "name", edge.Bound(name), "db", edge.Bound(db))
	a.denials.Load().Add(edge.Denial{Kind: "authorization", Target: c.Method, User: c.User, Reason: priv,
		Object: strings.TrimSpace(object + " " + name + " db=" + db)})
	if priv == "admin" {
		return status.Errorf(codes.PermissionDenied, "authproxy: %s is restricted to the admin role; permission deny to %s", c.Method, c.User)
	}
	return Denied(priv, c.User, db)
}

// Denied is Milvus's refusal: "PrivilegeLoad: permission deny to alice in
// the `default` database".
func Denied(priv, user, db string) error {
	return status.Error(codes.PermissionDenied, fmt.Sprintf("%s: permission deny to %s in the `%s` database", privilege.EnumName(priv), user, db))
}

// Allowed reports whether who holds priv on (db, name), for the calls the
// proxy answers itself. db "" is the default database; cluster-level
// privileges are checked against every database.
func (a *Authorizer) Allowed(who Principal, priv, db, name string) bool {
	if db == "" {
		db = DefaultDB
	}
	if privilege.IsClusterLevel(priv) {
		db = privilege.Any
	}
	return a.policy().subjectOf(who).allows(priv, db, name)
}

// IsAdmin reports whether who passes every check (root, or role admin).
func (a *Authorizer) IsAdmin(who Principal) bool { return a.policy().subjectOf(who).all }

// RolesOf lists who's roles, public included.
func (a *Authorizer) RolesOf(who Principal) []string { return a.policy().subjectOf(who).roles }

// SeesCollection reports whether a collection shows for who in db.
func (a *Authorizer) SeesCollection(who Principal, db, name string) bool {
	return a.policy().subjectOf(who).seesCollection(db, name)
}

// SeesDatabase reports whether a database shows for who.
func (a *Authorizer) SeesDatabase(who Principal, db string) bool {
	return a.policy().subjectOf(who).seesDatabase(db)
}

func sourceOf(who Principal) string {
	if who.External() {
		return who.Source
	}
	return "local"
}

// view reads bytes of the request as a string without copying them: the
// decision compares and forgets them; anything kept is cloned first.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
