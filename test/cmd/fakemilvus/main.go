// Command fakemilvus runs the fake Milvus backend alone, to try authproxy
// without a Milvus server:
//
//	cd test && go run ./cmd/fakemilvus --listen 127.0.0.1:19540 --rest-listen 127.0.0.1:19541
//
// It logs each call and stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/authproxy/authproxy/test/fakemilvus"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:19540", "gRPC listen address")
	restListen := flag.String("rest-listen", "", "RESTful API listen address (disabled when empty)")
	version := flag.String("version", fakemilvus.DefaultVersion, "version reported by GetVersion")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
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

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	log.Info("stopping")
	srv.Stop()
}
