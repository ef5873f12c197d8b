package server

import (
	"fmt"
	"log/slog"
	"reflect"

	"github.com/authproxy/authproxy/certs"
	"github.com/authproxy/authproxy/config"
	"github.com/authproxy/authproxy/credentials"
)

// A sectionBuilder turns one section of the config into what the running
// proxy uses. As in Caddy, the new config is built whole, then swapped in:
// build checks what the config alone cannot (files, certificates,
// providers) and prepares the section without changing anything in force;
// swap puts it in force. Start and reload take the same builders
// (applyConfig), so a key cannot be applied on one path and not the other.
type sectionBuilder struct {
	// live are the keys (YAML paths; a path covers the keys below it) whose
	// change swap applies. config's Live/Restart table marks exactly these
	// Live (TestBuildersCoverTheLiveKeys): a key is Live because a builder
	// applies it, and every other key is read once, at start, by New.
	live []string
	// build prepares next's section; prev is nil at start. A nil swap
	// means nothing to change.
	build func(s *Server, prev, next *config.Config) (swap func(), err error)
}

var sectionBuilders = []sectionBuilder{
	{live: []string{"log.level"}, build: buildLogLevel},
	{live: []string{"common.security.authorizationEnabled"}, build: buildAuthentication},
	{live: []string{"common.security.superUsers"}, build: buildSuperUsers},
	{live: []string{"common.security.enablePublicPrivilege", "common.security.rootShouldBindRole", "common.security.otherServices"}, build: buildAuthorization},
	{live: []string{"credentials.file"}, build: buildCredentialFile},
	{live: []string{"cache"}, build: buildCache},
	{live: []string{"auth.identityHeader"}, build: buildIdentityHeader},
	{live: []string{"tls.certFile", "tls.keyFile", "tls.clientCAFile", "tls.clientAuth", "tls.minVersion", "tls.clientIdentity"}, build: buildTLS},
	{live: []string{"shutdown.gracePeriod"}, build: buildShutdown},
	{live: []string{"rateLimits"}, build: buildRateLimits},
	// Last: the one builder that starts something (OpenID key refreshes),
	// so no later build can fail and leave it running unused.
	{live: []string{"identities"}, build: buildIdentities},
}

// applyConfig puts next in force: every section is built first, and only
// when all have built is anything swapped, so a bad config changes
// nothing. Keys that need a restart keep their running value
// (config.Effective) and are reported. New (prev nil) and ReloadConfig
// both come here.
func (s *Server) applyConfig(prev, next *config.Config) error {
	effective, restart := config.Effective(prev, next)
	swaps := make([]func(), 0, len(sectionBuilders))
	for _, b := range sectionBuilders {
		swap, err := b.build(s, prev, effective)
		if err != nil {
			return err
		}
		if swap != nil {
			swaps = append(swaps, swap)
		}
	}
	for _, swap := range swaps {
		swap()
	}
	s.cfg.Store(effective)
	for _, key := range restart {
		s.logger.Warn("config change needs a restart to take effect; the running value is kept", "key", key)
	}
	return nil
}

func buildLogLevel(s *Server, _, next *config.Config) (func(), error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(next.Log.Level)); err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	return func() { s.logLevel.Set(level) }, nil
}

func buildAuthentication(s *Server, _, next *config.Config) (func(), error) {
	on := next.Common.Security.AuthorizationEnabled
	return func() { s.authn.SetEnabled(on) }, nil
}

func buildSuperUsers(s *Server, _, next *config.Config) (func(), error) {
	names := next.Common.Security.SuperUsers
	return func() { s.users.SetSuperUsers(names) }, nil
}

func buildAuthorization(s *Server, _, next *config.Config) (func(), error) {
	opts := rbacOptions(next)
	return func() { s.authz.SetOptions(opts) }, nil
}

// buildCredentialFile opens the credential file when the store is a file
// and the path is new. A start creates a missing file (root with its
// default password); a reload only moves to a file that exists, so that a
// typo cannot replace every user with a fresh root.
func buildCredentialFile(s *Server, prev, next *config.Config) (func(), error) {
	if next.Credentials.Store != config.StoreFile || prev != nil && prev.Credentials.File == next.Credentials.File {
		return nil, nil
	}
	opts := credentials.FileOptions{Logger: s.logger, MustExist: prev != nil}
	if prev == nil {
		password, err := next.Common.Security.RootPassword()
		if err != nil {
			return nil, err
		}
		opts.DefaultRootPassword = password
	}
	fs, err := credentials.OpenFile(next.Credentials.File, opts)
	if err != nil {
		return nil, err
	}
	return func() {
		s.store.file.Store(fs)
		if prev == nil {
			return // startWatcher watches the file in force
		}
		if err := s.watchCredentials(fs); err != nil {
			s.logger.Warn("cannot watch the new credential file; SIGHUP still reloads it", "err", err)
		}
		s.logger.Info("credential file changed", "file", fs.Path())
	}, nil
}

func buildCache(s *Server, _, next *config.Config) (func(), error) {
	size, ttl := next.Cache.Size, next.Cache.TTL
	return func() { s.authn.Verifier().SetCache(size, ttl) }, nil
}

func buildIdentityHeader(s *Server, _, next *config.Config) (func(), error) {
	key := next.Auth.IdentityHeader
	return func() { s.headers.SetIdentityHeader(key) }, nil
}

// buildTLS loads the server certificate when the TLS files or modes are
// new (files that merely change on disk are reloaded by ReloadTLS); the
// client identity mapping is set whatever changed. TLS turned on or off
// needs a restart: config.Effective keeps it as it runs.
func buildTLS(s *Server, prev, next *config.Config) (func(), error) {
	t := next.TLS
	if t == nil {
		return nil, nil
	}
	var ts *certs.Server
	if opts := tlsServerOptions(t); prev == nil || prev.TLS == nil || !reflect.DeepEqual(tlsServerOptions(prev.TLS), opts) {
		var err error
		if ts, err = certs.NewServer(opts); err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
	}
	identity := certIdentity(t.ClientIdentity)
	return func() {
		if ts != nil {
			s.tlsServer.Store(ts)
			s.certExpiry.Set(float64(ts.NotAfter().Unix()))
			if prev != nil { // at start, startWatcher watches the files in force
				if err := s.watchTLS(ts); err != nil {
					s.logger.Warn("cannot watch the new TLS files; SIGHUP still reloads them", "err", err)
				}
			}
		}
		s.authn.SetCertIdentity(identity)
	}, nil
}

// tlsServerOptions is the TLS the proxy serves to clients, as the config says.
func tlsServerOptions(t *config.TLS) certs.ServerOptions {
	return certs.ServerOptions{
		CertFile: t.CertFile, KeyFile: t.KeyFile, ClientCAFile: t.ClientCAFile,
		ClientAuth: t.ClientAuth, MinVersion: t.MinVersion, NextProtos: []string{"h2", "http/1.1"},
	}
}

func buildShutdown(s *Server, _, next *config.Config) (func(), error) {
	grace := next.Shutdown.GracePeriod
	return func() { s.gracePeriod.Store(int64(grace)) }, nil
}

// buildIdentities builds the identity providers when they change; putting
// new ones in force empties the cache of external identities.
func buildIdentities(s *Server, prev, next *config.Config) (func(), error) {
	if prev != nil && reflect.DeepEqual(prev.Identities, next.Identities) {
		return nil, nil
	}
	external, err := s.newExternal(next.Identities)
	if err != nil {
		return nil, err
	}
	return func() {
		s.authn.Verifier().SetExternal(external)
		if prev != nil {
			s.logger.Info("identity providers changed; cached external identities dropped")
		}
	}, nil
}

// buildRateLimits puts the limits in force (validated with the config):
// an unchanged limit keeps its buckets, a new or changed one starts full.
func buildRateLimits(s *Server, prev, next *config.Config) (func(), error) {
	if prev != nil && reflect.DeepEqual(prev.RateLimits, next.RateLimits) {
		return nil, nil
	}
	limits := next.RateLimits
	return func() {
		s.limits.Set(limits)
		if prev != nil {
			s.logger.Info("rate limits changed", "limits", len(limits.Limits))
		}
	}, nil
}
