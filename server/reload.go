package server

import (
	"context"
	"time"

	"github.com/authproxy/authproxy/certs"
	"github.com/authproxy/authproxy/config"
	"github.com/authproxy/authproxy/credentials"
	"github.com/authproxy/authproxy/watch"
)

// startWatcher watches the config, credential and TLS files; Run ends with ctx.
func (s *Server) startWatcher(ctx context.Context) error {
	w, err := watch.New(watch.Options{Logger: s.logger})
	if err != nil {
		return err
	}
	s.watcher = w
	if p := s.opts.ConfigPath; p != "" {
		if err := w.Add(p, s.ReloadConfig); err != nil {
			return err
		}
	}
	if fs := s.store.file.Load(); fs != nil {
		if err := s.watchCredentials(fs); err != nil {
			return err
		}
	}
	if ts := s.tlsServer.Load(); ts != nil {
		if err := s.watchTLS(ts); err != nil {
			return err
		}
	}
	if s.backendTLS != nil {
		for _, f := range s.backendTLS.Files() {
			if err := w.Add(f, s.reloadBackendTLS); err != nil {
				return err
			}
		}
	}
	go w.Run(ctx)
	return nil
}

// Callbacks are bound to the store or certificate set they were added for:
// after a config reload moves to other files, the old watches go quiet.
func (s *Server) watchCredentials(fs *credentials.FileStore) error {
	return s.watcher.Add(fs.Path(), func() {
		if s.store.file.Load() == fs {
			s.ReloadCredentials()
		}
	})
}

func (s *Server) watchTLS(ts *certs.Server) error {
	for _, f := range ts.Files() {
		if err := s.watcher.Add(f, func() {
			if s.tlsServer.Load() == ts {
				s.ReloadTLS()
			}
		}); err != nil {
			return err
		}
	}
	return nil
}

// ReloadAll reloads every file now (SIGHUP).
func (s *Server) ReloadAll() {
	if s.opts.ConfigPath != "" {
		s.ReloadConfig()
	}
	s.ReloadCredentials()
	if s.tlsServer.Load() != nil {
		s.ReloadTLS()
	}
	if s.backendTLS != nil {
		s.reloadBackendTLS()
	}
}

// ReloadCredentials re-reads the credential file (lists the etcd store
// again). The verification cache needs no purge: each entry is only
// honoured while the store holds the exact hash it was verified against.
func (s *Server) ReloadCredentials() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	changed, err := s.store.Reload(ctx)
	s.status.Reloaded("credentials", s.store.describe(), changed, err)
	switch {
	case err != nil:
		s.logger.Error("credential reload refused, keeping the last good credentials", "err", err)
	case changed:
		s.logger.Info("credentials reloaded", "store", s.store.describe(), "users", len(s.store.Current().Users()))
	}
}

// ReloadTLS re-reads the server certificate, key and client CA.
func (s *Server) ReloadTLS() {
	ts := s.tlsServer.Load()
	err := ts.Reload()
	s.status.Reloaded("tls", ts.Files()[0], err == nil, err)
	if err != nil {
		s.logger.Error("TLS reload refused, keeping the certificate in service", "err", err)
		return
	}
	s.certExpiry.Set(float64(ts.NotAfter().Unix()))
	s.logger.Info("TLS certificate reloaded", "notAfter", ts.NotAfter())
}

func (s *Server) reloadBackendTLS() {
	err := s.backendTLS.Reload()
	s.status.Reloaded("backend_tls", s.backendTLS.Files()[0], err == nil, err)
	if err != nil {
		s.logger.Error("backend TLS reload refused, keeping the material in service", "err", err)
	}
}

// ReloadConfig re-reads the config file and applies what can change live;
// what needs a restart is logged as such, never silently ignored.
func (s *Server) ReloadConfig() {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	path := s.opts.ConfigPath
	next, err := config.Read(path, s.opts.Overrides)
	if err == nil {
		err = s.applyConfig(s.cfg.Load(), next)
	}
	s.status.Reloaded("config", path, err == nil, err)
	if err != nil {
		s.logger.Error("config reload refused, keeping the last good config", "err", err)
		return
	}
	s.logger.Info("config reloaded", "file", path)
}
