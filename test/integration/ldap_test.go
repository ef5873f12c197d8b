package integration

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus/client/v2/entity"
	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/authproxy/authproxy/test/harness"
)

const msgDirectoryDown = "authproxy: the LDAP directory is unavailable, retry later"

// ldapConfig is the identities.ldap section for a directory started by
// the harness. StartTLS reads groups from memberOf (as in Active
// Directory); LDAPS searches the groups instead.
func ldapConfig(l *harness.LDAP, startTLS bool, extra string) string {
	url, how := l.LDAPSURL, fmt.Sprintf(`    groupSearch:
      baseDN: %q
      filter: "(&(objectClass=groupOfNames)(member={dn}))"
`, harness.LDAPGroups)
	if startTLS {
		url, how = l.URL, fmt.Sprintf(`    startTLS: true
    userSearch:
      baseDN: %q
      filter: "(uid={user})"
    groupAttribute: memberOf
`, harness.LDAPPeople)
	}
	return fmt.Sprintf(`identities:
  ldap:
    url: %q
    caFile: %q
    bindDN: "uid={user},%s"
%s    groups:
      "cn=ml-readers,%s": [reader]
      "CN=ML-Admins, %s": [admin]
%s`, url, l.CAFile, harness.LDAPPeople, how, harness.LDAPGroups, harness.LDAPGroups, extra)
}

// A directory user logs in with the Go SDK as with a local password; her
// groups map to roles that RBAC enforces; the backend is told her name;
// the access log names the source; list_users shows local users only. The
// walk runs over StartTLS with memberOf, then over LDAPS with a group
// search.
func TestLDAPUsersGetTheRolesOfTheirGroups(t *testing.T) {
	for _, startTLS := range []bool{true, false} {
		name := "ldaps+groupSearch"
		if startTLS {
			name = "starttls+memberOf"
		}
		t.Run(name, func(t *testing.T) {
			l := harness.StartLDAP(t)
			alice := l.AddUser("alice", "Alice-dir-pw")
			l.AddUser("bob", "Bob-dir-pw")
			ops := l.AddUser("olga", "Olga-dir-pw")
			l.AddGroup("ml-readers", alice)
			l.AddGroup("ml-admins", ops)
			harness.Password("alice", "Alice-dir-pw")
			harness.Password("bob", "Bob-dir-pw")
			harness.Password("olga", "Olga-dir-pw")
			fake, p := startPair(t, harness.Options{Extra: ldapConfig(l, startTLS, "") + "log:\n  accessLog: true\n"})
			ctx := testCtx(t, 90*time.Second)
			root := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "root", Password: "Milvus"})
			createVectors(t, ctx, root, "books", 8)
			createVectors(t, ctx, root, "secret", 8)
			must(t, root.CreateRole(ctx, milvusclient.NewCreateRoleOption("reader")))
			must(t, root.GrantPrivilege(ctx, milvusclient.NewGrantPrivilegeOption("reader", "Collection", "Search", "books")))

			asAlice := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "alice", Password: "Alice-dir-pw"})
			fake.Recorder().Reset()
			_, err := asAlice.Search(ctx, milvusclient.NewSearchOption("books", 3, []entity.Vector{constVec(1, 8)}).WithANNSField("vec"))
			must(t, err)
			searches := fake.Recorder().CallsTo("Search")
			if len(searches) != 1 || !slices.Equal(searches[0].Metadata.Get("x-authproxy-user"), []string{"alice"}) {
				t.Fatalf("the backend's search: %d calls, identity %v; want one, as alice", len(searches), searches)
			}
			ids, vecs := vectors(2, 8)
			_, err = asAlice.Insert(ctx, milvusclient.NewColumnBasedInsertOption("books").WithInt64Column("id", ids).WithFloatVectorColumn("vec", 8, vecs))
			wantDenied(t, "alice inserts", err, deny("PrivilegeInsert", "alice", "default"))
			names, err := asAlice.ListCollections(ctx, milvusclient.NewListCollectionOption())
			must(t, err)
			if !slices.Equal(names, []string{"books"}) {
				t.Errorf("alice sees %v, want [books]", names)
			}

			// bob is in no mapped group: authenticated, allowed nothing.
			asBob := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "bob", Password: "Bob-dir-pw"})
			_, err = asBob.Search(ctx, milvusclient.NewSearchOption("books", 3, []entity.Vector{constVec(1, 8)}).WithANNSField("vec"))
			// Milvus refuses it at the SDK's describe, in the reply's status.
			wantNotPermitted(t, "bob searches books", err, "collection", "books")
			// olga's group DN is written in another case and spacing in the config.
			asOlga := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "olga", Password: "Olga-dir-pw"})
			must(t, asOlga.DropCollection(ctx, milvusclient.NewDropCollectionOption("secret")))

			m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
			err = getVersion(ctx, m, "alice:wrong-dir-pw")
			wantStatus(t, "a wrong directory password", err, codes.Unauthenticated, msgPassword)
			// An empty password is an anonymous bind in LDAP: never a login.
			err = getVersion(ctx, m, "alice:")
			if status.Code(err) != codes.Unauthenticated {
				t.Errorf("an empty password: %v, want Unauthenticated", err)
			}
			users, err := root.ListUsers(ctx, milvusclient.NewListUserOption())
			must(t, err)
			if !slices.Equal(users, []string{"root"}) {
				t.Errorf("list_users: %v, want the local users only ([root])", users)
			}
			if !p.WaitLog("user=alice source=ldap", 5*time.Second) {
				t.Errorf("no access log line names alice's source:\n%s", p.Logs())
			}
		})
	}
}

// A directory that is down is Unavailable, never an accept and never a
// wrong password; a bind already cached keeps working (for its TTL); the
// proxy recovers when the directory is back.
func TestLDAPDirectoryDown(t *testing.T) {
	l := harness.StartLDAP(t)
	l.AddGroup("ml-readers", l.AddUser("alice", "Alice-dir-pw"))
	l.AddUser("bob", "Bob-dir-pw")
	harness.Password("alice", "Alice-dir-pw")
	harness.Password("bob", "Bob-dir-pw")
	_, p := startPair(t, harness.Options{Extra: ldapConfig(l, true, "    timeout: 2s\n")})
	ctx := testCtx(t, 60*time.Second)
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	must(t, getVersion(ctx, m, "alice:Alice-dir-pw"))

	l.Stop()
	must(t, getVersion(ctx, m, "alice:Alice-dir-pw")) // cached
	for _, token := range []string{"bob:Bob-dir-pw", "bob:wrong", "alice:another-password"} {
		err := getVersion(ctx, m, token)
		wantStatus(t, token[:strings.Index(token, ":")]+" with the directory down", err, codes.Unavailable, msgDirectoryDown)
	}
	wantRefusalsCounted(t, p, "directory_unavailable", 3, 3)
	l.Start()
	within(t, 10*time.Second, "bob logs in once the directory is back", func() error {
		return getVersion(ctx, m, "bob:Bob-dir-pw")
	})
}

// Directory logins obey the lockout of local passwords: after the
// threshold of wrong passwords from one address, even the right one is
// refused there, and the directory is not asked.
func TestLDAPLockout(t *testing.T) {
	l := harness.StartLDAP(t)
	l.AddUser("alice", "Alice-dir-pw")
	harness.Password("alice", "Alice-dir-pw")
	extra := ldapConfig(l, false, "") + `auth:
  bruteForce:
    enabled: true
    threshold: 3
    backoff: 30s
    maxBackoff: 60s
    forgive: 10m
    tracked: 100
`
	_, p := startPair(t, harness.Options{Extra: extra})
	ctx := testCtx(t, 60*time.Second)
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	for i := 0; i < 3; i++ {
		if err := getVersion(ctx, m, "alice:guess"); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	err := getVersion(ctx, m, "alice:Alice-dir-pw")
	mustStatus(t, "the right password while locked", err, codes.Unauthenticated, msgPassword)
	wantRefusalsCounted(t, p, "locked_out", 1, -1)
}

// With a realm, names that end with it go to the directory even when a
// local user of that name exists; the part before the realm is the uid.
// Roles the store binds to that name (a local entry, which Milvus's name
// rules allow: hence a realm such as "_corp") add to the mapped ones.
func TestLDAPRealmAndStoreBindings(t *testing.T) {
	l := harness.StartLDAP(t)
	l.AddUser("carol", "Carol-dir-pw")
	harness.Password("carol_corp", "Carol-dir-pw")
	_, p := startPair(t, harness.Options{Extra: ldapConfig(l, false, `    realm: "_corp"
`)})
	ctx := testCtx(t, 90*time.Second)
	root := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "root", Password: "Milvus"})
	createVectors(t, ctx, root, "books", 8)
	// A local entry for the name, to bind a role to it; its password is
	// never checked, since the realm sends the name to the directory.
	harness.Password("carol_corp", "Local-pw-123")
	must(t, root.CreateUser(ctx, milvusclient.NewCreateUserOption("carol_corp", "Local-pw-123")))
	must(t, root.CreateRole(ctx, milvusclient.NewCreateRoleOption("reader")))
	must(t, root.GrantPrivilege(ctx, milvusclient.NewGrantPrivilegeOption("reader", "Collection", "Search", "books")))
	must(t, root.GrantRole(ctx, milvusclient.NewGrantRoleOption("carol_corp", "reader")))

	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	if err := getVersion(ctx, m, "carol_corp:Local-pw-123"); status.Code(err) != codes.Unauthenticated {
		t.Errorf("the local password of a realm name: %v, want Unauthenticated", err)
	}
	carol := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "carol_corp", Password: "Carol-dir-pw"})
	_, err := carol.Search(ctx, milvusclient.NewSearchOption("books", 3, []entity.Vector{constVec(1, 8)}).WithANNSField("vec"))
	must(t, err)
}

// The group mapping changes live with the config: a reload drops the
// cached binds, whose roles the old mapping gave, and a bad CA file in a
// reload is refused while the directory in force keeps working.
func TestLDAPConfigReload(t *testing.T) {
	l := harness.StartLDAP(t)
	l.AddGroup("ml-readers", l.AddUser("alice", "Alice-dir-pw"))
	harness.Password("alice", "Alice-dir-pw")
	_, p := startPair(t, harness.Options{Extra: ldapConfig(l, false, "")})
	ctx := testCtx(t, 60*time.Second)
	root := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "root", Password: "Milvus"})
	createVectors(t, ctx, root, "books", 8)
	must(t, root.CreateRole(ctx, milvusclient.NewCreateRoleOption("reader")))
	must(t, root.GrantPrivilege(ctx, milvusclient.NewGrantPrivilegeOption("reader", "Collection", "Search", "books")))
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	search := func() error {
		_, err := m.Search(withToken(ctx, "alice:Alice-dir-pw"), &milvuspb.SearchRequest{CollectionName: "books"})
		return err
	}
	must(t, search())

	rewriteConfig(t, p, `"cn=ml-readers,`+harness.LDAPGroups+`": [reader]`, `"cn=ml-readers,`+harness.LDAPGroups+`": [nothing]`)
	eventually(t, 3*time.Second, "the new mapping applies to alice's cached bind", func() error {
		if status.Code(search()) != codes.PermissionDenied {
			return fmt.Errorf("alice still searches")
		}
		return nil
	})
	rewriteConfig(t, p, fmt.Sprintf("caFile: %q", l.CAFile), `caFile: "/nonexistent/ca.pem"`)
	if !p.WaitLog("config reload refused", 3*time.Second) || !strings.Contains(p.Logs(), "identities.ldap.caFile") {
		t.Fatalf("a reload with a missing CA file is not refused by name:\n%s", p.Logs())
	}
	if err := getVersion(ctx, m, "alice:Alice-dir-pw"); err != nil {
		t.Fatalf("the directory in force after a refused reload: %v", err)
	}
}

// wantStatus and mustStatus check a refusal's code and exact message.
func wantStatus(t *testing.T, what string, err error, code codes.Code, msg string) {
	t.Helper()
	if st := status.Convert(err); st.Code() != code || st.Message() != msg {
		t.Errorf("%s: %v, want %s %q", what, err, code, msg)
	}
}

func mustStatus(t *testing.T, what string, err error, code codes.Code, msg string) {
	t.Helper()
	if st := status.Convert(err); st.Code() != code || st.Message() != msg {
		t.Fatalf("%s: %v, want %s %q", what, err, code, msg)
	}
}

// wantRefusalsCounted checks authproxy_auth_total for a failure reason:
// at least least, and at most most (-1: no bound).
func wantRefusalsCounted(t *testing.T, p *harness.Proxy, reason string, least, most float64) {
	t.Helper()
	got := metricValue(t, p, `authproxy_auth_total{reason="`+reason+`",result="failure"}`)
	if got < least || most >= 0 && got > most {
		t.Errorf("%s refusals counted: %v, want %v..%v", reason, got, least, most)
	}
}
