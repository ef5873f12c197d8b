package admission

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/authproxy/authproxy/auth"
	"github.com/authproxy/authproxy/credentials"
	"github.com/authproxy/authproxy/edge"
	"github.com/authproxy/authproxy/rbac"
)

const password = "pw-of-everyone"

func method(name string) string { return "/" + rbac.Service + "/" + name }

// newAdmitter: alice holds role reader (Search on books in db1), ops is
// admin, nobody holds no role.
func newAdmitter(t *testing.T) (*Admitter, *edge.HeaderPolicy) {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	store, err := credentials.OpenFile(filepath.Join(t.TempDir(), "credentials.yaml"), credentials.FileOptions{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	hash, err := credentials.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	err = store.Update(context.Background(), func(s *credentials.Set) error {
		s.PutRole(&credentials.Role{Name: "reader"})
		s.PutUser(&credentials.User{Name: "alice", PasswordHash: hash, Roles: []string{"reader"}})
		s.PutUser(&credentials.User{Name: "ops", PasswordHash: hash, Roles: []string{credentials.RoleAdmin}})
		s.PutUser(&credentials.User{Name: "nobody", PasswordHash: hash})
		s.PutGrant(&credentials.Grant{Role: "reader", Object: "Collection", ObjectName: "books", DB: "db1", Privilege: "Search"})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := auth.NewVerifier(auth.VerifierOptions{Store: store, CacheSize: 16, CacheTTL: time.Minute, MaxConcurrentHashes: 1})
	if err != nil {
		t.Fatal(err)
	}
	table, err := rbac.NewTable()
	if err != nil {
		t.Fatal(err)
	}
	policy := edge.NewHeaderPolicy(edge.DefaultIdentityHeader)
	a := NewAdmitter(Options{
		Authn:   auth.NewAuthenticator(verifier, edge.NewFailureLog(logger), true),
		Authz:   rbac.NewAuthorizer(store, table, rbac.Options{EnablePublicPrivilege: true}, logger, nil),
		Headers: policy,
		Local:   func(m string) bool { return m == method("CreateCredential") },
	})
	return a, policy
}

func token(user string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

func marshal(t *testing.T, m proto.Message) [][]byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{b}
}

// Every refusal of the step, with its gRPC status and REST answer; and
// what an admitted call's decision says.
func TestAdmit(t *testing.T) {
	a, _ := newAdmitter(t)
	search := marshal(t, &milvuspb.SearchRequest{CollectionName: "books", DbName: "db1"})
	for _, c := range []struct {
		name     string
		arrival  Arrival
		msg      [][]byte
		code     codes.Code
		http     int
		restCode int32
		// When admitted: who, and the target the decision read.
		user   string
		target Target
	}{
		{name: "path without a leading slash", arrival: Arrival{Protocol: GRPC, Path: "milvus.proto.milvus.MilvusService/Search", Credential: token("alice")},
			code: codes.Unimplemented, http: http.StatusNotFound, restCode: CodeUnexpected},
		{name: "path with a third part", arrival: Arrival{Protocol: GRPC, Path: "/a/b/c", Credential: token("alice")},
			code: codes.Unimplemented, http: http.StatusNotFound, restCode: CodeUnexpected},
		{name: "no credential", arrival: Arrival{Protocol: GRPC, Path: method("Search")},
			code: codes.Unauthenticated, http: http.StatusUnauthorized, restCode: CodeNeedAuthenticate},
		{name: "wrong password", arrival: Arrival{Protocol: GRPC, Path: method("Search"), Credential: base64.StdEncoding.EncodeToString([]byte("alice:nope"))},
			code: codes.Unauthenticated, http: http.StatusUnauthorized, restCode: CodeNeedAuthenticate},
		{name: "REST bearer with a wrong password", arrival: Arrival{Protocol: REST, Path: "/v2/vectordb/entities/search", Credential: "Bearer alice:nope"},
			code: codes.Unauthenticated, http: http.StatusUnauthorized, restCode: CodeNeedAuthenticate},
		{name: "relayed without an identity", arrival: Arrival{Protocol: GRPC, Path: method("Search"), Relayed: true},
			code: codes.Unauthenticated, http: http.StatusUnauthorized, restCode: CodeNeedAuthenticate},
		{name: "granted collection and database", arrival: Arrival{Protocol: GRPC, Path: method("Search"), Credential: token("alice")}, msg: search,
			user: "alice", target: Target{Privilege: "Search", Object: "Collection", Collection: "books", Database: "db1"}},
		{name: "the database from the dbname metadata", arrival: Arrival{Protocol: GRPC, Path: method("Search"), Credential: token("alice"), DB: "db1"},
			msg:  marshal(t, &milvuspb.SearchRequest{CollectionName: "books"}),
			user: "alice", target: Target{Privilege: "Search", Object: "Collection", Collection: "books", Database: "db1"}},
		{name: "the message's db_name wins over the metadata", arrival: Arrival{Protocol: GRPC, Path: method("Search"), Credential: token("alice"), DB: "db2"},
			msg: search, user: "alice", target: Target{Privilege: "Search", Object: "Collection", Collection: "books", Database: "db1"}},
		{name: "no database anywhere: default, not granted", arrival: Arrival{Protocol: GRPC, Path: method("Search"), Credential: token("alice")},
			msg:  marshal(t, &milvuspb.SearchRequest{CollectionName: "books"}),
			code: codes.PermissionDenied, http: http.StatusForbidden, restCode: CodeUnexpected},
		{name: "another collection", arrival: Arrival{Protocol: GRPC, Path: method("Search"), Credential: token("alice")},
			msg:  marshal(t, &milvuspb.SearchRequest{CollectionName: "films", DbName: "db1"}),
			code: codes.PermissionDenied, http: http.StatusForbidden, restCode: CodeUnexpected},
		{name: "no role", arrival: Arrival{Protocol: GRPC, Path: method("Search"), Credential: token("nobody")}, msg: search,
			code: codes.PermissionDenied, http: http.StatusForbidden, restCode: CodeUnexpected},
		{name: "admin", arrival: Arrival{Protocol: GRPC, Path: method("Search"), Credential: token("ops")}, msg: search,
			user: "ops", target: Target{Privilege: "Search", Object: "Collection", Collection: "books", Database: "db1"}},
		{name: "an admin-only stream", arrival: Arrival{Protocol: GRPC, Path: method("CreateReplicateStream"), Credential: token("alice")},
			code: codes.PermissionDenied, http: http.StatusForbidden, restCode: CodeUnexpected},
		{name: "the proxy's own method: decided by it", arrival: Arrival{Protocol: GRPC, Path: method("CreateCredential"), Credential: token("nobody")},
			user: "nobody", target: Target{Privilege: "CreateOwnership", Object: "Global", Database: "default"}},
		{name: "an open method", arrival: Arrival{Protocol: GRPC, Path: "/grpc.health.v1.Health/Check", Credential: token("nobody")}, msg: [][]byte{},
			user: "nobody", target: Target{Database: "default"}},
		{name: "relayed identity", arrival: Arrival{Protocol: GRPC, Path: method("Search"), Relayed: true, RelayedIdentity: `{"User":"alice","Source":"local"}`}, msg: search,
			user: "alice", target: Target{Privilege: "Search", Object: "Collection", Collection: "books", Database: "db1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, err := admit(a, c.arrival, c.msg)
			if c.code != codes.OK {
				var r *Refusal
				if !errors.As(err, &r) {
					t.Fatalf("admitted (%v), want a refusal %v", err, c.code)
				}
				if status.Code(err) != c.code || r.HTTP != c.http || r.Code != c.restCode || r.Message == "" {
					t.Fatalf("refusal %v (HTTP %d, code %d, %q), want %v, HTTP %d, code %d", status.Code(err), r.HTTP, r.Code, r.Message, c.code, c.http, c.restCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if d.Call.Identity.User != c.user || !d.Call.Authenticated {
				t.Fatalf("identity %+v, want %s", d.Call.Identity, c.user)
			}
			if c.user == "alice" && !slices.Contains(d.Roles(), "reader") {
				t.Errorf("roles %v, want reader among them", d.Roles())
			}
			got, err := d.Target()
			if err != nil || got != c.target {
				t.Fatalf("target %+v (%v), want %+v", got, err, c.target)
			}
		})
	}
}

// A stream whose rule names an object is refused, even to an admin: its
// later messages could name other objects than any one the decision read.
func TestStreamNamingAnObjectIsRefused(t *testing.T) {
	a, _ := newAdmitter(t)
	c, err := a.Open(Arrival{Protocol: GRPC, Path: method("Search"), Credential: token("ops")})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Authenticate(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Decide(c, nil); err != nil {
		t.Fatalf("a unary call of an admin without its message (REST, body not read): %v", err)
	}
	c.Unary = false // as a stream
	if _, reads := a.ReadsMessage(c); reads {
		t.Error("a stream's message is read")
	}
	if _, err := a.Decide(c, nil); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a stream naming an object: %v, want PermissionDenied", err)
	}
	if _, err := a.Decide(c, marshal(t, &milvuspb.SearchRequest{CollectionName: "books", DbName: "db1"})); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a stream naming an object, with a first message: %v, want PermissionDenied", err)
	}
}

func admit(a *Admitter, ar Arrival, msg [][]byte) (*Decision, error) {
	c, err := a.Open(ar)
	if err != nil {
		return nil, err
	}
	if err := a.Authenticate(context.Background(), c); err != nil {
		return nil, err
	}
	if c.Protocol == REST {
		c.SetMethod(method("Search"), true)
	}
	return a.Decide(c, msg)
}

// The one rule for when the message is read: unary calls whose rule names
// an object, never a stream, never the proxy's own methods, and nothing
// with authentication off.
func TestReadsMessage(t *testing.T) {
	a, _ := newAdmitter(t)
	for path, want := range map[string]bool{
		method("Search"):                  true,
		method("Insert"):                  true,
		method("ShowCollections"):         true,
		method("GetVersion"):              false, // names no object
		method("CreateReplicateStream"):   false, // a stream
		method("CreateCredential"):        false, // answered by the proxy
		"/grpc.health.v1.Health/Check":    false,
		"/grpc.health.v1.Health/Watch":    false,
		"/other.Service/NamesNoMilvusMsg": false,
	} {
		c, err := a.Open(Arrival{Protocol: GRPC, Path: path})
		if err != nil {
			t.Fatal(err)
		}
		if fields, reads := a.ReadsMessage(c); reads != want || reads && len(fields) == 0 {
			t.Errorf("%s: reads %v %v, want %v", path, reads, fields, want)
		}
	}
	a.authn.SetEnabled(false)
	c, _ := a.Open(Arrival{Protocol: GRPC, Path: method("Search")})
	if _, reads := a.ReadsMessage(c); reads {
		t.Error("the message is read with authentication off")
	}
	if d, err := a.Decide(c, nil); err != nil || d.Call.Authenticated {
		t.Errorf("authentication off: %v, %+v", err, d)
	}
}

// The one header list: the edge policy's strips, then the identity to a
// backend, or the peer and the relayed identity to the proxy's own server.
func TestUpstreamHeaders(t *testing.T) {
	a, policy := newAdmitter(t)
	sent := []Field{
		{Name: "authorization", Value: "c2VjcmV0"}, {Name: "sourceid", Value: "x"}, {Name: "X_Authproxy_User", Value: "root"},
		{Name: "dbname", Value: "db1"}, {Name: "x-custom", Value: "v", Sensitive: true}, {Name: edge.RelayedIdentityKey, Value: "forged"},
		{Name: edge.PeerKey, Value: "1.2.3.4:5"}, {Name: "te", Value: "trailers"},
	}
	alice := &Call{Arrival: Arrival{Peer: "10.0.0.1:4000"}, Identity: auth.Identity{User: "alice", Source: "local"}, Authenticated: true}
	for _, c := range []struct {
		name     string
		call     *Call
		identity string
		want     []Field
	}{
		{name: "to the backend", call: alice, identity: "x-authproxy-user",
			want: []Field{{Name: "dbname", Value: "db1"}, {Name: "x-custom", Value: "v", Sensitive: true}, {Name: "x-authproxy-user", Value: "alice"}}},
		{name: "identity header renamed", call: alice, identity: "x-caller",
			want: []Field{{Name: "dbname", Value: "db1"}, {Name: "x-custom", Value: "v", Sensitive: true}, {Name: "x-caller", Value: "alice"}}},
		{name: "no identity header", call: alice, identity: "",
			want: []Field{{Name: "dbname", Value: "db1"}, {Name: "x-custom", Value: "v", Sensitive: true}}},
		{name: "unauthenticated (authentication off)", call: &Call{}, identity: "x-authproxy-user",
			want: []Field{{Name: "dbname", Value: "db1"}, {Name: "x-custom", Value: "v", Sensitive: true}}},
		{name: "to the proxy's own server", call: &Call{Arrival: alice.Arrival, Identity: alice.Identity, Authenticated: true, Local: true}, identity: "x-authproxy-user",
			want: []Field{{Name: "dbname", Value: "db1"}, {Name: "x-custom", Value: "v", Sensitive: true},
				{Name: edge.PeerKey, Value: "10.0.0.1:4000"}, {Name: edge.RelayedIdentityKey, Value: EncodeRelayedIdentity(alice.Identity), Sensitive: true}}},
	} {
		policy.SetIdentityHeader(c.identity)
		var got []Field
		a.UpstreamHeaders(c.call, slices.Values(sent), func(f Field) { got = append(got, f) })
		if !slices.Equal(got, c.want) {
			t.Errorf("%s:\n got %v\nwant %v", c.name, got, c.want)
		}
	}
	// The same list as a map, edited in place (the grpc-go core's
	// metadata, REST's headers).
	policy.SetIdentityHeader("x-authproxy-user")
	m := map[string][]string{}
	for _, f := range sent {
		m[f.Name] = append(m[f.Name], f.Value)
	}
	a.UpstreamMap(alice, m, func(f Field) { m[f.Name] = append(m[f.Name], f.Value) })
	if want := map[string][]string{"dbname": {"db1"}, "x-custom": {"v"}, "x-authproxy-user": {"alice"}}; !maps.EqualFunc(m, want, slices.Equal) {
		t.Errorf("as a map: %v, want %v", m, want)
	}

	var trailers []Field
	a.UpstreamTrailers(slices.Values(sent), func(f Field) { trailers = append(trailers, f) })
	if want := []Field{{Name: "dbname", Value: "db1"}, {Name: "x-custom", Value: "v", Sensitive: true}}; !slices.Equal(trailers, want) {
		t.Errorf("trailers %v, want %v", trailers, want)
	}
}
