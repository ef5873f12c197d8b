package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	// Compressed requests: grpc-go refuses a grpc-encoding it has no
	// decompressor for, although the backend would accept it. gzip is the
	// one compressor grpc-go ships; the proxy decompresses and forwards.
	_ "google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/keepalive"

	"github.com/authproxy/authproxy/admin"
	"github.com/authproxy/authproxy/admission"
	"github.com/authproxy/authproxy/auth"
	"github.com/authproxy/authproxy/certs"
	"github.com/authproxy/authproxy/config"
	"github.com/authproxy/authproxy/credentials"
	"github.com/authproxy/authproxy/edge"
	"github.com/authproxy/authproxy/proxy"
	"github.com/authproxy/authproxy/ratelimit"
	"github.com/authproxy/authproxy/rbac"
	"github.com/authproxy/authproxy/relay"
	"github.com/authproxy/authproxy/sharedport"
	"github.com/authproxy/authproxy/usermgmt"
	"github.com/authproxy/authproxy/watch"
)

// Options are what New needs besides the configuration.
type Options struct {
	// ConfigPath, if not empty, is the config file to watch and reload.
	ConfigPath string
	// Overrides re-applies command-line flags over a reloaded config file.
	Overrides func(*config.Config)
	// LogOutput receives the logs.
	LogOutput io.Writer
	// Registry holds the server's metrics and is what admin's /metrics
	// serves; nil gives the server a registry of its own.
	Registry *prometheus.Registry
	// Version is the binary's version, for the start-up log line,
	// /readyz and authproxy_build_info ("dev" when empty).
	Version string
}

// Server is one running proxy.
type Server struct {
	cfg      atomic.Pointer[config.Config]
	opts     Options
	logger   *slog.Logger
	logLevel *slog.LevelVar

	store    *storeRef
	authn    *auth.Authenticator
	authz    *rbac.Authorizer
	limits   *ratelimit.Limiter  // per-tenant rate limits, after authorization
	replicas *ratelimit.Replicas // with the store on etcd: limits shared by the live replicas
	users    *usermgmt.Service
	backend  *proxy.Backend
	headers  *edge.HeaderPolicy  // what is stripped and asserted, gRPC and REST alike
	admitter *admission.Admitter // the one admission step of the three ways in
	failures *edge.FailureLog    // how refusals are logged, gRPC and REST alike
	director *proxy.Director
	status   *admin.Status
	calls    *callObserver
	registry *prometheus.Registry
	// certExpiry is the server certificate's NotAfter, set at each swap.
	certExpiry prometheus.Gauge

	// tlsServer is swapped when a config reload changes the TLS file paths.
	tlsServer  atomic.Pointer[certs.Server]
	backendTLS *certs.Client
	watcher    *watch.Watcher
	reloadMu   sync.Mutex // one config reload at a time
	// gracePeriod is shutdown.gracePeriod in force, in nanoseconds.
	gracePeriod atomic.Int64

	grpcServer *grpc.Server
	// relay forwards at the frame level (forwarding: frames); grpcServer
	// then answers the proxy's own methods over relayPipe.
	relay       *relay.Relay
	relayPipe   *relay.PipeListener
	listener    net.Listener
	adminLis    net.Listener
	adminServer *http.Server
	console     *consoleServer // nil unless console.listen is set
}

// New builds a Server from a validated configuration.
func New(cfg *config.Config, opts Options) (*Server, error) {
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s := &Server{opts: opts, logLevel: new(slog.LevelVar), status: admin.NewStatus(reg, reg), registry: reg}
	s.certExpiry = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "authproxy_tls_certificate_expiry_timestamp_seconds",
		Help: "Expiry (Unix time) of the server certificate in service.",
	})
	reg.MustRegister(s.certExpiry)
	s.announceBuild(cfg, reg)
	authMetrics := auth.NewMetrics(reg)
	s.logger = newLogger(cfg.Log.Format, s.logLevel, opts.LogOutput)

	// The long-lived parts are made here with what only a start sets; the
	// section builders (applyConfig, the same at a reload) set the rest.
	var limiter *auth.Limiter
	var err error
	if bf := cfg.Auth.BruteForce; bf.Enabled {
		limiter, err = auth.NewLimiter(auth.LimiterOptions{
			Threshold: bf.Threshold, AddressFactor: 10, Backoff: bf.Backoff,
			MaxBackoff: bf.MaxBackoff, Forgive: bf.Forgive, Tracked: bf.Tracked, Metrics: authMetrics,
		})
		if err != nil {
			return nil, err
		}
	}
	s.store = &storeRef{}
	verifier, err := auth.NewVerifier(auth.VerifierOptions{
		Store: s.store, CacheSize: 1, // sized by the cache builder
		MaxConcurrentHashes: cfg.Auth.MaxConcurrentVerifications, Limiter: limiter,
		Metrics: authMetrics,
	})
	if err != nil {
		return nil, err
	}
	s.failures = edge.NewFailureLog(s.logger)
	s.authn = auth.NewAuthenticator(verifier, s.failures, false)
	table, err := rbac.NewTable()
	if err != nil {
		return nil, err
	}
	s.authz = rbac.NewAuthorizer(s.store, table, rbac.Options{}, s.logger, rbac.NewMetrics(reg))
	s.users = usermgmt.NewService(usermgmt.Options{
		Store: s.store, Logger: s.logger,
		Metrics: usermgmt.NewMetrics(reg), Passwords: verifier, Authorizer: s.authz, Locks: verifier,
	})
	s.authz.SetDenials(s.failures.Denials)
	s.headers = edge.NewHeaderPolicy("")
	s.limits = ratelimit.New(ratelimit.Options{Registry: reg, Logger: s.logger})
	if err := s.applyConfig(nil, cfg); err != nil {
		return nil, err
	}
	// Hashes beyond the processors less one would starve the calls that
	// need none; the pool holds them to that (auth.HashSlots).
	if n, slots := cfg.Auth.MaxConcurrentVerifications, auth.HashSlots(cfg.Auth.MaxConcurrentVerifications); n > slots {
		s.logger.Warn("auth.maxConcurrentVerifications would leave no processor to the calls that need no hash (cached passwords, API keys, forwarding); fewer hashes run at once",
			"configured", n, "running", slots, "processors", runtime.GOMAXPROCS(0))
	}

	if cfg.Credentials.Store == config.StoreEtcd {
		if err := s.openEtcd(cfg); err != nil {
			s.authn.Verifier().SetExternal(auth.External{}) // stops the OpenID key refreshes
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), cfg.Credentials.Etcd.RequestTimeout)
		s.replicas, err = ratelimit.JoinReplicas(ctx, s.store.etcd.Client(), s.store.etcd.Prefix()+credentials.KeyReplicas, s.limits.SetReplicas, s.logger)
		cancel()
		if err != nil {
			s.authn.Verifier().SetExternal(auth.External{})
			s.store.close()
			return nil, err
		}
	}

	var backendTLS *tls.Config
	if b := cfg.Backend.TLS; b != nil {
		s.backendTLS, err = certs.NewClient(certs.ClientOptions{CAFile: b.CAFile, ServerName: b.ServerName, CertFile: b.CertFile, KeyFile: b.KeyFile})
		if err != nil {
			return nil, fmt.Errorf("backend.tls: %w", err)
		}
		backendTLS = s.backendTLS.TLSConfig()
	}
	codec := proxy.NewCodec()
	s.backend, err = proxy.DialBackend(proxy.BackendOptions{
		Address: cfg.Backend.Address, TLS: backendTLS, Codec: codec,
		MaxRecvMsgSize: cfg.GRPC.MaxRecvMsgSize, MaxSendMsgSize: cfg.GRPC.MaxSendMsgSize,
	})
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", cfg.Backend.Address, err)
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "authproxy_backend_up",
		Help: "1 when the connection to the backend is ready, 0 otherwise.",
	}, func() float64 {
		if s.backend.GetState() == connectivity.Ready {
			return 1
		}
		return 0
	}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "authproxy_credential_store_stale_seconds",
		Help: "How long the shared credential store (etcd) has not been followed; 0 while it is, and for a file.",
	}, s.store.staleSeconds))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "authproxy_api_keys_expiring",
		Help: "API keys that expire within 7 days (expired ones included): rotate them with `authproxy apikey rotate`.",
	}, func() float64 {
		soon := time.Now().Add(7 * 24 * time.Hour)
		n := 0
		for _, k := range s.store.Current().APIKeys() {
			if k.Expired(soon) {
				n++
			}
		}
		return float64(n)
	}))
	s.admitter = admission.NewAdmitter(admission.Options{Authn: s.authn, Authz: s.authz, Headers: s.headers, Limits: s.limits})
	s.director = proxy.NewDirector(s.backend, s.admitter)
	s.calls = newCallObserver(s.logger, cfg.Log.AccessLog, reg)

	s.grpcServer = grpc.NewServer(
		grpc.ForceServerCodecV2(codec),
		grpc.MaxRecvMsgSize(cfg.GRPC.MaxRecvMsgSize),
		grpc.MaxSendMsgSize(cfg.GRPC.MaxSendMsgSize),
		grpc.InitialWindowSize(edge.StreamWindow),
		grpc.InitialConnWindowSize(edge.ConnWindow),
		// Reuse handler goroutines instead of starting (and growing the stack
		// of) one per call: every forwarded call is a stream here.
		grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: edge.PingMinInterval, PermitWithoutStream: true}),
		// No unary interceptor: every method, the proxy's own included, is
		// served as a stream, so authentication runs before a body is read.
		grpc.ChainStreamInterceptor(s.calls.stream, proxy.Admit(s.admitter)),
		grpc.UnknownServiceHandler(proxy.NewHandler(s.director.Direct, s.admitter).StreamHandler()),
		grpc.Creds(sharedport.TransportCredentials()),
		grpc.MaxConcurrentStreams(edge.MaxConcurrentStreams),
		grpc.MaxHeaderListSize(edge.MaxHeaderListSize),
	)
	s.users.RegisterGRPC(s.grpcServer)
	s.admitter.SetLocal(localMethods(s.grpcServer))
	if cfg.Forwarding == config.ForwardFrames {
		s.relay, s.relayPipe = s.newRelay(cfg, backendTLS)
	}

	s.status.AddCheck("backend", func(ctx context.Context) error {
		if !s.backend.Ready(ctx) {
			return fmt.Errorf("backend %s not reachable (state %s)", s.backend.Address(), s.backend.GetState())
		}
		return nil
	})
	s.status.AddCheck("credentials", func(context.Context) error { return s.store.Check() })
	s.status.Reloaded("credentials", s.store.describe(), true, nil)
	if opts.ConfigPath != "" {
		s.status.Reloaded("config", opts.ConfigPath, true, nil)
	}
	return s, nil
}

// announceBuild says, outside the process, which binary and forwarding
// core run: /readyz's info and authproxy_build_info. forwarding is
// Restart-only (config.Table), so both hold for the process's life.
func (s *Server) announceBuild(cfg *config.Config, reg prometheus.Registerer) {
	s.status.SetInfo("forwarding", cfg.Forwarding)
	s.status.SetInfo("version", s.version())
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "authproxy_build_info",
		Help: "1, labelled with the version and the forwarding core (grpc, frames) this process runs.",
	}, []string{"version", "forwarding"})
	reg.MustRegister(info)
	info.WithLabelValues(s.version(), cfg.Forwarding).Set(1)
}

func (s *Server) version() string {
	if s.opts.Version == "" {
		return "dev"
	}
	return s.opts.Version
}

func certIdentity(ci *config.ClientIdentity) auth.CertIdentityFunc {
	if ci == nil {
		return nil
	}
	return func(cert *x509.Certificate) (string, error) {
		return certs.Identity(cert, ci.Source, ci.Users)
	}
}

// Start opens the listeners. Serving starts with Serve.
func (s *Server) Start() error {
	cfg := s.cfg.Load()
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	s.listener = lis
	if cfg.Admin.Listen != "" && s.adminLis == nil {
		if s.adminLis, err = net.Listen("tcp", cfg.Admin.Listen); err != nil {
			lis.Close()
			return fmt.Errorf("admin listen %s: %w", cfg.Admin.Listen, err)
		}
	}
	if err := s.openConsole(cfg); err != nil {
		lis.Close()
		return err
	}
	return nil
}

// startAdmin opens the admin listener and serves it now, before the
// client port (which Start opens).
func (s *Server) startAdmin(addr string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("admin listen %s: %w", addr, err)
	}
	s.adminLis = lis
	s.adminServer = &http.Server{Handler: s.status.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.adminServer.Serve(lis) }()
	return nil
}

// stopAdmin closes an admin listener New opened, when New fails.
func (s *Server) stopAdmin() {
	if s.adminServer != nil {
		s.adminServer.Close()
	}
}

// Addr is the client listener's address (useful with port 0).
func (s *Server) Addr() net.Addr { return s.listener.Addr() }

// AdminAddr is the admin listener's address, nil when admin is off.
func (s *Server) AdminAddr() net.Addr {
	if s.adminLis == nil {
		return nil
	}
	return s.adminLis.Addr()
}

// Serve serves until ctx is done, then shuts down gracefully: no new calls,
// in-flight calls get the grace period, then everything closes.
func (s *Server) Serve(ctx context.Context) error {
	cfg := s.cfg.Load()
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	if err := s.startWatcher(watchCtx); err != nil {
		return err
	}

	errc := make(chan error, 4)
	if s.adminLis != nil && s.adminServer == nil {
		s.adminServer = &http.Server{Handler: s.status.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := s.adminServer.Serve(s.adminLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("admin listener: %w", err)
			}
		}()
	}
	s.serveConsole(watchCtx, errc)
	var tlsConfig func() *tls.Config
	if s.tlsServer.Load() != nil {
		tlsConfig = func() *tls.Config { return s.tlsServer.Load().TLSConfig() }
	}
	portOpts := sharedport.Options{TLS: tlsConfig, GRPC: s.grpcServer, REST: s.restHandler(cfg), Logger: s.logger}
	if s.relay != nil {
		// The relay takes every HTTP/2 connection; the in-process server
		// answers the proxy's own methods behind it.
		portOpts.GRPC, portOpts.HTTP2 = nil, s.relay
		go func() { _ = s.grpcServer.Serve(s.relayPipe) }()
	}
	port := sharedport.Serve(s.listener, portOpts, errc)
	s.logger.Info("authproxy serving", "version", s.version(), "forwarding", cfg.Forwarding, "listen", s.listener.Addr().String(), "backend", cfg.Backend.Address,
		"tls", s.tlsServer.Load() != nil, "authorizationEnabled", s.authn.Enabled(), "admin", cfg.Admin.Listen)

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	s.shutdown(s.adminServer, port)
	return err
}

// shutdown drains gRPC and REST (HTTP/1 and HTTP/2) side by side within the
// grace period, then closes what is left.
func (s *Server) shutdown(adminServer *http.Server, port *sharedport.Port) {
	grace := time.Duration(s.gracePeriod.Load())
	s.logger.Info("shutting down", "gracePeriod", grace.String())
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	restDrained := make(chan struct{})
	go func() {
		port.Shutdown(ctx)
		close(restDrained)
	}()
	done := make(chan struct{})
	go func() {
		if s.relay != nil {
			s.relay.GracefulStop(ctx)
		}
		s.grpcServer.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.logger.Warn("grace period over, closing remaining calls")
		if s.relay != nil {
			s.relay.Stop()
		}
		s.grpcServer.Stop()
		<-done
	}
	<-restDrained
	s.closeConsole(ctx)
	if adminServer != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = adminServer.Shutdown(ctx)
		cancel()
	}
	s.backend.Close()
	s.limits.Close()
	if s.replicas != nil {
		s.replicas.Close() // before the store closes the etcd client they share
	}
	s.store.close()
	s.authn.Verifier().SetExternal(auth.External{}) // stops the OpenID key refreshes
	s.failures.Flush()
	s.logger.Info("stopped")
}
