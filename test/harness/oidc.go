package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// OIDC is a real OpenID provider on loopback: zitadel/oidc's example OP
// (discovery, JWKS, authorization code flow with its login form), with the
// users the test adds and a "groups" claim in their ID tokens.
type OIDC struct {
	// Issuer is the iss of its tokens, with the trailing slash.
	Issuer   string
	ClientID string
	// KeyFetches counts requests for the JWKS.
	KeyFetches atomic.Int64

	t        testing.TB
	addr     string
	srv      *http.Server
	handler  atomic.Pointer[http.Handler]
	mu       sync.Mutex
	users    map[string]*oidcUser // by ID
	lifetime atomic.Int64
	// keysDelay delays each JWKS answer (SetKeysDelay).
	keysDelay atomic.Int64
}

type oidcUser struct {
	user   storage.User
	groups []string
	// emailVerified, when set, is the email_verified claim of the user's
	// tokens, of any JSON type (a provider that sends "false" as a string).
	emailVerified any
	// claims are more claims of the user's tokens (SetClaim).
	claims map[string]any
}

const oidcRedirect = "http://127.0.0.1:1/callback"

// StartOIDC starts the provider; it is stopped at test end.
func StartOIDC(t testing.TB) *OIDC {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &OIDC{t: t, ClientID: "authproxy-test", users: map[string]*oidcUser{}, addr: ln.Addr().String(),
		Issuer: fmt.Sprintf("http://%s/", ln.Addr())}
	o.lifetime.Store(int64(time.Hour))
	o.Register()
	o.RotateKey()
	o.serve(ln)
	t.Cleanup(o.Stop)
	return o
}

func (o *OIDC) serve(ln net.Listener) {
	o.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/keys" {
			o.KeyFetches.Add(1)
			time.Sleep(time.Duration(o.keysDelay.Load()))
		}
		(*o.handler.Load()).ServeHTTP(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = o.srv.Serve(ln) }()
}

// Stop takes the provider down; Start brings it back on the same address,
// with the same keys.
func (o *OIDC) Stop() { _ = o.srv.Close() }

func (o *OIDC) Start() {
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		o.t.Fatal(err)
	}
	o.serve(ln)
}

// Register registers ClientID as a web client (secret "client-secret").
func (o *OIDC) Register() {
	storage.RegisterClients(storage.WebClient(o.ClientID, "client-secret", oidcRedirect))
}

// RegisterPublicClient registers a public client (no secret, PKCE) whose
// one redirect URI is redirect.
func (o *OIDC) RegisterPublicClient(id, redirect string) {
	storage.RegisterClients(storage.NativeClient(id, redirect))
}

// RotateKey replaces the provider's signing key (a new key ID): tokens
// issued before no longer verify against its JWKS. Users and clients stay.
func (o *OIDC) RotateKey() {
	st := &opStorage{Storage: storage.NewStorage(o), o: o}
	h := http.Handler(exampleop.SetupServer(o.Issuer, st, nil, false))
	o.handler.Store(&h)
}

// SetKeysDelay makes the JWKS answer d after each request, as a provider
// across a network does: a fetch of its keys takes more than a loopback
// round trip.
func (o *OIDC) SetKeysDelay(d time.Duration) { o.keysDelay.Store(int64(d)) }

// SetTokenLifetime sets the lifetime of the ID tokens issued from now on.
func (o *OIDC) SetTokenLifetime(d time.Duration) { o.lifetime.Store(int64(d)) }

// AddUser adds a user with a password, an email and groups.
func (o *OIDC) AddUser(username, password string, groups ...string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	id := fmt.Sprintf("id-%d", len(o.users)+1)
	o.users[id] = &oidcUser{groups: groups, user: storage.User{
		ID: id, Username: username, Password: password, FirstName: username, LastName: "Test",
		Email: username + "@example.org", EmailVerified: true, PreferredLanguage: language.English,
	}}
}

// GetUserByID, GetUserByUsername and ExampleClientID make OIDC the
// example storage's storage.UserStore.
// SetEmailVerified makes the email_verified claim of username's next tokens
// v, whatever its type; nil leaves the claim out.
func (o *OIDC) SetEmailVerified(username string, v any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, u := range o.users {
		if u.user.Username == username {
			// The registered claim is omitted when false; the extra claim
			// then carries v as it is.
			u.user.EmailVerified = false
			u.emailVerified = v
		}
	}
}

// SetClaim adds claim, with value v of any JSON type, to username's next
// tokens.
func (o *OIDC) SetClaim(username, claim string, v any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, u := range o.users {
		if u.user.Username == username {
			if u.claims == nil {
				u.claims = map[string]any{}
			}
			u.claims[claim] = v
		}
	}
}

func (o *OIDC) GetUserByID(id string) *storage.User {
	o.mu.Lock()
	defer o.mu.Unlock()
	if u := o.users[id]; u != nil {
		c := u.user
		return &c
	}
	return nil
}

func (o *OIDC) GetUserByUsername(name string) *storage.User {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, u := range o.users {
		if u.user.Username == name {
			c := u.user
			return &c
		}
	}
	return nil
}

func (o *OIDC) ExampleClientID() string { return storage.ServiceUserID }

// opStorage is the example storage with ID tokens that carry the profile
// and the groups, and live as long as SetTokenLifetime says.
type opStorage struct {
	*storage.Storage
	o *OIDC
}

func (s *opStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return testClient{Client: c, lifetime: time.Duration(s.o.lifetime.Load())}, nil
}

func (s *opStorage) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, info, req, scopes); err != nil {
		return err
	}
	s.o.mu.Lock()
	defer s.o.mu.Unlock()
	if u := s.o.users[req.GetSubject()]; u != nil {
		if len(u.groups) > 0 {
			info.AppendClaims("groups", u.groups)
		}
		if u.emailVerified != nil {
			info.AppendClaims("email_verified", u.emailVerified)
		}
		for claim, v := range u.claims {
			info.AppendClaims(claim, v)
		}
	}
	return nil
}

type testClient struct {
	op.Client
	lifetime time.Duration
}

func (c testClient) IDTokenLifetime() time.Duration       { return c.lifetime }
func (c testClient) IDTokenUserinfoClaimsAssertion() bool { return true }

// Login runs the authorization code flow as a browser would (the login
// form, the callback, the code exchange) and returns the ID token.
func (o *OIDC) Login(username, password string) (string, error) {
	client := &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	next := func(resp *http.Response, err error) (*url.URL, error) {
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
			return nil, fmt.Errorf("%s %s: %s: %.300s", resp.Request.Method, resp.Request.URL.Path, resp.Status, body)
		}
		return resp.Location()
	}
	q := url.Values{"client_id": {o.ClientID}, "redirect_uri": {oidcRedirect}, "response_type": {"code"},
		"scope": {"openid profile email"}, "state": {"s"}, "nonce": {"n"}}
	loc, err := next(client.Get(o.Issuer + "auth?" + q.Encode()))
	if err != nil {
		return "", fmt.Errorf("authorize: %w", err)
	}
	id := loc.Query().Get("authRequestID")
	loc, err = next(client.PostForm(o.Issuer+"login/username", url.Values{"username": {username}, "password": {password}, "id": {id}}))
	if err != nil {
		return "", fmt.Errorf("login: %w", err)
	}
	base, _ := url.Parse(o.Issuer)
	loc, err = next(client.Get(base.ResolveReference(loc).String()))
	if err != nil {
		return "", fmt.Errorf("callback: %w", err)
	}
	code := loc.Query().Get("code")
	if code == "" {
		return "", fmt.Errorf("no code in %s", loc)
	}
	req, _ := http.NewRequest(http.MethodPost, o.Issuer+"oauth/token", strings.NewReader(url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {oidcRedirect}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(o.ClientID, "client-secret")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var tok struct {
		IDToken string `json:"id_token"`
		Error   string `json:"error_description"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.IDToken == "" {
		return "", fmt.Errorf("token exchange: %s %v %s", resp.Status, err, tok.Error)
	}
	Secret(tok.IDToken)
	return tok.IDToken, nil
}
