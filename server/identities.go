package server

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/authproxy/authproxy/auth"
	"github.com/authproxy/authproxy/certs"
	"github.com/authproxy/authproxy/config"
)

// newExternal builds the identity providers of the config: every CA file
// is read here, so a bad one refuses the config (or its reload) and the
// providers in force stay.
func (s *Server) newExternal(cfg config.Identities) (auth.External, error) {
	var e auth.External
	if l := cfg.LDAP; l != nil {
		u, err := url.Parse(l.URL)
		if err != nil {
			return e, fmt.Errorf("identities.ldap.url: %w", err)
		}
		name := l.ServerName
		if name == "" {
			name = u.Hostname()
		}
		tlsCfg, err := clientTLS(l.CAFile, name)
		if err != nil {
			return e, fmt.Errorf("identities.ldap.caFile: %w", err)
		}
		if e.Directory, err = auth.NewDirectory(*l, cfg.Tags.LDAP, tlsCfg); err != nil {
			return e, err
		}
	}
	if o := cfg.OIDC; o != nil {
		clients := make([]*http.Client, len(o.Issuers))
		for i, is := range o.Issuers {
			tlsCfg, err := clientTLS(is.CAFile, "")
			if err != nil {
				return e, fmt.Errorf("identities.oidc.issuers[%d].caFile: %w", i, err)
			}
			clients[i] = providerClient(tlsCfg)
		}
		e.OpenID = auth.NewOpenID(o.Issuers, cfg.Tags.OIDC, clients, s.logger)
	}
	return e, nil
}

// providerClient reaches an OpenID provider: bounded in time, no proxy
// from the environment (the provider is reached as configured), and no
// redirect followed.
func providerClient(tlsCfg *tls.Config) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     tlsCfg,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			TLSHandshakeTimeout: 5 * time.Second,
			MaxIdleConnsPerHost: 2,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// clientTLS verifies a server with caFile (the system's roots when "").
func clientTLS(caFile, serverName string) (*tls.Config, error) {
	if caFile == "" {
		return &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}, nil
	}
	c, err := certs.NewClient(certs.ClientOptions{CAFile: caFile, ServerName: serverName})
	if err != nil {
		return nil, err
	}
	return c.TLSConfig(), nil
}
