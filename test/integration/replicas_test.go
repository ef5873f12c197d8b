package integration

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/authproxy/authproxy/certs"
	"github.com/authproxy/authproxy/test/harness"
)

// startReplicas starts n proxies sharing one credential store on a real
// etcd, in front of one fake backend. requestTimeout stays at its default
// (5 s): it bounds each change's etcd work, and 50 contended changes per
// replica on a loaded machine can need more than 1 s.
func startReplicas(t *testing.T, n int) ([]*harness.Proxy, *harness.Etcd) {
	t.Helper()
	etcd := harness.StartEtcd(t)
	fake := startFake(t)
	store := fmt.Sprintf("credentials:\n  store: etcd\n  etcd:\n    endpoints: [%q]\n    prefix: /authproxy-test/\n", etcd.URL)
	var ps []*harness.Proxy
	for range n {
		ps = append(ps, harness.Start(t, harness.Options{Backend: fake.Addr(), Credentials: store}))
	}
	return ps, etcd
}

// within polls f until it succeeds or the limit passes, and says how long
// it took.
func within(t *testing.T, limit time.Duration, what string, f func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := f()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v: %v", what, limit, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Three replicas on one etcd act as one: a user created through one is
// accepted by the others, a password changed on one is refused at its old
// value on the others, a revoked grant is enforced everywhere, each within
// a second.
func TestReplicasShareUsersPasswordsAndGrants(t *testing.T) {
	ps, _ := startReplicas(t, 3)
	ctx := testCtx(t, 120*time.Second)
	conns := make([]milvuspb.MilvusServiceClient, len(ps))
	for i, p := range ps {
		conns[i] = milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	}
	root1 := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: ps[0].Addr, Username: "root", Password: "Milvus"})
	harness.Password("alice", "Alice-pw-1")
	must(t, root1.CreateUser(ctx, milvusclient.NewCreateUserOption("alice", "Alice-pw-1")))
	for i := 1; i < 3; i++ {
		took := within(t, time.Second, fmt.Sprintf("alice on replica %d", i+1), func() error { return getVersion(ctx, conns[i], "alice:Alice-pw-1") })
		t.Logf("a user created on replica 1 authenticates on replica %d after %v", i+1, took)
	}

	// Changed on replica 2: the old password, cached on 1 and 3, is refused there.
	root2 := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: ps[1].Addr, Username: "root", Password: "Milvus"})
	harness.Password("alice", "Alice-pw-2")
	must(t, root2.UpdatePassword(ctx, milvusclient.NewUpdatePasswordOption("alice", "Alice-pw-1", "Alice-pw-2")))
	for _, i := range []int{0, 2} {
		took := within(t, time.Second, fmt.Sprintf("old password refused on replica %d", i+1), func() error {
			if getVersion(ctx, conns[i], "alice:Alice-pw-1") == nil {
				return fmt.Errorf("still accepted")
			}
			return nil
		})
		must(t, getVersion(ctx, conns[i], "alice:Alice-pw-2"))
		t.Logf("a password changed on replica 2 is refused at its old value on replica %d after %v", i+1, took)
	}

	// A grant made on 1 and revoked on 3 is enforced on 1 and 2.
	must(t, root1.CreateRole(ctx, milvusclient.NewCreateRoleOption("reader")))
	must(t, root1.GrantPrivilege(ctx, milvusclient.NewGrantPrivilegeOption("reader", "Collection", "Query", "books")))
	must(t, root1.GrantRole(ctx, milvusclient.NewGrantRoleOption("alice", "reader")))
	asAlice := withToken(ctx, "alice:Alice-pw-2")
	query := func(i int) error {
		_, err := conns[i].Query(asAlice, &milvuspb.QueryRequest{CollectionName: "books"})
		return err
	}
	within(t, time.Second, "the grant on replica 2", func() error {
		if err := query(1); err != nil && strings.Contains(err.Error(), "permission deny") {
			return err
		}
		return nil
	})
	root3 := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: ps[2].Addr, Username: "root", Password: "Milvus"})
	must(t, root3.RevokePrivilege(ctx, milvusclient.NewRevokePrivilegeOption("reader", "Collection", "Query", "books")))
	for _, i := range []int{0, 1} {
		took := within(t, time.Second, fmt.Sprintf("revoke enforced on replica %d", i+1), func() error {
			if err := query(i); err == nil || !strings.Contains(err.Error(), "permission deny") {
				return fmt.Errorf("still allowed (%v)", err)
			}
			return nil
		})
		t.Logf("a grant revoked on replica 3 is enforced on replica %d after %v", i+1, took)
	}
}

// 3 replicas × 50 concurrent creates end with exactly 150 users; one name
// created on two replicas at once exists once, and one call is refused.
func TestConcurrentCreatesOnReplicas(t *testing.T) {
	ps, _ := startReplicas(t, 3)
	ctx := testCtx(t, 180*time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex
	failures := map[string]int{}
	for r, p := range ps {
		m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
		asRoot := withToken(ctx, "root:Milvus")
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, err := m.CreateCredential(asRoot, &milvuspb.CreateCredentialRequest{Username: fmt.Sprintf("r%d_u%02d", r, i), Password: b64("P@ssw0rd")})
				if err != nil || st.GetCode() != 0 {
					mu.Lock()
					failures[fmt.Sprint(st.GetReason(), err)]++
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("failed creates: %v", failures)
	}
	m := milvuspb.NewMilvusServiceClient(dial(t, ps[2].Addr, nil))
	within(t, time.Second, "150 users on replica 3", func() error {
		listed, err := m.ListCredUsers(withToken(ctx, "root:Milvus"), &milvuspb.ListCredUsersRequest{})
		if n := len(listed.GetUsernames()); err != nil || n != 151 {
			return fmt.Errorf("%d users (%v), want 151 with root", n, err)
		}
		return nil
	})

	// The same name on two replicas at once.
	results := make(chan string, 2)
	for _, p := range ps[:2] {
		go func() {
			m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
			st, err := m.CreateCredential(withToken(ctx, "root:Milvus"), &milvuspb.CreateCredentialRequest{Username: "twice", Password: b64("P@ssw0rd")})
			results <- fmt.Sprint(st.GetReason(), err)
		}()
	}
	got := []string{<-results, <-results}
	if !((got[0] == "<nil>" && got[1] == "user already exists: twice<nil>") || (got[1] == "<nil>" && got[0] == "user already exists: twice<nil>")) {
		t.Fatalf("one name created on two replicas at once: %q", got)
	}
}

// etcd lost while running: known users keep authenticating and
// authorizing from the last snapshot; changes are refused with a message
// naming the store; the detail and a metric show it. When etcd is back,
// the replicas follow it again with no restart and changes work.
func TestEtcdLostAndBack(t *testing.T) {
	ps, etcd := startReplicas(t, 2)
	ctx := testCtx(t, 120*time.Second)
	m := milvuspb.NewMilvusServiceClient(dial(t, ps[0].Addr, nil))
	asRoot := withToken(ctx, "root:Milvus")
	harness.Password("alice", "Alice-pw-1")
	st, err := m.CreateCredential(asRoot, &milvuspb.CreateCredentialRequest{Username: "alice", Password: b64("Alice-pw-1")})
	if err != nil || st.GetCode() != 0 {
		t.Fatalf("create alice: %v %v", st, err)
	}
	other := milvuspb.NewMilvusServiceClient(dial(t, ps[1].Addr, nil))
	within(t, time.Second, "alice on replica 2", func() error { return getVersion(ctx, other, "alice:Alice-pw-1") })

	etcd.Stop()
	// Not cached on replica 1 yet: a cold check from the last snapshot.
	must(t, getVersion(ctx, m, "alice:Alice-pw-1"))
	must(t, getVersion(ctx, other, "root:Milvus"))
	st, err = m.CreateCredential(asRoot, &milvuspb.CreateCredentialRequest{Username: "bob", Password: b64("P@ssw0rd")})
	if err != nil || st.GetCode() == 0 || !strings.Contains(st.GetReason(), "credential store (etcd) cannot be reached") {
		t.Fatalf("a change while etcd is down: %v %v", st, err)
	}
	within(t, 45*time.Second, "staleness reported", func() error {
		if metricValue(t, ps[0], "authproxy_credential_store_stale_seconds") == 0 {
			return fmt.Errorf("not stale yet")
		}
		return nil
	})
	if code, body := ps[0].AdminStatus("/readyz"); code != 200 || !strings.Contains(body, `"ok": false`) {
		t.Fatalf("/readyz while etcd is down: %d %s", code, body)
	}

	etcd.Start()
	within(t, 30*time.Second, "a change after etcd is back", func() error {
		st, err := m.CreateCredential(asRoot, &milvuspb.CreateCredentialRequest{Username: "bob", Password: b64("P@ssw0rd")})
		if err != nil || st.GetCode() != 0 {
			return fmt.Errorf("%v %v", st, err)
		}
		return nil
	})
	harness.Password("bob", "P@ssw0rd")
	within(t, 30*time.Second, "bob on replica 2 after etcd is back", func() error { return getVersion(ctx, other, "bob:P@ssw0rd") })
	within(t, 30*time.Second, "following again", func() error {
		if v := metricValue(t, ps[1], "authproxy_credential_store_stale_seconds"); v != 0 {
			return fmt.Errorf("stale for %vs", v)
		}
		return nil
	})
}

// kill -9 of a replica in the middle of writes loses no change it
// acknowledged.
func TestKilledReplicaLosesNoAcknowledgedChange(t *testing.T) {
	ps, _ := startReplicas(t, 2)
	ctx := testCtx(t, 120*time.Second)
	m := milvuspb.NewMilvusServiceClient(dial(t, ps[0].Addr, nil))
	asRoot := withToken(ctx, "root:Milvus")
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				name := fmt.Sprintf("k%d_%02d", w, i)
				st, err := m.CreateCredential(asRoot, &milvuspb.CreateCredentialRequest{Username: name, Password: b64("P@ssw0rd")})
				if err != nil {
					return // the replica is gone
				}
				if st.GetCode() == 0 {
					mu.Lock()
					acked = append(acked, name)
					mu.Unlock()
				}
			}
		}()
	}
	within(t, 30*time.Second, "some writes acknowledged", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(acked) < 8 {
			return fmt.Errorf("%d acknowledged", len(acked))
		}
		return nil
	})
	ps[0].Kill()
	wg.Wait()
	survivor := milvuspb.NewMilvusServiceClient(dial(t, ps[1].Addr, nil))
	listed, err := survivor.ListCredUsers(asRoot, &milvuspb.ListCredUsersRequest{})
	must(t, err)
	have := map[string]bool{}
	for _, u := range listed.GetUsernames() {
		have[u] = true
	}
	for _, name := range acked {
		if !have[name] {
			t.Errorf("%s was acknowledged by the killed replica and is lost", name)
		}
	}
	t.Logf("kill -9 during 40 creates: %d acknowledged, all on the survivor", len(acked))
}

// A leader change in a 3-member etcd cluster, then the whole cluster
// down, then back: authentication never fails for a known user, changes
// are refused while etcd is down and accepted after, and nothing
// acknowledged is lost.
func TestEtcdLeaderChangeAndOutageLoseNothing(t *testing.T) {
	members := harness.StartEtcdCluster(t, 3)
	var endpoints []string
	for _, m := range members {
		endpoints = append(endpoints, fmt.Sprintf("%q", m.URL))
	}
	fake := startFake(t)
	store := fmt.Sprintf("credentials:\n  store: etcd\n  etcd:\n    endpoints: [%s]\n    requestTimeout: 1s\n", strings.Join(endpoints, ", "))
	ps := []*harness.Proxy{
		harness.Start(t, harness.Options{Backend: fake.Addr(), Credentials: store}),
		harness.Start(t, harness.Options{Backend: fake.Addr(), Credentials: store}),
	}
	ctx := testCtx(t, 180*time.Second)
	conns := []milvuspb.MilvusServiceClient{
		milvuspb.NewMilvusServiceClient(dial(t, ps[0].Addr, nil)),
		milvuspb.NewMilvusServiceClient(dial(t, ps[1].Addr, nil)),
	}
	asRoot := withToken(ctx, "root:Milvus")
	var mu sync.Mutex
	var acked []string
	create := func(c milvuspb.MilvusServiceClient, name string) error {
		st, err := c.CreateCredential(asRoot, &milvuspb.CreateCredentialRequest{Username: name, Password: b64("P@ssw0rd")})
		if err == nil && st.GetCode() != 0 {
			err = fmt.Errorf("%s", st.GetReason())
		}
		if err == nil {
			mu.Lock()
			acked = append(acked, name)
			mu.Unlock()
		}
		return err
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_ = create(conns[w], fmt.Sprintf("w%d_%03d", w, i))
			}
		}()
	}
	// Authentication of a known user, checked throughout.
	authFailures := 0
	checkAuth := func() {
		for _, c := range conns {
			if err := getVersion(ctx, c, "root:Milvus"); err != nil {
				authFailures++
				t.Errorf("root refused during the fault: %v", err)
			}
		}
	}
	time.Sleep(time.Second)
	for _, m := range members {
		if m.IsLeader() {
			m.Stop()
			t.Logf("stopped the leader %s", m.URL)
		}
	}
	for range 10 {
		checkAuth()
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	for _, m := range members {
		m.Stop()
	}
	checkAuth()
	if err := create(conns[0], "during_outage"); err == nil || !strings.Contains(err.Error(), "cannot be reached") {
		t.Fatalf("a change while etcd is down: %v", err)
	}
	harness.StartAll(t, members)
	within(t, 30*time.Second, "a change after etcd is back", func() error { return create(conns[1], "after_outage") })
	checkAuth()
	within(t, 30*time.Second, "every acknowledged user on both replicas", func() error {
		for _, c := range conns {
			listed, err := c.ListCredUsers(asRoot, &milvuspb.ListCredUsersRequest{})
			if err != nil {
				return err
			}
			have := map[string]bool{}
			for _, u := range listed.GetUsernames() {
				have[u] = true
			}
			for _, name := range acked {
				if !have[name] {
					return fmt.Errorf("%s acknowledged but missing", name)
				}
			}
		}
		return nil
	})
	t.Logf("leader change and full outage: %d creates acknowledged, none lost; %d authentication failures", len(acked), authFailures)
}

// The offline commands write to the etcd store when the config says so,
// and the running replicas follow.
func TestCLIOnTheEtcdStore(t *testing.T) {
	ps, etcd := startReplicas(t, 1)
	cfg := filepath.Join(t.TempDir(), "cli.yaml")
	must(t, os.WriteFile(cfg, []byte(fmt.Sprintf("credentials:\n  store: etcd\n  etcd:\n    endpoints: [%q]\n    prefix: /authproxy-test/\n", etcd.URL)), 0o600))
	harness.Password("carol", "Carol-pw-1")
	cmd := exec.Command(harness.Binary(t), "user", "add", "carol", "--password-stdin", "--config", cfg)
	cmd.Stdin = strings.NewReader("Carol-pw-1\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("user add on etcd: %v\n%s", err, out)
	}
	ctx := testCtx(t, 30*time.Second)
	m := milvuspb.NewMilvusServiceClient(dial(t, ps[0].Addr, nil))
	within(t, time.Second, "carol on the replica", func() error { return getVersion(ctx, m, "carol:Carol-pw-1") })
	out, err := exec.Command(harness.Binary(t), "user", "list", "--config", cfg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "carol") {
		t.Fatalf("user list on etcd: %v\n%s", err, out)
	}
}

// etcd unreachable at start: the proxy retries, serves nothing, and its
// /readyz is 503 naming the store; once etcd is up it lists and serves.
func TestStartWaitsForEtcd(t *testing.T) {
	etcd := harness.StartEtcd(t)
	etcd.Stop()
	fake := startFake(t)
	p := harness.Start(t, harness.Options{Backend: fake.Addr(), NoWait: true,
		Credentials: fmt.Sprintf("credentials:\n  store: etcd\n  etcd:\n    endpoints: [%q]\n    requestTimeout: 1s\n", etcd.URL)})
	within(t, 15*time.Second, "/readyz 503 naming etcd", func() error {
		code, body := p.AdminStatus("/readyz")
		if code != 503 || !strings.Contains(body, "credential store (etcd) not listed yet") {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	if c, err := net.DialTimeout("tcp", p.Addr, time.Second); err == nil {
		c.Close()
		t.Fatal("the client port serves before the store is listed")
	}
	etcd.Start()
	ctx := testCtx(t, 60*time.Second)
	within(t, 30*time.Second, "serving once etcd is up", func() error {
		return getVersion(ctx, milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil)), "root:Milvus")
	})
	if code, body := p.AdminStatus("/readyz"); code != 200 {
		t.Fatalf("/readyz after the list: %d %s", code, body)
	}
}

// The store on an etcd that requires TLS with a client certificate and a
// user with a password (read from a file, never in the config), limited
// to authproxy's prefix.
func TestEtcdWithTLSAndAUser(t *testing.T) {
	dir := t.TempDir()
	must(t, certs.Generate(dir, []string{"127.0.0.1"}, time.Hour))
	ca, cert, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	etcd := harness.StartEtcdTLS(t, ca, filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key"))

	// Users and a role limited to /authproxy/, then authentication on.
	tlsInfo := transport.TLSInfo{CertFile: cert, KeyFile: key, TrustedCAFile: ca}
	tlsConfig, err := tlsInfo.ClientConfig()
	must(t, err)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{etcd.URL}, TLS: tlsConfig, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	must(t, err)
	defer cli.Close()
	ctx := testCtx(t, 60*time.Second)
	harness.Secret("etcd-root-pw-1")
	harness.Secret("etcd-authproxy-pw-1")
	for _, step := range []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", "etcd-root-pw-1"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, "authproxy"); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, "authproxy", "/authproxy/", clientv3.GetPrefixRangeEnd("/authproxy/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, "authproxy", "etcd-authproxy-pw-1"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "authproxy", "authproxy"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	} {
		must(t, step())
	}
	passwordFile := filepath.Join(dir, "etcd-password")
	must(t, os.WriteFile(passwordFile, []byte("etcd-authproxy-pw-1\n"), 0o600))

	fake := startFake(t)
	p := harness.Start(t, harness.Options{Backend: fake.Addr(), Credentials: fmt.Sprintf(`credentials:
  store: etcd
  etcd:
    endpoints: [%q]
    tls: {caFile: %q, certFile: %q, keyFile: %q}
    username: authproxy
    passwordFile: %q
`, etcd.URL, ca, cert, key, passwordFile)})
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	must(t, getVersion(ctx, m, "root:Milvus"))
	st, err := m.CreateCredential(withToken(ctx, "root:Milvus"), &milvuspb.CreateCredentialRequest{Username: "dave", Password: b64("Dave-pw-12")})
	if err != nil || st.GetCode() != 0 {
		t.Fatalf("create through TLS and an etcd user: %v %v", st, err)
	}
	harness.Password("dave", "Dave-pw-12")
	must(t, getVersion(ctx, m, "dave:Dave-pw-12"))
	if strings.Contains(p.Logs(), "etcd-authproxy-pw-1") {
		t.Fatal("the etcd password reached the log")
	}
}
