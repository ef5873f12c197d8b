// Command fakemilvus runs the fake Milvus backend alone, to try authproxy
// without a Milvus server:
//
//	cd test && go run ./cmd/fakemilvus --listen 127.0.0.1:19540 --rest-listen 127.0.0.1:19541
//
// Given the arguments of Milvus's own image, `milvus run standalone`, it
// stands in for Milvus standalone in a container (test/container/run.sh tags
// its image with Milvus's name): it listens where Milvus would, on all
// interfaces, gRPC on proxy.port and GET /healthz on common.MetricsPort, read
// from --milvus-user-yaml (Milvus's /milvus/configs/user.yaml) when that file
// exists, else Milvus's defaults 19530 and 9091.
//
// It logs each call and stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/authproxy/authproxy/test/fakemilvus"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:19540", "gRPC listen address")
	restListen := flag.String("rest-listen", "", "RESTful API listen address (disabled when empty)")
	healthListen := flag.String("health-listen", "", "GET /healthz listen address (disabled when empty)")
	userYAML := flag.String("milvus-user-yaml", "/milvus/configs/user.yaml", "with `milvus run standalone`: Milvus's user.yaml to read the ports from")
	version := flag.String("version", fakemilvus.DefaultVersion, "version reported by GetVersion")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	switch args := strings.Join(flag.Args(), " "); args {
	case "":
	case "milvus run standalone":
		grpcPort, healthPort, err := milvusPorts(*userYAML)
		if err != nil {
			log.Error("read Milvus's user.yaml", "err", err)
			os.Exit(2)
		}
		*listen = net.JoinHostPort("0.0.0.0", strconv.Itoa(grpcPort))
		*healthListen = net.JoinHostPort("0.0.0.0", strconv.Itoa(healthPort))
	default:
		log.Error("unexpected arguments: only `milvus run standalone` is understood", "args", args)
		os.Exit(2)
	}

	srv := fakemilvus.New(fakemilvus.Options{Version: *version, Logger: log})
	addr, err := srv.Start(*listen)
	if err != nil {
		log.Error("start gRPC", "err", err)
		os.Exit(1)
	}
	log.Info("fake milvus serving gRPC", "addr", addr)
	if *restListen != "" {
		restAddr, err := srv.StartREST(*restListen)
		if err != nil {
			srv.Stop()
			log.Error("start REST", "err", err)
			os.Exit(1)
		}
		log.Info("fake milvus serving REST", "addr", restAddr)
	}
	if *healthListen != "" {
		lis, err := net.Listen("tcp", *healthListen)
		if err != nil {
			srv.Stop()
			log.Error("start /healthz", "err", err)
			os.Exit(1)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "OK") })
		h := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = h.Serve(lis) }()
		defer h.Close()
		log.Info("fake milvus serving /healthz", "addr", lis.Addr().String())
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	log.Info("stopping")
	srv.Stop()
}

// milvusPorts returns proxy.port and common.MetricsPort from Milvus's
// user.yaml at path, or Milvus's defaults when the file does not exist.
func milvusPorts(path string) (grpcPort, healthPort int, err error) {
	var cfg struct {
		Proxy struct {
			Port int `json:"port"`
		} `json:"proxy"`
		Common struct {
			MetricsPort int `json:"MetricsPort"`
		} `json:"common"`
	}
	// podman kube play 4.3 ignores a volumeMount's subPath and mounts the
	// whole ConfigMap directory at the file's path: read the file inside it.
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, filepath.Base(path))
	}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, 0, err
	}
	if err == nil {
		if err := yaml.Unmarshal(b, &cfg); err != nil {
			return 0, 0, fmt.Errorf("%s: %w", path, err)
		}
	}
	grpcPort, healthPort = cfg.Proxy.Port, cfg.Common.MetricsPort
	if grpcPort == 0 {
		grpcPort = 19530
	}
	if healthPort == 0 {
		healthPort = 9091
	}
	return grpcPort, healthPort, nil
}
