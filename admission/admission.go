package admission

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/authproxy/authproxy/auth"
	"github.com/authproxy/authproxy/edge"
	"github.com/authproxy/authproxy/ratelimit"
	"github.com/authproxy/authproxy/rbac"
)

// Protocol is how a call came in.
type Protocol string

const (
	GRPC Protocol = "grpc"
	REST Protocol = "rest"
)

// Arrival is what arrived, before anything is decided on it.
type Arrival struct {
	Protocol Protocol
	// Path is the gRPC :path, or the REST request's URL path.
	Path string
	// Peer is the client's host:port.
	Peer string
	// Cert is the verified client certificate, if any.
	Cert *x509.Certificate
	// Credential is the gRPC authorization metadata (base64) or the HTTP
	// Authorization header; "" when absent.
	Credential string
	// DB is the dbname metadata or the REST DB-Name header.
	DB string
	// Relayed says the call came from the frame relay over its in-memory
	// connection, which authenticated it already: RelayedIdentity is what
	// it established (edge.RelayedIdentityKey's value as grpc-go decodes
	// it: JSON).
	Relayed         bool
	RelayedIdentity string
}

// Call is the one record of a call on its way in: what arrived, the method
// it calls and, once authenticated, who calls.
type Call struct {
	Arrival
	// Method is the full gRPC method; for REST, the MilvusService method
	// the route stands for (SetMethod).
	Method string
	// Unary says the method is a known unary one (Milvus SDKs call every
	// data method unary).
	Unary bool
	// Local says the proxy answers the call itself.
	Local bool
	// Identity is who calls, when Authenticated.
	Identity      auth.Identity
	Authenticated bool
	// RequestBytes is the size of the request message when the decision
	// reads it (ReadsMessage: decompressed, or as its gRPC frame declares
	// it when decided on its leading fields), or of a REST body; 0 when
	// the decision reads none, on both gRPC cores alike.
	RequestBytes int64
}

type callKey struct{}

// WithCall returns ctx carrying the call record (the grpc-go core's
// interceptor to its handler and director).
func WithCall(ctx context.Context, c *Call) context.Context {
	return context.WithValue(ctx, callKey{}, c)
}

// CallFrom returns the call record WithCall put in ctx, nil if none.
func CallFrom(ctx context.Context) *Call {
	c, _ := ctx.Value(callKey{}).(*Call)
	return c
}

// Principal is the caller as the authorizer sees it.
func (c *Call) Principal() rbac.Principal { return c.Identity.Principal() }

// SetMethod names the MilvusService method a REST route stands for.
func (c *Call) SetMethod(method string, unary bool) { c.Method, c.Unary = method, unary }

// Options configure an Admitter.
type Options struct {
	Authn *auth.Authenticator
	// Authz decides on calls; nil authorizes every authenticated call.
	Authz   *rbac.Authorizer
	Headers *edge.HeaderPolicy
	// Local says which gRPC methods the proxy answers itself (nil: none).
	Local func(method string) bool
	// Limits are the per-tenant rate limits (nil: none), the last step.
	Limits *ratelimit.Limiter
}

// Admitter takes every call through the admission step.
type Admitter struct {
	authn   *auth.Authenticator
	authz   *rbac.Authorizer
	headers *edge.HeaderPolicy
	local   func(method string) bool
	limits  *ratelimit.Limiter
	unary   map[string]bool
	// steps run in order on every decided call: see the package doc.
	steps []step
	// rowPolicies are the store's row policies, compiled per snapshot.
	rowPolicies rowPolicyCache
}

// step is one check of Decide. It refuses with an error (a *Refusal, or a
// gRPC status that becomes one) or adds to the Decision.
type step struct {
	name  string
	check func(a *Admitter, d *Decision) error
}

// NewAdmitter returns the Admitter. A new check goes into steps, after
// "visibility" and before "ratelimit" (see the package doc).
func NewAdmitter(opts Options) *Admitter {
	a := &Admitter{authn: opts.Authn, authz: opts.Authz, headers: opts.Headers, local: opts.Local, limits: opts.Limits, unary: map[string]bool{}}
	if a.headers == nil {
		a.headers = edge.NewHeaderPolicy(edge.DefaultIdentityHeader)
	}
	for _, m := range UnaryMethods() {
		a.unary[m] = true
	}
	a.steps = []step{
		{"authorize", (*Admitter).authorize},
		{"visibility", (*Admitter).visibility},
		{"row security", (*Admitter).rowSecurity},
		{"ratelimit", (*Admitter).rateLimit},
	}
	return a
}

// SetLocal sets which methods the proxy answers itself, once the
// in-process server has its services; before serving, not during.
func (a *Admitter) SetLocal(local func(method string) bool) { a.local = local }

// Headers is the edge policy the header lists follow.
func (a *Admitter) Headers() *edge.HeaderPolicy { return a.headers }

// UnaryMethods lists MilvusService's unary methods and the health check:
// the calls decided on their request message, and those the grpc-go core
// forwards with one goroutine and one round trip.
func UnaryMethods() []string {
	d := milvuspb.MilvusService_ServiceDesc
	out := make([]string, 0, len(d.Methods)+1)
	for _, m := range d.Methods {
		out = append(out, "/"+d.ServiceName+"/"+m.MethodName)
	}
	return append(out, "/grpc.health.v1.Health/Check")
}

// Open starts the call record. A gRPC path that names no method is
// refused here, before authentication, as grpc-go refuses it.
func (a *Admitter) Open(ar Arrival) (*Call, error) {
	c := &Call{Arrival: ar}
	if ar.Protocol == REST {
		return c, nil
	}
	if _, _, ok := SplitMethod(ar.Path); !ok {
		return nil, malformedMethod(ar.Path)
	}
	c.Method = ar.Path
	c.Unary = a.unary[c.Method]
	c.Local = a.local != nil && a.local(c.Method)
	return c, nil
}

// Enabled reports whether calls are checked at all
// (common.security.authorizationEnabled).
func (a *Admitter) Enabled() bool { return a.authn != nil && a.authn.Enabled() }

// Authenticate establishes who calls; with authentication off, nobody.
func (a *Admitter) Authenticate(ctx context.Context, c *Call) error {
	if !a.Enabled() {
		return nil
	}
	if c.Relayed {
		return a.relayed(c)
	}
	var id auth.Identity
	var err error
	if c.Protocol == REST {
		id, err = a.authn.CheckHTTP(ctx, c.Credential, a.authCall(c))
	} else {
		id, err = a.authn.CheckToken(ctx, c.Credential, a.authCall(c))
	}
	return a.authenticated(c, id, err)
}

// QuickAuthenticate is Authenticate for a caller that must not wait (the
// frame relay's connection reader): done is false when the check needs a
// hash, a bind, a key fetch or a refusal's wait; Authenticate then does it.
func (a *Admitter) QuickAuthenticate(ctx context.Context, c *Call) (done bool, err error) {
	if !a.Enabled() {
		return true, nil
	}
	if c.Relayed {
		return true, a.relayed(c)
	}
	id, err, done := a.authn.QuickCheckToken(ctx, c.Credential, a.authCall(c))
	if !done {
		return false, nil
	}
	return true, a.authenticated(c, id, err)
}

func (a *Admitter) authCall(c *Call) auth.Call {
	return auth.Call{Protocol: string(c.Protocol), Target: c.Path, Peer: auth.HostOf(c.Peer), Cert: c.Cert}
}

func (a *Admitter) authenticated(c *Call, id auth.Identity, err error) error {
	if err != nil {
		return authRefusal(err)
	}
	c.Identity, c.Authenticated = id, true
	return nil
}

// relayed takes the identity the relay established (it authenticated the
// call on its way to the in-process server).
func (a *Admitter) relayed(c *Call) error {
	if c.RelayedIdentity == "" || json.Unmarshal([]byte(c.RelayedIdentity), &c.Identity) != nil {
		return authRefusal(&auth.Failure{Reason: auth.ReasonMissing, Message: auth.MsgMissing})
	}
	c.Authenticated = true
	return nil
}

// EncodeRelayedIdentity is the value of edge.RelayedIdentityKey for id,
// as it goes on the wire (a -bin key: the relay's HPACK sends it base64).
func EncodeRelayedIdentity(id auth.Identity) string {
	b, _ := json.Marshal(id)
	return base64.StdEncoding.EncodeToString(b)
}

// ReadsMessage says whether the decision on c reads its request message,
// and which top-level fields of it (the relay decides on the leading bytes
// that hold them, prefix.go in relay).
//
// The one rule for both gRPC cores: only a unary call is decided on its
// message. Milvus checks privileges in its unary interceptor chain alone
// (internal/distributed/proxy/service.go, proxy.PrivilegeInterceptor),
// pymilvus and the Go SDK call every data method unary, and a stream's
// later messages could name other objects than its first: a stream is
// decided on its method, and one whose rule names an object is refused
// (Decide with no message).
func (a *Admitter) ReadsMessage(c *Call) (fields []protowire.Number, reads bool) {
	if !a.Enabled() || a.authz == nil || c.Local || !c.Unary {
		return nil, false
	}
	fields, reads = a.authz.MessageFields(c.Method)
	if reads && a.limits != nil && a.limits.Configured() {
		for _, f := range ratelimit.ReadsFields(c.Method) {
			if !slices.Contains(fields, f) {
				fields = append(fields, f)
			}
		}
	}
	return fields, reads
}

// ReadsBody says whether a REST data route's decision reads its body: not
// for an admin, whom nothing the body names can refuse.
func (a *Admitter) ReadsBody(c *Call) bool {
	return a.Enabled() && a.authz != nil && c.Authenticated && !a.authz.IsAdmin(c.Principal())
}

// ReplyFilter rewrites a unary reply's bytes (a list the caller may only
// partly see).
type ReplyFilter func(reply []byte) ([]byte, error)

// Decision is what an admitted call may do: the call, what its decision
// read, and the filter of its reply. Steps after authorization read it
// (Principal, Roles, Target, Call.RequestBytes) and may add to it.
type Decision struct {
	Call *Call
	// Message is the request message (or its leading fields) the decision
	// read; nil when it read none.
	Message [][]byte
	// Filter, when not nil, rewrites the reply.
	Filter ReplyFilter
	// Rows, when not nil, is the call's row-level security: the request
	// is forwarded only as Rows rewrites it, read whole.
	Rows *RowScope

	a      *Admitter
	target *Target
}

// Principal is the caller as the authorizer sees it.
func (d *Decision) Principal() rbac.Principal { return d.Call.Principal() }

// Roles are the caller's roles: mapped from an external identity and
// bound in the store.
func (d *Decision) Roles() []string {
	if d.a.authz == nil || !d.Call.Authenticated {
		return nil
	}
	return d.a.authz.RolesOf(d.Principal())
}

// Target is what a call names, read as the authorizer reads it.
type Target struct {
	// Privilege and Object are the method's rule ("" for a method that
	// names no object).
	Privilege, Object string
	// Collection is the object's name ("" when it names none).
	Collection string
	// Database is the request's db_name, else the dbname metadata, else
	// "default".
	Database string
}

// Target reads the call's target from the message the decision read.
func (d *Decision) Target() (Target, error) {
	if d.target != nil {
		return *d.target, nil
	}
	t := Target{Database: d.Call.DB}
	if d.a.authz != nil {
		if rule, ok := d.a.authz.Table().Rule(d.Call.Method); ok {
			t.Privilege, t.Object = rule.Privilege, rule.Object
			scanned, err := rbac.Scan(rule, d.Message)
			if err != nil {
				return Target{}, status.Error(codes.InvalidArgument, "authproxy: "+err.Error())
			}
			t.Collection = string(scanned.Name)
			if len(scanned.DB) > 0 {
				t.Database = string(scanned.DB)
			}
		}
	}
	if t.Database == "" {
		t.Database = rbac.DefaultDB
	}
	d.target = &t
	return t, nil
}

// SeesCollection says whether the caller may see collection name of db
// (REST's list filter).
func (d *Decision) SeesCollection(db, name string) bool {
	return d.a.authz == nil || d.a.authz.SeesCollection(d.Principal(), db, name)
}

// SeesDatabase says whether the caller may see db (REST's list filter).
func (d *Decision) SeesDatabase(db string) bool {
	return d.a.authz == nil || d.a.authz.SeesDatabase(d.Principal(), db)
}

// CollectionRefusal is the refusal of a described collection the caller
// may not see, nil when it may (REST, whose reply is JSON).
func (d *Decision) CollectionRefusal(db, name string) *Refusal {
	if d.a.authz == nil {
		return nil
	}
	if st := d.a.authz.CollectionRefusal(d.rbacCall(), db, name); st != nil {
		return replyRefusal(st.Code, st.Reason)
	}
	return nil
}

// DatabaseRefusal is the refusal of a described database the caller may
// not see, nil when it may.
func (d *Decision) DatabaseRefusal(db string) *Refusal {
	if d.a.authz == nil {
		return nil
	}
	if st := d.a.authz.DatabaseRefusal(d.rbacCall(), db); st != nil {
		return replyRefusal(st.Code, st.Reason)
	}
	return nil
}

func (d *Decision) rbacCall() rbac.Call {
	return rbac.Call{Principal: d.Principal(), Method: d.Call.Method, MetadataDB: d.Call.DB, Message: d.Message}
}

// Decide runs the steps on an authenticated call and the request message
// its decision reads (nil when ReadsMessage or ReadsBody said it reads
// none). Every call that is forwarded is decided, so that every step sees
// it. With
// authentication off, and for the proxy's own methods (which decide on
// their own), every call is admitted.
func (a *Admitter) Decide(c *Call, msg [][]byte) (*Decision, error) {
	d := &Decision{Call: c, Message: msg, a: a}
	if !a.Enabled() || c.Local {
		return d, nil
	}
	if !c.Authenticated {
		return nil, authRefusal(&auth.Failure{Reason: auth.ReasonMissing, Message: auth.MsgMissing})
	}
	for _, s := range a.steps {
		if err := s.check(a, d); err != nil {
			var r *Refusal
			if errors.As(err, &r) {
				return nil, r
			}
			return nil, statusRefusal(err)
		}
	}
	return d, nil
}

// authorize is the privilege check (rbac.Authorizer.Authorize).
func (a *Admitter) authorize(d *Decision) error {
	if a.authz == nil {
		return nil
	}
	if _, named := a.authz.Table().Rule(d.Call.Method); named && !d.Call.Unary {
		// A stream whose messages name an object (see ReadsMessage).
		return status.Errorf(codes.PermissionDenied, "authproxy: %s cannot be authorized as a stream", d.Call.Method)
	}
	return a.authz.Authorize(d.rbacCall())
}

// visibility hides from lists and descriptions what the caller may not
// see (rbac.Authorizer.Visibility).
func (a *Admitter) visibility(d *Decision) error {
	if a.authz == nil {
		return nil
	}
	filter, err := a.authz.Visibility(d.rbacCall())
	if filter != nil {
		d.Filter = filter
	}
	return err
}

// rateLimit counts an authorized call against the per-tenant limits
// (package ratelimit), with its size and, for a Search, its nq as the
// message says; over a limit it is refused as Milvus refuses its own
// (rateRefusal).
func (a *Admitter) rateLimit(d *Decision) error {
	if a.limits == nil || !a.limits.Configured() {
		return nil
	}
	c := ratelimit.Call{User: d.Call.Identity.User, Source: d.Call.Identity.Source, Method: d.Call.Method, Bytes: int(d.Call.RequestBytes)}
	if a.limits.NeedsRoles() {
		c.Roles = d.Roles()
	}
	if a.limits.NeedsDB() {
		t, err := d.Target()
		if err != nil {
			return err
		}
		c.DB = t.Database
	}
	nq, ok := ratelimit.NQ(d.Call.Method, d.Message)
	if !ok {
		// Never a default for what cannot be read: the backend refuses
		// this message too.
		return status.Error(codes.InvalidArgument, "authproxy: malformed request message")
	}
	c.NQ = nq
	if v := a.limits.Admit(&c); !v.Admitted() {
		return rateRefusal(v, d.Call.Method, d.Call.Unary)
	}
	return nil
}

// SplitMethod reads a request's :path as the method it calls, or reports
// that it names none. Only "/service/method" names one, with neither part
// empty nor holding another "/": backends disagree on anything else.
// grpc-go 1.85 (this proxy, the fake backend) refuses a path without the
// leading "/", but grpc-go 1.65 (Milvus 2.5.24) strips that "/" only when
// it is there and routes "milvus.proto.milvus.MilvusService/DropCollection"
// to DropCollection, which the proxy would have classed as another
// service; and grpc-go routes "/a/b/c" to the unknown service handler as
// service "a/b".
func SplitMethod(path string) (service, method string, ok bool) {
	rest, found := strings.CutPrefix(path, "/")
	if !found {
		return "", "", false
	}
	service, method, found = strings.Cut(rest, "/")
	if !found || service == "" || method == "" || strings.Contains(method, "/") {
		return "", "", false
	}
	return service, method, true
}
