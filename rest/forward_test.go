package rest

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recordingBackend is a fake Milvus REST port that remembers the last
// request's headers and answers with the size and SHA-256 of the body read.
type recordingBackend struct {
	url   *url.URL
	calls atomic.Int64
	mu    sync.Mutex
	last  http.Header
}

func newRecordingBackend(t *testing.T) *recordingBackend {
	t.Helper()
	b := &recordingBackend{}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.calls.Add(1)
		b.mu.Lock()
		b.last = r.Header.Clone()
		b.mu.Unlock()
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"code":0,"data":{"path":%q,"bytes":%d,"sha256":%q}}`, r.URL.Path, n, hex.EncodeToString(h.Sum(nil)))
	}))
	t.Cleanup(s.Close)
	b.url = mustURL(t, s.URL)
	return b
}

func (b *recordingBackend) header() http.Header {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

func sum(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

func TestForwardRewritesHeaders(t *testing.T) {
	backend := newRecordingBackend(t)
	e := newEnv(t, backend.url, nil)
	e.addUser(t, "alice", "alice-pw1")

	r := e.post(t, "/v2/vectordb/collections/list", "Bearer alice:alice-pw1", `{}`,
		"X-Authproxy-User", "root", "X-Milvus-User", "root", "DB-Name", "db1")
	r.want(t, http.StatusOK, fmt.Sprintf(`{"code":0,"data":{"path":"/v2/vectordb/collections/list","bytes":2,"sha256":%q}}`, sum([]byte("{}"))))
	h := backend.header()
	if got := h.Values("X-Milvus-User"); len(got) != 1 || got[0] != "alice" {
		t.Fatalf("identity header %q, want [alice]", got)
	}
	for _, k := range []string{"Authorization", "X-Authproxy-User"} {
		if v, ok := h[k]; ok {
			t.Fatalf("backend got %s: %q", k, v)
		}
	}
	if h.Get("DB-Name") != "db1" || h.Get("Content-Type") != "application/json" {
		t.Fatalf("client headers lost: %v", h)
	}

	// The header is live: renamed, the old name is still refused from clients.
	renamed := "X-Caller"
	e.headers.SetIdentityHeader(renamed)
	e.post(t, "/v2/vectordb/collections/list", "Bearer alice:alice-pw1", `{}`, "X-Milvus-User", "root", "X-Caller", "root")
	h = backend.header()
	if h.Get("X-Caller") != "alice" || h.Get("X-Milvus-User") != "" {
		t.Fatalf("after rename: X-Caller %q, X-Milvus-User %q", h.Get("X-Caller"), h.Get("X-Milvus-User"))
	}

	// No identity header configured: none sent, client copies still removed.
	none := ""
	e.headers.SetIdentityHeader(none)
	e.post(t, "/v2/vectordb/collections/list", "Bearer alice:alice-pw1", `{}`, "X-Authproxy-User", "root", "X-Caller", "root")
	h = backend.header()
	if h.Get("X-Caller") != "" || h.Get("X-Authproxy-User") != "" || h.Get("X-Milvus-User") != "" {
		t.Fatalf("identity headers reached the backend: %v", h)
	}
}

func TestForwardAuthenticationDisabled(t *testing.T) {
	backend := newRecordingBackend(t)
	e := newEnv(t, backend.url, nil)
	e.authn.SetEnabled(false)
	r := e.post(t, "/v2/vectordb/collections/list", "Bearer root:whatever", `{}`, "X-Milvus-User", "root")
	if r.status != http.StatusOK {
		t.Fatalf("HTTP %d %s", r.status, r.body)
	}
	h := backend.header()
	if h.Get("Authorization") != "" || h.Get("X-Milvus-User") != "" {
		t.Fatalf("credential or asserted identity reached the backend: %v", h)
	}
}

// A 10 MiB body reaches the backend intact, and the backend sees its start
// before the client has sent the rest: the proxy streams, it does not buffer.
func TestForwardStreamsLargeBody(t *testing.T) {
	const size, first = 10 << 20, 1 << 20
	data := make([]byte, size)
	rand.Read(data)
	gotFirst := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		if _, err := io.CopyN(h, r.Body, first); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		close(gotFirst)
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"code":0,"data":{"bytes":%d,"sha256":%q}}`, n+first, hex.EncodeToString(h.Sum(nil)))
	}))
	defer backend.Close()
	e := newEnv(t, mustURL(t, backend.URL), nil)

	pr, pw := io.Pipe()
	go func() {
		pw.Write(data[:first])
		select {
		case <-gotFirst:
			pw.Write(data[first:])
			pw.Close()
		case <-time.After(10 * time.Second):
			pw.CloseWithError(fmt.Errorf("backend never saw the first MiB: the body is buffered"))
		}
	}()
	req, _ := http.NewRequest(http.MethodPost, e.proxy.URL+"/v2/vectordb/entities/insert", pr)
	req.Header.Set("Authorization", rootAuth)
	r := do(t, req)
	r.want(t, http.StatusOK, fmt.Sprintf(`{"code":0,"data":{"bytes":%d,"sha256":%q}}`, size, sum(data)))
}

func TestForwardBodyLimit(t *testing.T) {
	backend := newRecordingBackend(t)
	e := newEnv(t, backend.url, func(o *Options) { o.MaxBodyBytes = 1 << 20 })
	const refused = `{"code":1102,"message":"request body too large: the limit is 1048576 bytes"}`

	// Exactly the limit passes.
	r := e.post(t, "/v2/vectordb/entities/insert", rootAuth, strings.Repeat("x", 1<<20))
	if r.status != http.StatusOK {
		t.Fatalf("body at the limit: HTTP %d %s", r.status, r.body)
	}
	calls := backend.calls.Load()

	// Declared too large: refused before the backend.
	e.post(t, "/v2/vectordb/entities/insert", rootAuth, strings.Repeat("x", 1<<20+1)).want(t, http.StatusRequestEntityTooLarge, refused)
	if backend.calls.Load() != calls {
		t.Fatal("an oversized body with Content-Length reached the backend")
	}

	// Chunked, no length: cut off while streaming.
	req, _ := http.NewRequest(http.MethodPost, e.proxy.URL+"/v2/vectordb/entities/insert",
		io.MultiReader(bytes.NewReader(make([]byte, 2<<20))))
	req.Header.Set("Authorization", rootAuth)
	do(t, req).want(t, http.StatusRequestEntityTooLarge, refused)
}

func TestForwardBackendDown(t *testing.T) {
	down := closedURL(t)
	e := newEnv(t, down, nil)
	r := e.post(t, "/v2/vectordb/collections/list", rootAuth, `{}`)
	code, msg := r.envelope(t)
	if r.status != http.StatusBadGateway || code != 2 || !strings.HasPrefix(msg, "backend "+down.String()+" unavailable: ") {
		t.Fatalf("got HTTP %d %s, want 502 code 2 naming %s", r.status, r.body, down)
	}
	if !strings.Contains(e.logs.String(), "rest backend unavailable") {
		t.Fatalf("no log line:\n%s", e.logs)
	}
}

func TestForwardTimeout(t *testing.T) {
	release := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer backend.Close()
	defer close(release)
	e := newEnv(t, mustURL(t, backend.URL), func(o *Options) { o.Timeout = 200 * time.Millisecond })
	r := e.post(t, "/v2/vectordb/entities/search", rootAuth, `{}`)
	code, msg := r.envelope(t)
	if r.status != http.StatusGatewayTimeout || code != 10001 || !strings.Contains(msg, "did not answer within 200ms") {
		t.Fatalf("got HTTP %d %s, want 504 code 10001", r.status, r.body)
	}
}

// A verified client certificate identifies the caller on its own, and a
// token for another user is refused.
func TestClientCertificate(t *testing.T) {
	backend := newRecordingBackend(t)
	e := newEnv(t, backend.url, nil)
	e.addUser(t, "alice", "alice-pw1")
	e.authn.SetCertIdentity(func(c *x509.Certificate) (string, error) { return c.Subject.CommonName, nil })
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "alice"}}
	serve := func(authz string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/v2/vectordb/collections/list", strings.NewReader(`{}`))
		req.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert}}}
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		return rec
	}
	if rec := serve(""); rec.Code != http.StatusOK || backend.header().Get("X-Milvus-User") != "alice" {
		t.Fatalf("certificate alone: HTTP %d %s, identity %q", rec.Code, rec.Body, backend.header().Get("X-Milvus-User"))
	}
	if rec := serve(rootAuth); rec.Code != http.StatusUnauthorized || rec.Body.String() != unauthenticated {
		t.Fatalf("certificate alice with root's token: HTTP %d %s", rec.Code, rec.Body)
	}
	if !strings.Contains(e.logs.String(), "reason=certificate_mismatch") {
		t.Fatalf("no mismatch log line:\n%s", e.logs)
	}
}
