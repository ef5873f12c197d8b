package server

import (
	"crypto/tls"
	"net/http"
	"net/url"

	"github.com/authproxy/authproxy/config"
	"github.com/authproxy/authproxy/rest"
)

// restHandler answers the Milvus RESTful API v2: users here, the rest
// forwarded to the backend's REST endpoint.
func (s *Server) restHandler(cfg *config.Config) http.Handler {
	base := cfg.Backend.REST
	if base == "" {
		scheme := "http://"
		if s.backendTLS != nil {
			scheme = "https://"
		}
		base = scheme + cfg.Backend.Address
	}
	backendURL, _ := url.Parse(base) // validated with the config
	var backendTLS *tls.Config
	if s.backendTLS != nil {
		backendTLS = s.backendTLS.TLSConfig()
	}
	return rest.NewHandler(rest.Options{
		Admitter:   s.admitter,
		Users:      s.users,
		Backend:    backendURL,
		BackendTLS: backendTLS,
		Logger:     s.logger,
	})
}
