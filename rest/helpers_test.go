package rest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authproxy/authproxy/admission"
	"github.com/authproxy/authproxy/auth"
	"github.com/authproxy/authproxy/credentials"
	"github.com/authproxy/authproxy/edge"
	"github.com/authproxy/authproxy/rbac"
	"github.com/authproxy/authproxy/usermgmt"
)

const rootAuth = "Bearer root:" + credentials.DefaultRootPassword

// syncBuffer collects log output written from server goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type testEnv struct {
	store   *credentials.FileStore
	authn   *auth.Authenticator
	users   *usermgmt.Service
	handler http.Handler
	proxy   *httptest.Server
	logs    *syncBuffer
	headers *edge.HeaderPolicy
}

// newEnv starts the handler in front of backend (a URL; nil for a closed
// port) with a fresh credential file holding root/Milvus.
func newEnv(t *testing.T, backend *url.URL, tweak func(*Options)) *testEnv {
	t.Helper()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	store, err := credentials.OpenFile(filepath.Join(t.TempDir(), "credentials.yaml"), credentials.FileOptions{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := auth.NewVerifier(auth.VerifierOptions{Store: store, CacheSize: 64, CacheTTL: time.Minute, MaxConcurrentHashes: 4})
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{
		store: store,
		authn: auth.NewAuthenticator(verifier, edge.NewFailureLog(logger), true),
		users: usermgmt.NewService(usermgmt.Options{Store: store, Logger: logger, Authorizer: newAuthorizer(t, store, logger)}),
		logs:  logs,
	}
	e.headers = edge.NewHeaderPolicy("X-Milvus-User")
	if backend == nil {
		backend = closedURL(t)
	}
	opts := Options{
		Admitter: admission.NewAdmitter(admission.Options{Authn: e.authn, Headers: e.headers}),
		Users:    e.users,
		Backend:  backend,
		Logger:   logger,
	}
	if tweak != nil {
		tweak(&opts)
	}
	e.handler = NewHandler(opts)
	e.proxy = httptest.NewServer(e.handler)
	t.Cleanup(e.proxy.Close)
	return e
}

// closedURL is the address of a port nothing listens on.
func closedURL(t *testing.T) *url.URL {
	t.Helper()
	s := httptest.NewServer(http.NotFoundHandler())
	u, _ := url.Parse(s.URL)
	s.Close()
	return u
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// addUser creates a user directly in the store through the service.
func (e *testEnv) addUser(t *testing.T, name, password string, roles ...string) {
	t.Helper()
	if err := e.users.CreateUser(context.Background(), usermgmt.Caller{}, name, password, ""); err != nil {
		t.Fatal(err)
	}
	for _, r := range roles {
		if err := e.users.GrantRole(context.Background(), usermgmt.Caller{}, name, r); err != nil {
			t.Fatal(err)
		}
	}
}

type response struct {
	status int
	header http.Header
	body   string
}

// post sends body to path with the Authorization header authz ("" = none).
func (e *testEnv) post(t *testing.T, path, authz, body string, extra ...string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.proxy.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		req.Header.Set(extra[i], extra[i+1])
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// want checks status and exact body.
func (r response) want(t *testing.T, status int, body string) {
	t.Helper()
	if r.status != status || r.body != body {
		t.Fatalf("got HTTP %d %s\nwant HTTP %d %s", r.status, r.body, status, body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
}

// envelope decodes a reply for checks on code and message.
func (r response) envelope(t *testing.T) (code int32, message string) {
	t.Helper()
	var env struct {
		Code    int32  `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(r.body), &env); err != nil {
		t.Fatalf("HTTP %d, body %q is no envelope: %v", r.status, r.body, err)
	}
	return env.Code, env.Message
}

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func newAuthorizer(t *testing.T, store credentials.Store, logger *slog.Logger) *rbac.Authorizer {
	t.Helper()
	table, err := rbac.NewTable()
	if err != nil {
		t.Fatal(err)
	}
	return rbac.NewAuthorizer(store, table, rbac.Options{EnablePublicPrivilege: true}, logger, nil)
}
