package console

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authproxy/authproxy/auth"
	"github.com/authproxy/authproxy/config"
	"github.com/authproxy/authproxy/credentials"
	"github.com/authproxy/authproxy/edge"
	"github.com/authproxy/authproxy/rbac"
	"github.com/authproxy/authproxy/usermgmt"
)

type env struct {
	t      *testing.T
	store  *credentials.FileStore
	users  *usermgmt.Service
	con    *Console
	server *httptest.Server
}

func newEnv(t *testing.T, secure bool) *env {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := credentials.OpenFile(filepath.Join(t.TempDir(), "credentials.yaml"), credentials.FileOptions{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := auth.NewVerifier(auth.VerifierOptions{Store: store, CacheSize: 64, CacheTTL: time.Minute, MaxConcurrentHashes: 1})
	if err != nil {
		t.Fatal(err)
	}
	table, err := rbac.NewTable()
	if err != nil {
		t.Fatal(err)
	}
	authz := rbac.NewAuthorizer(store, table, rbac.Options{EnablePublicPrivilege: true}, logger, nil)
	users := usermgmt.NewService(usermgmt.Options{Store: store, Logger: logger, Authorizer: authz, Passwords: verifier, Locks: verifier})
	failures := edge.NewFailureLog(logger)
	con := New(Options{
		Authn: auth.NewAuthenticator(verifier, failures, true), Users: users, Authz: authz, Store: store,
		Denials: failures.Denials, Gatherer: prometheus.NewRegistry(),
		Identities: func() config.Identities { return config.Identities{} },
		Status:     func() Status { return Status{Version: "test", Forwarding: "grpc", Store: "file"} },
		Secure:     secure, IdleTimeout: time.Minute, MaxSessions: 2, Logger: logger,
	})
	var srv *httptest.Server
	if secure {
		srv = httptest.NewTLSServer(con)
	} else {
		srv = httptest.NewServer(con)
	}
	t.Cleanup(srv.Close)
	return &env{t: t, store: store, users: users, con: con, server: srv}
}

// client is a browser-like client: a cookie jar, no redirects followed.
func (e *env) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	c := *e.server.Client() // a copy: the server's client is one shared value
	c.Jar = jar
	c.Timeout = 10 * time.Second
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

func (e *env) signIn(c *http.Client, user, password string) *http.Response {
	e.t.Helper()
	resp, err := c.PostForm(e.server.URL+"/login", url.Values{"user": {user}, "password": {password}})
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func (e *env) get(c *http.Client, path string) (int, string) {
	e.t.Helper()
	resp, err := c.Get(e.server.URL + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestSessionCookieIsSecureUnderTLS(t *testing.T) {
	for _, secure := range []bool{false, true} {
		e := newEnv(t, secure)
		resp := e.signIn(e.client(), "root", credentials.DefaultRootPassword)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign in: %d", resp.StatusCode)
		}
		var ck *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == cookieName {
				ck = c
			}
		}
		if ck == nil {
			t.Fatal("no session cookie")
		}
		if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure != secure {
			t.Fatalf("TLS %t: cookie HttpOnly %t SameSite %v Secure %t, want HttpOnly, SameSite=Strict, Secure %t", secure, ck.HttpOnly, ck.SameSite, ck.Secure, secure)
		}
	}
}

func TestSessionEndsWhenIdleOrWhenThePasswordChanges(t *testing.T) {
	e := newEnv(t, false)
	now := time.Now()
	e.con.sessions.now = func() time.Time { return now }
	c := e.client()
	e.signIn(c, "root", credentials.DefaultRootPassword)
	if code, _ := e.get(c, "/users"); code != http.StatusOK {
		t.Fatalf("signed in: /users %d", code)
	}
	now = now.Add(61 * time.Second)
	if code, _ := e.get(c, "/users"); code != http.StatusSeeOther {
		t.Fatalf("after the idle timeout: /users %d, want a redirect to /login", code)
	}

	e.signIn(c, "root", credentials.DefaultRootPassword)
	caller := usermgmt.Caller{Principal: rbac.Principal{User: "root"}, Authenticated: true}
	if err := e.users.UpdatePassword(context.Background(), caller, "root", credentials.DefaultRootPassword, "Another-root-pw-1"); err != nil {
		t.Fatal(err)
	}
	if code, _ := e.get(c, "/users"); code != http.StatusSeeOther {
		t.Fatalf("after root's password changed: /users %d, want the session ended", code)
	}
}

func TestSessionsAreBounded(t *testing.T) {
	e := newEnv(t, false)
	first := e.client()
	e.signIn(first, "root", credentials.DefaultRootPassword)
	for range 2 {
		if resp := e.signIn(e.client(), "root", credentials.DefaultRootPassword); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign in: %d", resp.StatusCode)
		}
	}
	if code, _ := e.get(first, "/now"); code != http.StatusSeeOther {
		t.Fatalf("the longest idle of 3 sessions (max 2): %d, want signed out", code)
	}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func TestChangesNeedTheSessionsToken(t *testing.T) {
	e := newEnv(t, false)
	c := e.client()
	e.signIn(c, "root", credentials.DefaultRootPassword)
	_, page := e.get(c, "/users")
	token := csrfField.FindStringSubmatch(page)[1]
	post := func(form url.Values, origin string) int {
		req, _ := http.NewRequest("POST", e.server.URL+"/users/create", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	form := url.Values{"name": {"bob"}, "password": {"Bob-pw-123"}}
	if code := post(form, ""); code != http.StatusForbidden {
		t.Errorf("no token: %d", code)
	}
	form.Set("csrf", token)
	if code := post(form, "null"); code != http.StatusForbidden {
		t.Errorf("Origin null: %d", code)
	}
	if code := post(form, e.server.URL); code != http.StatusOK {
		t.Errorf("the token and the console's origin: %d", code)
	}
	if _, ok := e.store.Current().User("bob"); !ok {
		t.Error("bob was not created")
	}
	big := url.Values{"csrf": {token}, "name": {strings.Repeat("x", maxFormBytes)}}
	if code := post(big, ""); code != http.StatusForbidden && code != http.StatusRequestEntityTooLarge {
		t.Errorf("a form past %d bytes: %d", maxFormBytes, code)
	}
}
