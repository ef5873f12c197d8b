package rest

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/authproxy/authproxy/auth"
	"github.com/authproxy/authproxy/edge"
	"github.com/authproxy/authproxy/rbac"
	"github.com/authproxy/authproxy/usermgmt"
)

// Defaults for Options.
const (
	// DefaultMaxBodyBytes bounds a forwarded request body. Milvus itself sets
	// no REST limit; 64 MiB fits large inserts while capping what one
	// client can send through the proxy, and what the proxy holds of a
	// body it must read whole to decide on (readBody).
	DefaultMaxBodyBytes int64 = 64 << 20
	// DefaultTimeout bounds one forwarded request, response included: long
	// enough for a slow search or a bulk insert, short enough to free a
	// stuck connection.
	DefaultTimeout = 5 * time.Minute
)

// maxUserBodyBytes bounds a /users/* body as gRPC bounds the same calls.
const maxUserBodyBytes = usermgmt.MaxRequestBytes

// apiPrefix is where Milvus's REST API v2 lives.
const apiPrefix = "/v2/vectordb/"

// ownPrefixes are the parts of the API the proxy answers itself.
var ownPrefixes = []string{apiPrefix + "users/", apiPrefix + "roles/", apiPrefix + "privilege_groups/"}

// Options configures NewHandler.
type Options struct {
	Authn *auth.Authenticator
	// Authz decides on data routes as on gRPC calls; nil authorizes none
	// (every authenticated user may call every route).
	Authz *rbac.Authorizer
	Users *usermgmt.Service
	// Backend is the backend's REST base URL, e.g. http://127.0.0.1:19530.
	Backend *url.URL
	// BackendTLS, when set, is used to reach a backend REST endpoint behind TLS.
	BackendTLS *tls.Config
	// Headers says which client headers are stripped and which header
	// carries the authenticated user to the backend; shared with the gRPC
	// director and changed live by a reload. nil: the default policy.
	Headers *edge.HeaderPolicy
	// MaxBodyBytes bounds forwarded request bodies (DefaultMaxBodyBytes if <= 0).
	MaxBodyBytes int64
	// Timeout bounds one forwarded request (DefaultTimeout if <= 0).
	Timeout time.Duration
	// Logger gets authentication failures and backend errors (slog.Default() if nil).
	Logger *slog.Logger
	// Limits count authorized data calls against the rate limits; nil: none.
	Limits RateLimiter
}

type handler struct {
	authn   *auth.Authenticator
	authz   *rbac.Authorizer
	limits  RateLimiter
	users   *usermgmt.Service
	backend *url.URL
	headers *edge.HeaderPolicy
	maxBody int64
	timeout time.Duration
	logger  *slog.Logger
	proxy   *httputil.ReverseProxy
}

// NewHandler returns the REST handler.
func NewHandler(opts Options) http.Handler {
	h := &handler{
		authn:   opts.Authn,
		authz:   opts.Authz,
		limits:  opts.Limits,
		users:   opts.Users,
		backend: opts.Backend,
		headers: opts.Headers,
		maxBody: opts.MaxBodyBytes,
		timeout: opts.Timeout,
		logger:  opts.Logger,
	}
	if h.headers == nil {
		h.headers = edge.NewHeaderPolicy(edge.DefaultIdentityHeader)
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	if h.timeout <= 0 {
		h.timeout = DefaultTimeout
	}
	if h.logger == nil {
		h.logger = slog.Default()
	}
	h.proxy = &httputil.ReverseProxy{
		Rewrite:   h.rewrite,
		Transport: backendTransport(opts.BackendTLS),
		// Flush at once: search results and bulk responses stream through.
		FlushInterval:  -1,
		ErrorHandler:   h.proxyError,
		ModifyResponse: h.filterReply,
		ErrorLog:       slog.NewLogLogger(h.logger.Handler(), slog.LevelWarn),
	}
	return h
}

func backendTransport(tlsConfig *tls.Config) *http.Transport {
	return &http.Transport{
		TLSClientConfig: tlsConfig,
		// No Proxy: a sidecar talks to its backend directly, whatever
		// HTTP_PROXY says.
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, err := h.authenticate(r)
	if err != nil {
		var f *auth.Failure
		if errors.As(err, &f) && f.Unavailable() {
			writeError(w, http.StatusServiceUnavailable, codeServiceUnavailable, f.Message)
			return
		}
		writeError(w, http.StatusUnauthorized, codeNeedAuthenticate, msgNeedAuthenticate)
		return
	}
	// Route on the cleaned path: a backend that normalises paths must never
	// receive a users call the proxy did not answer.
	p := path.Clean(r.URL.Path)
	for _, prefix := range ownPrefixes {
		if strings.HasPrefix(p, prefix) {
			h.serveUsers(w, r, strings.TrimPrefix(p, apiPrefix), id)
			return
		}
	}
	// An over-limit body is refused on its declared length, before a byte
	// of it is read, whoever sends it.
	if r.ContentLength > h.maxBody {
		h.tooLarge(w, r, h.maxBody)
		return
	}
	rewrite, ok := h.authorizeData(w, r, id)
	if !ok || !h.admitRate(w, r, id) {
		return
	}
	h.forward(w, r, id, rewrite)
}

// identity is who the request was authenticated as; authenticated is false
// when authentication is off.
type identity struct {
	rbac.Principal
	authenticated bool
}

// authenticate checks the request's credential when authentication is on;
// the authenticator counts and logs each refusal (never the secret).
func (h *handler) authenticate(r *http.Request) (identity, error) {
	if !h.authn.Enabled() {
		return identity{}, nil
	}
	call := auth.Call{Protocol: "rest", Target: r.URL.Path, Peer: auth.HostOf(r.RemoteAddr), Cert: edge.VerifiedCert(r.TLS)}
	id, err := h.authn.CheckHTTP(r.Context(), r.Header.Get("Authorization"), call)
	if err != nil {
		return identity{}, err
	}
	return identity{Principal: id.Principal(), authenticated: true}, nil
}
