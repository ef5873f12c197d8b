package harness

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
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
func StartEtcd(t testing.TB) *Etcd { return startEtcd(t, nil) }

// StartEtcdTLS starts an etcd that serves TLS with certFile and keyFile and
// requires a client certificate signed by caFile.
func StartEtcdTLS(t testing.TB, caFile, certFile, keyFile string) *Etcd {
	return startEtcd(t, &transport.TLSInfo{CertFile: certFile, KeyFile: keyFile, TrustedCAFile: caFile, ClientCertAuth: true})
}

func startEtcd(t testing.TB, tlsInfo *transport.TLSInfo) *Etcd {
	t.Helper()
	scheme := "http://"
	if tlsInfo != nil {
		scheme = "https://"
	}
	cfg := EtcdMemberConfig("default", t.TempDir(), scheme+FreeAddr(t), "http://"+FreeAddr(t))
	if tlsInfo != nil {
		cfg.ClientTLSInfo = *tlsInfo
	}
	// The tests are about the proxy, not the disk: a busy disk's fsync
	// must not stretch a write past requestTimeout. A stop and start keep
	// what was written (the files stay in the page cache).
	cfg.UnsafeNoFsync = true
	e := &Etcd{URL: cfg.ListenClientUrls[0].String(), t: t, cfg: cfg}
	e.Start()
	t.Cleanup(e.Stop)
	return e
}

// EtcdMemberConfig is the configuration of one quiet etcd member on the
// given client and peer URLs, alone in its cluster until InitialCluster is
// changed (the tests' members and the bench's).
func EtcdMemberConfig(name, dir, clientURL, peerURL string) *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = name
	cfg.Dir = dir
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop()) // its shutdown errors are noise here
	client, _ := url.Parse(clientURL)
	peer, _ := url.Parse(peerURL)
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	cfg.InitialCluster = name + "=" + peer.String()
	return cfg
}

// Start starts (or restarts, on the same data and ports) the member.
func (e *Etcd) Start() {
	e.t.Helper()
	if err := e.start(); err != nil {
		e.t.Fatal(err)
	}
}

// start starts the member and waits until it serves (with a quorum).
func (e *Etcd) start() error {
	srv, err := embed.StartEtcd(e.cfg)
	if err != nil {
		return err
	}
	select {
	case <-srv.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		srv.Close()
		return fmt.Errorf("etcd member %s did not become ready", e.cfg.Name)
	}
	e.e = srv
	return nil
}

// StartAll (re)starts members together: a cluster member serves only once
// a quorum runs.
func StartAll(t testing.TB, members []*Etcd) {
	t.Helper()
	errs := make(chan error, len(members))
	for _, m := range members {
		go func() { errs <- m.start() }()
	}
	for range members {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// Stop stops the member; its data stays for Start.
func (e *Etcd) Stop() {
	if e.e != nil {
		e.e.Close()
		e.e = nil
	}
}

// StartEtcdCluster starts an n-member etcd cluster on loopback and returns
// its members; Endpoints lists their client URLs.
func StartEtcdCluster(t testing.TB, n int) []*Etcd {
	t.Helper()
	members := make([]*Etcd, n)
	var initial []string
	for i := range members {
		cfg := EtcdMemberConfig(fmt.Sprintf("m%d", i), t.TempDir(), "http://"+FreeAddr(t), "http://"+FreeAddr(t))
		initial = append(initial, cfg.InitialCluster)
		members[i] = &Etcd{URL: cfg.ListenClientUrls[0].String(), t: t, cfg: cfg}
	}
	for _, m := range members {
		m.cfg.InitialCluster = strings.Join(initial, ",")
	}
	StartAll(t, members)
	for _, m := range members {
		t.Cleanup(m.Stop)
	}
	return members
}

// IsLeader reports whether this member leads its cluster now.
func (e *Etcd) IsLeader() bool {
	return e.e != nil && e.e.Server.Leader() == e.e.Server.MemberID()
}
