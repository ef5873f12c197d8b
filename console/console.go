package console

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authproxy/authproxy/auth"
	"github.com/authproxy/authproxy/config"
	"github.com/authproxy/authproxy/credentials"
	"github.com/authproxy/authproxy/edge"
	"github.com/authproxy/authproxy/rbac"
	"github.com/authproxy/authproxy/usermgmt"
)

//go:embed web
var web embed.FS

// Status is what the "now" page shows of the process besides counters.
type Status struct {
	Version    string
	Forwarding string
	// Store is file or etcd; StaleSeconds how long etcd has not been
	// followed (0 while it is).
	Store        string
	StaleSeconds float64
	// Replicas are the live replicas of the etcd store's registry (none
	// on a file store).
	Replicas []Replica
}

// Replica is one live replica of the store on etcd.
type Replica struct {
	Name       string
	Registered time.Time // zero: unknown
	Self       bool      // the replica serving this console
}

// Options are what the console serves from; all of it is the proxy's own.
type Options struct {
	Authn      *auth.Authenticator
	Users      *usermgmt.Service
	Authz      *rbac.Authorizer
	Store      credentials.Store
	Denials    *edge.Denials
	Gatherer   prometheus.Gatherer
	Identities func() config.Identities
	Status     func() Status
	// Secure marks the cookie Secure: the console serves TLS.
	Secure      bool
	IdleTimeout time.Duration
	MaxSessions int
	Logger      *slog.Logger
	// OpenID, if set, offers the sign-in with the OpenID provider.
	OpenID *OpenIDSignIn
}

// Console is the web console's HTTP handler.
type Console struct {
	opts     Options
	sessions *sessions
	history  *history
	pages    *template.Template
	mux      *http.ServeMux
}

// maxFormBytes bounds a form before it is parsed (before authentication
// for the sign-in): a few names, a password, a token.
const maxFormBytes = 64 << 10

// New returns a Console; Run samples the chart's counters.
func New(opts Options) *Console {
	c := &Console{
		opts:     opts,
		sessions: newSessions(opts.IdleTimeout, opts.MaxSessions),
		history:  newHistory(opts.Gatherer),
		pages:    template.Must(template.New("").Funcs(funcs).ParseFS(web, "web/*.html")),
		mux:      http.NewServeMux(),
	}
	static, _ := fs.Sub(web, "web/static")
	c.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServer(http.FS(static))))
	c.mux.HandleFunc("GET /login", c.loginPage)
	c.mux.HandleFunc("POST /login", c.login)
	c.mux.HandleFunc("POST /logout", c.signedIn(c.logout))
	c.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/now", http.StatusSeeOther) })
	c.mux.HandleFunc("GET /now", c.signedIn(c.nowPage))
	c.mux.HandleFunc("GET /now/series", c.signedIn(c.series))
	c.mux.HandleFunc("POST /lockouts/unlock", c.signedIn(c.unlock))
	c.mux.HandleFunc("GET /users", c.signedIn(c.usersPage))
	c.mux.HandleFunc("POST /users/{op}", c.signedIn(c.usersChange))
	c.mux.HandleFunc("GET /roles", c.signedIn(c.rolesPage))
	c.mux.HandleFunc("POST /roles/{op}", c.signedIn(c.rolesChange))
	c.mux.HandleFunc("GET /apikeys", c.signedIn(c.keysPage))
	c.mux.HandleFunc("POST /apikeys/{op}", c.signedIn(c.keysChange))
	c.mux.HandleFunc("GET /identities", c.signedIn(c.identitiesPage))
	c.mux.HandleFunc("POST /identities/test", c.signedIn(c.testLogin))
	if opts.OpenID != nil {
		c.mux.HandleFunc("GET /oidc/start", c.oidcStart)
		c.mux.HandleFunc("GET /oidc/callback", c.oidcCallback)
	}
	return c
}

// Run samples the counters for the chart until ctx is done.
func (c *Console) Run(ctx context.Context) { c.history.run(ctx) }

// ServeHTTP serves the console with headers that keep its pages to
// itself: no framing, no sniffing, no caching, scripts only its own.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: with no-referrer a browser sends
	// "Origin: null" on the console's own forms, and the origin check fails.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	c.mux.ServeHTTP(w, r)
}

// request is one signed-in request.
type request struct {
	w      http.ResponseWriter
	r      *http.Request
	sess   *session
	token  string
	caller usermgmt.Caller
}

// signedIn admits a request of a live session; a change (POST) must also
// come from the console's own origin and carry the session's CSRF token.
func (c *Console) signedIn(h func(*request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ck, err := r.Cookie(cookieName)
		var sess *session
		ok := false
		if err == nil {
			sess, ok = c.sessions.get(ck.Value)
		}
		if ok && !c.stillValid(sess) {
			c.sessions.end(ck.Value)
			ok = false
		}
		if !ok {
			if r.Method == http.MethodGet && r.URL.Path != "/now/series" {
				http.Redirect(w, r, "/login", http.StatusSeeOther)
				return
			}
			http.Error(w, "not signed in, or the session has ended: sign in again", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if err := sameOrigin(r); err != nil {
				http.Error(w, err.Error(), http.StatusForbidden)
				return
			}
			if !sess.validCSRF(r.PostFormValue("csrf")) {
				http.Error(w, "refused: the form's CSRF token is missing or wrong; reload the page", http.StatusForbidden)
				return
			}
		}
		c.sessionCookie(w, ck.Value) // the idle timeout starts again
		h(&request{w: w, r: r, sess: sess, token: ck.Value, caller: c.callerOf(r, sess)})
	}
}

// stillValid ends a session whose credential the store no longer holds
// (a changed password, a revoked key, a dropped user).
func (c *Console) stillValid(sess *session) bool {
	set := c.opts.Store.Current()
	switch {
	case strings.HasPrefix(sess.bound, "password:"):
		u, ok := set.User(sess.id.User)
		return ok && u.PasswordHash == strings.TrimPrefix(sess.bound, "password:")
	case strings.HasPrefix(sess.bound, "apikey:"):
		k, ok := set.APIKeyByDigest(strings.TrimPrefix(sess.bound, "apikey:"))
		return ok && !k.Expired(time.Now())
	}
	return true
}

// sameOrigin refuses a change sent from another site: a browser names the
// page a form came from in Origin (and Sec-Fetch-Site).
func sameOrigin(r *http.Request) error {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return errors.New("refused: the request comes from another site (Sec-Fetch-Site: " + site + ")")
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil // not a browser, or an old one: the CSRF token decides
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host != r.Host {
		return errors.New("refused: the request's Origin is not this console")
	}
	return nil
}

func (c *Console) sessionCookie(w http.ResponseWriter, value string) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: value, Path: "/", HttpOnly: true, Secure: c.opts.Secure,
		SameSite: http.SameSiteStrictMode, MaxAge: int(c.opts.IdleTimeout / time.Second),
	})
}

func (c *Console) callerOf(r *http.Request, sess *session) usermgmt.Caller {
	return usermgmt.Caller{Principal: sess.id.Principal(), Authenticated: c.opts.Authn.Enabled(), Peer: r.RemoteAddr}
}

func peerHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, http.StatusOK, "login", c.loginData(""))
}

// loginData is the sign-in page, with the refusal of the last try.
func (c *Console) loginData(problem string) page {
	p := page{Title: "Sign in", Error: problem}
	if c.opts.OpenID != nil {
		p.Data = c.opts.OpenID.Issuer
	}
	return p
}

// login signs in with a local or directory password, an API key or an
// OpenID token: the authenticator decides, as on the gRPC port, with the
// same lockout and hashing pool.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := sameOrigin(r); err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	var cred auth.Credential
	if key := r.PostFormValue("apikey"); key != "" {
		cred.APIKey = key
	} else {
		cred.User, cred.Password = r.PostFormValue("user"), r.PostFormValue("password")
		if cred.User == "" {
			c.render(w, http.StatusUnauthorized, "login", c.loginData(auth.MsgBadPassword))
			return
		}
	}
	id, err := c.opts.Authn.CheckCredential(r.Context(), cred, auth.Call{Protocol: "console", Target: "/login", Peer: peerHost(r)})
	if err != nil {
		status := http.StatusUnauthorized
		var f *auth.Failure
		if errors.As(err, &f) && f.Unavailable() {
			status = http.StatusServiceUnavailable
		}
		c.render(w, status, "login", c.loginData(err.Error()))
		return
	}
	bound := ""
	set := c.opts.Store.Current()
	switch {
	case cred.IsAPIKey() && id.Via == "apikey":
		bound = "apikey:" + credentials.APIKeyDigest(cred.APIKey)
	case id.Source == auth.SourceLocal && id.Via == "password":
		if u, ok := set.User(id.User); ok {
			bound = "password:" + u.PasswordHash
		}
	}
	c.startSession(w, r, id, bound)
}

func (c *Console) startSession(w http.ResponseWriter, r *http.Request, id auth.Identity, bound string) {
	token, _ := c.sessions.create(id, bound)
	c.sessionCookie(w, token)
	c.opts.Logger.Info("console: signed in", "user", id.User, "source", id.Source, "via", id.Via, "peer", peerHost(r))
	http.Redirect(w, r, "/now", http.StatusSeeOther)
}

func (c *Console) logout(q *request) {
	c.sessions.end(q.token)
	http.SetCookie(q.w, &http.Cookie{Name: cookieName, Value: "", Path: "/", HttpOnly: true, Secure: c.opts.Secure, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(q.w, q.r, "/login", http.StatusSeeOther)
}
