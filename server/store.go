package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"

	"github.com/authproxy/authproxy/certs"
	"github.com/authproxy/authproxy/config"
	"github.com/authproxy/authproxy/credentials"
)

// storeRef is the credential store the verifier, the user service and the
// authorizer share: the etcd store for the process's life, or a file store
// that a config reload may swap for another file without rebuilding them.
type storeRef struct {
	etcd *credentials.EtcdStore
	file atomic.Pointer[credentials.FileStore]
}

type backingStore interface {
	credentials.Store
	Check() error
}

func (r *storeRef) backing() backingStore {
	if r.etcd != nil {
		return r.etcd
	}
	return r.file.Load()
}

func (r *storeRef) Current() *credentials.Set { return r.backing().Current() }
func (r *storeRef) Update(ctx context.Context, m func(*credentials.Set) error) error {
	return r.backing().Update(ctx, m)
}
func (r *storeRef) Reload(ctx context.Context) (bool, error) { return r.backing().Reload(ctx) }
func (r *storeRef) Check() error                             { return r.backing().Check() }

// staleSeconds is how long the store has not followed its source (etcd);
// 0 for a file store, which is always read when it changes.
func (r *storeRef) staleSeconds() float64 {
	if r.etcd == nil {
		return 0
	}
	return r.etcd.StaleFor().Seconds()
}

// describe names the store in logs and in /readyz.
func (r *storeRef) describe() string {
	if r.etcd != nil {
		return "etcd"
	}
	return r.file.Load().Path()
}

func (r *storeRef) close() {
	if r.etcd != nil {
		r.etcd.Close()
	}
}

// openEtcd opens the credential store on etcd (a file store is opened by
// its section builder). It is listed whole before the proxy serves; while
// etcd cannot be reached, the start waits, retrying with backoff, and says
// so in the log, and the admin listener already answers, /readyz 503
// naming etcd.
func (s *Server) openEtcd(cfg *config.Config) error {
	var listed atomic.Bool
	var startErr atomic.Pointer[error]
	if cfg.Admin.Listen != "" {
		s.status.AddCheck("credentials", func(context.Context) error {
			if e := startErr.Load(); e != nil {
				return fmt.Errorf("credential store (etcd) not listed yet: %w", *e)
			}
			return errors.New("credential store (etcd) not listed yet")
		})
		if err := s.startAdmin(cfg.Admin.Listen); err != nil {
			return err
		}
	}
	es, err := OpenEtcdStore(context.Background(), cfg, s.logger, func(err error) {
		if !listed.Load() {
			startErr.Store(&err)
			return
		}
		// A store that stops following etcd keeps serving its last
		// snapshot: the detail and the metric say so, readiness stays.
		s.status.Reloaded("credentials", "etcd", err == nil, err)
	})
	if err != nil {
		s.stopAdmin()
		return err
	}
	listed.Store(true)
	s.store.etcd = es
	return nil
}

// OpenEtcdStore opens the etcd store the config names (the proxy, and the
// offline `store copy`).
func OpenEtcdStore(ctx context.Context, cfg *config.Config, logger *slog.Logger, onFollow func(error)) (*credentials.EtcdStore, error) {
	return openEtcd(ctx, cfg, logger, onFollow, false)
}

// OpenEtcdStoreAsIs opens the etcd store without creating root in an
// empty one: store copy fills it whole.
func OpenEtcdStoreAsIs(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*credentials.EtcdStore, error) {
	return openEtcd(ctx, cfg, logger, nil, true)
}

func openEtcd(ctx context.Context, cfg *config.Config, logger *slog.Logger, onFollow func(error), noBootstrap bool) (*credentials.EtcdStore, error) {
	c := cfg.Credentials
	rootPassword, err := cfg.Common.Security.RootPassword()
	if err != nil {
		return nil, err
	}
	opts := credentials.EtcdOptions{
		NoBootstrap: noBootstrap,
		Endpoints:   c.Etcd.Endpoints, Prefix: c.Etcd.Prefix,
		DialTimeout: c.Etcd.DialTimeout, RequestTimeout: c.Etcd.RequestTimeout,
		Username: c.Etcd.Username, DefaultRootPassword: rootPassword, Logger: logger,
		OnFollow: onFollow,
	}
	if c.Etcd.Username != "" {
		password, err := etcdPassword(c.Etcd)
		if err != nil {
			return nil, err
		}
		opts.Password = password
	}
	if t := c.Etcd.TLS; t != nil {
		tlsConfig, err := etcdTLS(t)
		if err != nil {
			return nil, fmt.Errorf("credentials.etcd.tls: %w", err)
		}
		opts.TLS = tlsConfig
	}
	return credentials.OpenEtcd(ctx, opts)
}

func etcdPassword(e config.Etcd) (string, error) {
	if e.PasswordFile != "" {
		b, err := os.ReadFile(e.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("credentials.etcd.passwordFile: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	p, ok := os.LookupEnv(e.PasswordEnv)
	if !ok {
		return "", fmt.Errorf("credentials.etcd.passwordEnv: %s is not set", e.PasswordEnv)
	}
	return p, nil
}

func etcdTLS(t *config.EtcdTLS) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	var err error
	if t.CAFile != "" {
		if c.RootCAs, err = certs.LoadCAPool(t.CAFile); err != nil {
			return nil, err
		}
	}
	if t.CertFile != "" {
		cert, err := certs.LoadKeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{*cert}
	}
	return c, nil
}
