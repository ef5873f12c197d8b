package main

import (
	"errors"
	"flag"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"

	"github.com/authproxy/authproxy/test/harness"
)

// etcdCmd runs a single-member etcd on loopback for the bench's ap-etcd
// target (the credential store shared by replicas), until SIGTERM.
func etcdCmd(args []string) error {
	fs := flag.NewFlagSet("etcd", flag.ExitOnError)
	client := fs.String("listen", "127.0.0.1:39541", "client address (loopback only)")
	peer := fs.String("peer", "127.0.0.1:39542", "peer address (loopback only)")
	dir := fs.String("dir", "", "data directory (required)")
	_ = fs.Parse(args)
	if *dir == "" {
		return errors.New("-dir is required")
	}
	for _, a := range []string{*client, *peer} {
		if err := loopbackOnly(a); err != nil {
			return err
		}
	}
	cfg := harness.EtcdMemberConfig("bench", *dir, "http://"+*client, "http://"+*peer)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		return errors.New("etcd did not start")
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-stop:
	case err := <-e.Err():
		return err
	}
	return nil
}
