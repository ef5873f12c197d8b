package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/authproxy/authproxy/config"
	"github.com/authproxy/authproxy/server"
)

func serveCmd() *cobra.Command {
	var configPath string
	var flags struct {
		listen, backend, credentials, adminListen, logLevel string
		authEnabled                                         bool
	}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the proxy",
		Long: `Run the proxy: authenticate every gRPC call and forward it to the backend.

Without --config the defaults apply: listen on 0.0.0.0:19530, backend
127.0.0.1:19540, authentication on, credentials in ./credentials.yaml (created
with root/Milvus if missing), health and metrics on 127.0.0.1:9091.
Flags override the config file, also when it is reloaded.
SIGHUP reloads the config, credential and TLS files; SIGTERM and SIGINT stop
gracefully.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			overrides := func(c *config.Config) {
				f := cmd.Flags()
				if f.Changed("listen") {
					c.Listen = flags.listen
				}
				if f.Changed("backend") {
					c.Backend.Address = flags.backend
				}
				if f.Changed("credentials") {
					c.Credentials.File = flags.credentials
				}
				if f.Changed("admin-listen") {
					c.Admin.Listen = flags.adminListen
				}
				if f.Changed("log-level") {
					c.Log.Level = flags.logLevel
				}
				if f.Changed("auth") {
					c.Common.Security.AuthorizationEnabled = flags.authEnabled
				}
			}
			cfg, err := config.Read(configPath, overrides)
			if err != nil {
				return err
			}
			// The binary's registry adds the runtime and process metrics to
			// the proxy's own.
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			srv, err := server.New(cfg, server.Options{ConfigPath: configPath, Overrides: overrides, LogOutput: os.Stderr, Registry: reg, Version: version})
			if err != nil {
				return err
			}
			if err := srv.Start(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for range hup {
					srv.ReloadAll()
				}
			}()
			return srv.Serve(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&configPath, "config", "c", "", "YAML config file (watched and reloaded live)")
	f.StringVar(&flags.listen, "listen", "", "client address, host:port (config: listen; default 0.0.0.0:19530)")
	f.StringVar(&flags.backend, "backend", "", "backend gRPC address, host:port (config: backend.address; default 127.0.0.1:19540)")
	f.StringVar(&flags.credentials, "credentials", "", "credential file (config: credentials.file; default ./credentials.yaml)")
	f.StringVar(&flags.adminListen, "admin-listen", "", `health and metrics address, "" disables (config: admin.listen; default 127.0.0.1:9091)`)
	f.StringVar(&flags.logLevel, "log-level", "", "debug, info, warn or error (config: log.level; default info)")
	f.BoolVar(&flags.authEnabled, "auth", true, "check tokens (config: common.security.authorizationEnabled); --auth=false forwards without checking")
	return cmd
}
