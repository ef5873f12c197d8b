package config

import (
	"net"
	"net/url"
	"slices"
	"time"
)

// Console is the operators' web console (package console).
type Console struct {
	// Listen is the console's own listener; "" (the default) turns it off.
	// Plaintext only on a loopback address: anywhere else the proxy's TLS
	// section must be set, and the console serves with its certificates.
	Listen string `yaml:"listen"`
	// IdleTimeout signs a session out after this long without a request.
	IdleTimeout time.Duration `yaml:"idleTimeout"`
	// MaxSessions bounds the sessions held at once; past it the longest
	// idle one is signed out.
	MaxSessions int `yaml:"maxSessions"`
	// OIDC, if set, offers the sign-in with an OpenID provider of
	// identities.oidc (authorization code with PKCE, a public client).
	OIDC *ConsoleOIDC `yaml:"oidc"`
}

// ConsoleOIDC is the console's client at one of identities.oidc's issuers.
type ConsoleOIDC struct {
	// Issuer is one of identities.oidc.issuers[].issuer.
	Issuer string `yaml:"issuer"`
	// ClientID is the console's client at the provider; it must be one of
	// that issuer's audiences, since its ID tokens are checked as any.
	ClientID string `yaml:"clientID"`
	// RedirectURL is the console's /oidc/callback as browsers reach it,
	// registered at the provider.
	RedirectURL string `yaml:"redirectURL"`
}

// defaultConsole is the console section when the file says nothing.
func defaultConsole() Console {
	return Console{IdleTimeout: 15 * time.Minute, MaxSessions: 1000}
}

// IsLoopback reports whether addr (host:port) listens on loopback only:
// 127.0.0.0/8, ::1 or localhost. An empty host (every interface) is not.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *Console) validate(tls *TLS, ids Identities, bad func(key, format string, args ...any)) {
	if c.Listen == "" {
		return
	}
	if _, port, err := net.SplitHostPort(c.Listen); err != nil || port == "" {
		bad("console.listen", "%q is not host:port", c.Listen)
		return
	}
	if tls == nil && !IsLoopback(c.Listen) {
		bad("console.listen", "%q is not a loopback address and the proxy has no tls section: the console serves plaintext only on loopback (127.0.0.1, ::1); set tls, or listen on loopback", c.Listen)
	}
	if c.IdleTimeout <= 0 {
		bad("console.idleTimeout", "must be a positive duration such as 15m, got %s", c.IdleTimeout)
	}
	if c.MaxSessions < 1 {
		bad("console.maxSessions", "must be at least 1, got %d", c.MaxSessions)
	}
	if o := c.OIDC; o != nil {
		var issuer *OIDCIssuer
		if ids.OIDC != nil {
			for i := range ids.OIDC.Issuers {
				if ids.OIDC.Issuers[i].Issuer == o.Issuer {
					issuer = &ids.OIDC.Issuers[i]
				}
			}
		}
		switch {
		case issuer == nil:
			bad("console.oidc.issuer", "%q is not one of identities.oidc.issuers", o.Issuer)
		case !slices.Contains(issuer.Audiences, o.ClientID):
			bad("console.oidc.clientID", "%q must be one of the audiences of %s (its ID tokens are checked as any token)", o.ClientID, o.Issuer)
		}
		if u, err := url.Parse(o.RedirectURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Path != "/oidc/callback" {
			bad("console.oidc.redirectURL", "%q must be the console's http(s)://HOST:PORT/oidc/callback", o.RedirectURL)
		}
	}
}
