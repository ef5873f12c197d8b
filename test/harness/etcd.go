package harness

import (
	"net/url"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Etcd is a single-member etcd on loopback, for the test.
type Etcd struct {
	URL string
	t   testing.TB
	cfg *embed.Config
	e   *embed.Etcd
}

// StartEtcd starts an etcd that the test's end stops.
func StartEtcd(t testing.TB) *Etcd {
	t.Helper()
	cfg := embed.NewConfig()
	cfg.Dir = t.TempDir()
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop()) // its shutdown errors are noise here
	client, _ := url.Parse("http://" + FreeAddr(t))
	peer, _ := url.Parse("http://" + FreeAddr(t))
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	cfg.InitialCluster = cfg.Name + "=" + peer.String()
	e := &Etcd{URL: client.String(), t: t, cfg: cfg}
	e.Start()
	t.Cleanup(e.Stop)
	return e
}

// Start starts (or restarts, on the same data and ports) the member.
func (e *Etcd) Start() {
	e.t.Helper()
	srv, err := embed.StartEtcd(e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	select {
	case <-srv.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		srv.Close()
		e.t.Fatal("etcd did not start")
	}
	e.e = srv
}

// Stop stops the member; its data stays for Start.
func (e *Etcd) Stop() {
	if e.e != nil {
		e.e.Close()
		e.e = nil
	}
}
