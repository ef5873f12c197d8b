package console

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/authproxy/authproxy/auth"
)

// OpenIDSignIn is the console's sign-in with the configured OpenID
// provider: the authorization-code flow with PKCE (RFC 7636, S256), the
// console a public client (no secret to keep). The ID token it gets is
// checked by the authenticator like any token on the gRPC port (issuer,
// keys, algorithm, audience, expiry), so the console's client ID must be
// one of the issuer's audiences.
type OpenIDSignIn struct {
	Issuer      string
	ClientID    string
	RedirectURL string // the console's /oidc/callback as the provider calls it
	Client      *http.Client

	mu        sync.Mutex
	endpoints *endpoints
	pending   map[string]pendingLogin // by state
}

type endpoints struct {
	Authorization string `json:"authorization_endpoint"`
	Token         string `json:"token_endpoint"`
}

// pendingLogin is one flow between the redirect to the provider and its
// callback: what proves the callback answers it.
type pendingLogin struct {
	verifier, nonce string
	expires         time.Time
}

// Bounds of the flows in progress: each lives at most loginWindow, and at
// most maxPendingLogins are kept (an unauthenticated client can start
// them, so they must not grow without end).
const (
	loginWindow      = 10 * time.Minute
	maxPendingLogins = 1000
	stateCookie      = "authproxy_console_oidc"
)

// discover reads the provider's two endpoints once.
func (o *OpenIDSignIn) discover() (*endpoints, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.endpoints != nil {
		return o.endpoints, nil
	}
	resp, err := o.Client.Get(strings.TrimSuffix(o.Issuer, "/") + "/.well-known/openid-configuration")
	if err != nil {
		return nil, fmt.Errorf("the OpenID provider cannot be reached: %w", err)
	}
	defer resp.Body.Close()
	var e endpoints
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the OpenID provider's discovery answered %s", resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&e); err != nil || e.Authorization == "" || e.Token == "" {
		return nil, fmt.Errorf("the OpenID provider's discovery has no authorization and token endpoints (%v)", err)
	}
	o.endpoints = &e
	return &e, nil
}

func (o *OpenIDSignIn) remember(state string, p pendingLogin) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.pending == nil {
		o.pending = map[string]pendingLogin{}
	}
	now := time.Now()
	for k, v := range o.pending {
		if now.After(v.expires) {
			delete(o.pending, k)
		}
	}
	if len(o.pending) >= maxPendingLogins {
		for k := range o.pending { // any one: they are all recent
			delete(o.pending, k)
			break
		}
	}
	o.pending[state] = p
}

func (o *OpenIDSignIn) take(state string) (pendingLogin, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	p, ok := o.pending[state]
	delete(o.pending, state)
	return p, ok && time.Now().Before(p.expires)
}

// oidcStart sends the browser to the provider with a fresh state, nonce
// and PKCE challenge; the state also goes in a short cookie, so that only
// the browser that started the flow can finish it.
func (c *Console) oidcStart(w http.ResponseWriter, r *http.Request) {
	o := c.opts.OpenID
	e, err := o.discover()
	if err != nil {
		c.render(w, http.StatusServiceUnavailable, "login", c.loginData(err.Error()))
		return
	}
	state, verifier, nonce := randomToken(), randomToken(), randomToken()
	o.remember(state, pendingLogin{verifier: verifier, nonce: nonce, expires: time.Now().Add(loginWindow)})
	challenge := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"response_type": {"code"}, "client_id": {o.ClientID}, "redirect_uri": {o.RedirectURL},
		"scope": {"openid profile email"}, "state": {state}, "nonce": {nonce},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(challenge[:])}, "code_challenge_method": {"S256"},
	}
	// SameSite=Lax, not Strict: the provider's redirect back is a
	// navigation from another site, which a Strict cookie would not join.
	http.SetCookie(w, &http.Cookie{Name: stateCookie, Value: state, Path: "/oidc/", HttpOnly: true, Secure: c.opts.Secure,
		SameSite: http.SameSiteLaxMode, MaxAge: int(loginWindow / time.Second)})
	sep := "?"
	if strings.Contains(e.Authorization, "?") {
		sep = "&"
	}
	http.Redirect(w, r, e.Authorization+sep+q.Encode(), http.StatusSeeOther)
}

// oidcCallback exchanges the code (with the PKCE verifier) for an ID
// token, has the authenticator check it, checks the nonce, and signs in.
func (c *Console) oidcCallback(w http.ResponseWriter, r *http.Request) {
	o := c.opts.OpenID
	refuse := func(status int, msg string) {
		c.render(w, status, "login", c.loginData("OpenID sign-in refused: "+msg))
	}
	http.SetCookie(w, &http.Cookie{Name: stateCookie, Value: "", Path: "/oidc/", HttpOnly: true, Secure: c.opts.Secure, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		refuse(http.StatusUnauthorized, "the provider answered "+e)
		return
	}
	state := q.Get("state")
	ck, err := r.Cookie(stateCookie)
	if err != nil || state == "" || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(state)) != 1 {
		refuse(http.StatusBadRequest, "this browser did not start this sign-in (state)")
		return
	}
	p, ok := o.take(state)
	if !ok {
		refuse(http.StatusBadRequest, "the sign-in expired or was already used; start again")
		return
	}
	e, err := o.discover()
	if err != nil {
		refuse(http.StatusServiceUnavailable, err.Error())
		return
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {o.RedirectURL},
		"client_id": {o.ClientID}, "code_verifier": {p.verifier}}
	resp, err := o.Client.PostForm(e.Token, form)
	if err != nil {
		refuse(http.StatusServiceUnavailable, "the provider's token endpoint cannot be reached")
		return
	}
	defer resp.Body.Close()
	var tok struct {
		IDToken string `json:"id_token"`
		Error   string `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK || tok.IDToken == "" {
		refuse(http.StatusUnauthorized, "the provider gave no ID token ("+resp.Status+" "+tok.Error+")")
		return
	}
	id, err := c.opts.Authn.CheckCredential(r.Context(), auth.Credential{APIKey: tok.IDToken}, auth.Call{Protocol: "console", Target: "/oidc/callback", Peer: peerHost(r)})
	if err != nil {
		refuse(http.StatusUnauthorized, err.Error())
		return
	}
	// The token is verified: its payload can be read for the nonce, which
	// binds it to this flow (a token replayed from another is refused).
	if nonce, err := jwtNonce(tok.IDToken); err != nil || subtle.ConstantTimeCompare([]byte(nonce), []byte(p.nonce)) != 1 {
		refuse(http.StatusUnauthorized, "the ID token does not answer this sign-in (nonce)")
		return
	}
	c.startSession(w, r, id, "")
}

func jwtNonce(token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var claims struct {
		Nonce string `json:"nonce"`
	}
	err = json.Unmarshal(b, &claims)
	return claims.Nonce, err
}
