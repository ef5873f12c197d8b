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

	"github.com/authproxy/authproxy/admission"
	"github.com/authproxy/authproxy/edge"
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
var ownPrefixes = []string{apiPrefix + "users/", apiPrefix + "roles/", apiPrefix + "privilege_groups/", apiPrefix + "row_policies/"}

// Options configures NewHandler.
type Options struct {
	// Admitter authenticates every request and decides on data routes as
	// on the gRPC calls they stand for; its edge policy says which client
	// headers are stripped and which header carries the authenticated user
	// to the backend.
	Admitter *admission.Admitter
	Users    *usermgmt.Service
	// Backend is the backend's REST base URL, e.g. http://127.0.0.1:19530.
	Backend *url.URL
	// BackendTLS, when set, is used to reach a backend REST endpoint behind TLS.
	BackendTLS *tls.Config
	// MaxBodyBytes bounds forwarded request bodies (DefaultMaxBodyBytes if <= 0).
	MaxBodyBytes int64
	// Timeout bounds one forwarded request (DefaultTimeout if <= 0).
	Timeout time.Duration
	// Logger gets authentication failures and backend errors (slog.Default() if nil).
	Logger *slog.Logger
}

type handler struct {
	adm     *admission.Admitter
	users   *usermgmt.Service
	backend *url.URL
	maxBody int64
	timeout time.Duration
	logger  *slog.Logger
	proxy   *httputil.ReverseProxy
}

// NewHandler returns the REST handler.
func NewHandler(opts Options) http.Handler {
	h := &handler{
		adm:     opts.Admitter,
		users:   opts.Users,
		backend: opts.Backend,
		maxBody: opts.MaxBodyBytes,
		timeout: opts.Timeout,
		logger:  opts.Logger,
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
	call, err := h.admit(r)
	if err != nil {
		refuse(w, err)
		return
	}
	// Route on the cleaned path: a backend that normalises paths must never
	// receive a users call the proxy did not answer.
	p := path.Clean(r.URL.Path)
	for _, prefix := range ownPrefixes {
		if strings.HasPrefix(p, prefix) {
			h.serveUsers(w, r, strings.TrimPrefix(p, apiPrefix), call)
			return
		}
	}
	// An over-limit body is refused on its declared length, before a byte
	// of it is read, whoever sends it.
	if r.ContentLength > h.maxBody {
		h.tooLarge(w, r, h.maxBody)
		return
	}
	rewrite, ok := h.authorizeData(w, r, call)
	if !ok {
		return
	}
	h.forward(w, r, call, rewrite)
}

// admit opens the request's call record and authenticates it when
// authentication is on; the authenticator counts and logs each refusal
// (never the secret).
func (h *handler) admit(r *http.Request) (*admission.Call, error) {
	call, err := h.adm.Open(admission.Arrival{Protocol: admission.REST, Path: r.URL.Path, Peer: r.RemoteAddr,
		Cert: edge.VerifiedCert(r.TLS), Credential: r.Header.Get("Authorization"), DB: r.Header.Get("DB-Name")})
	if err != nil {
		return nil, err
	}
	return call, h.adm.Authenticate(r.Context(), call)
}

// refuse answers a refusal of the admission step in Milvus's envelope.
func refuse(w http.ResponseWriter, err error) {
	var r *admission.Refusal
	if !errors.As(err, &r) {
		writeError(w, http.StatusInternalServerError, codeUnexpected, "authproxy: "+err.Error())
		return
	}
	if r.RetryAfter != "" {
		w.Header().Set("Retry-After", r.RetryAfter)
	}
	writeError(w, r.HTTP, r.Code, r.Message)
}
