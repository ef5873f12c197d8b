package integration

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"

	"github.com/authproxy/authproxy/test/harness"
)

// The fault tests run three replicas on a 3-member etcd cluster of real
// etcd processes (Debian's etcd 3.4), so that a member can be frozen with
// SIGSTOP as an operator's fault would freeze it. requestTimeout stays at
// its default, 5 s, the bound the README documents.
const defaultRequestTimeout = 5 * time.Second

func startReplicasOnCluster(t *testing.T, n int) ([]*harness.Proxy, []*harness.EtcdProc) {
	t.Helper()
	members := harness.StartEtcdProcCluster(t, 3)
	fake := startFake(t)
	store := fmt.Sprintf("credentials:\n  store: etcd\n  etcd:\n    endpoints: [%s]\n", strings.Join(harness.Endpoints(members), ", "))
	var ps []*harness.Proxy
	for range n {
		ps = append(ps, harness.Start(t, harness.Options{Backend: fake.Addr(), Credentials: store}))
	}
	return ps, members
}

// writeLoad is one writer per replica, each creating and dropping its own
// role (writes that cost no password hashing), recording how long each
// took and why it was refused.
type writeLoad struct {
	mu       sync.Mutex
	took     []time.Duration
	refusals []string
	stop     chan struct{}
	wg       sync.WaitGroup
}

func startWriteLoad(t *testing.T, ps []*harness.Proxy) *writeLoad {
	ctx := testCtx(t, 5*time.Minute)
	asRoot := withToken(ctx, "root:Milvus")
	l := &writeLoad{stop: make(chan struct{})}
	for r, p := range ps {
		m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
		role := fmt.Sprintf("load%d", r)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := range 5000 { // bounded; stop ends it long before
				select {
				case <-l.stop:
					return
				default:
				}
				began := time.Now()
				var reason string
				if i%2 == 0 {
					st, err := m.CreateRole(asRoot, &milvuspb.CreateRoleRequest{Entity: &milvuspb.RoleEntity{Name: role}})
					reason = refusal(st.GetCode(), st.GetReason(), err)
				} else {
					st, err := m.DropRole(asRoot, &milvuspb.DropRoleRequest{RoleName: role})
					reason = refusal(st.GetCode(), st.GetReason(), err)
				}
				took := time.Since(began)
				l.mu.Lock()
				l.took = append(l.took, took)
				if reason != "" {
					l.refusals = append(l.refusals, reason)
				}
				l.mu.Unlock()
				if reason != "" {
					return // its role is now out of step; one refusal is enough to fail
				}
			}
		}()
	}
	return l
}

func refusal(code int32, reason string, err error) string {
	if err != nil {
		return err.Error()
	}
	if code != 0 {
		return reason
	}
	return ""
}

// window returns what was recorded since the last call.
func (l *writeLoad) window() (took []time.Duration, refusals []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	took, refusals = l.took, l.refusals
	l.took, l.refusals = nil, nil
	return took, refusals
}

func (l *writeLoad) end() {
	close(l.stop)
	l.wg.Wait()
}

// logRefusalCauses logs the proxies' audit lines of refused changes: the
// client sees only "cannot be reached", the line's detail says which etcd
// request failed and how.
func logRefusalCauses(t *testing.T, ps []*harness.Proxy) {
	t.Helper()
	for r, p := range ps {
		for _, line := range strings.Split(p.Logs(), "\n") {
			if strings.Contains(line, "change refused") {
				t.Logf("replica %d: %s", r, line)
			}
		}
	}
}

// p99Bound is what the write p99 is held to in the tests: the goal is 1 s
// (measured well under it), but a loaded 2-core machine alone has shown
// 0.7 s without any fault.
const p99Bound = 2 * time.Second

// checkWindow fails on any refusal, on a write that took longer than
// limit and on a p99 above p99Bound, and logs the figures.
func checkWindow(t *testing.T, ps []*harness.Proxy, what string, took []time.Duration, refusals []string, limit time.Duration) {
	t.Helper()
	slices.Sort(took)
	if len(took) == 0 {
		t.Fatalf("%s: no write completed", what)
	}
	p50, p99, top := percentile(took, 50), percentile(took, 99), took[len(took)-1]
	t.Logf("%s: %d writes, p50 %v, p99 %v, max %v, %d refused", what, len(took),
		p50.Round(time.Millisecond), p99.Round(time.Millisecond), top.Round(time.Millisecond), len(refusals))
	if len(refusals) > 0 {
		t.Errorf("%s: writes refused although a majority of etcd is up: %q", what, refusals)
		logRefusalCauses(t, ps)
	}
	if top > limit {
		t.Errorf("%s: a write took %v, more than %v", what, top, limit)
	}
	if p99 > p99Bound {
		t.Errorf("%s: p99 %v, more than %v", what, p99, p99Bound)
	}
}

// One etcd follower frozen (SIGSTOP) under load for longer than keepalive
// takes to notice: no write is refused, none takes half of requestTimeout,
// p99 stays low (a request sent to the frozen member is abandoned
// and sent to another, and the member is avoided).
func TestEtcdFrozenFollowerStallsNoWrite(t *testing.T) {
	ps, members := startReplicasOnCluster(t, 3)
	load := startWriteLoad(t, ps)
	defer load.end()
	time.Sleep(2 * time.Second)
	took, refusals := load.window()
	checkWindow(t, ps, "before the fault", took, refusals, defaultRequestTimeout)

	leader := harness.Leader(t, members, 30*time.Second)
	follower := members[0]
	if follower == leader {
		follower = members[1]
	}
	follower.Freeze()
	time.Sleep(15 * time.Second)
	took, refusals = load.window()
	follower.Thaw()
	checkWindow(t, ps, "one follower frozen for 15 s", took, refusals, defaultRequestTimeout/2)

	time.Sleep(2 * time.Second)
	took, refusals = load.window()
	checkWindow(t, ps, "after the thaw", took, refusals, defaultRequestTimeout/2)
}

// The etcd leader killed (-9) under load: writes wait for the election
// but none is refused; a write whose answer was lost with the leader is
// recognised as made, not refused as "already exists"; the member comes
// back and rejoins.
//
// The election is etcd's, and its length is measured, not assumed: with
// etcd's default timeouts it took 0.95 to 2.3 s here (the survivors can
// split their first vote), and a write cannot be made without a leader.
// Only when the survivors agreed on a leader with electionSlack to spare
// inside requestTimeout is every write held to succeed; after a longer
// election a write may be refused, and then only as the documented
// answer: naming the store, within requestTimeout.
func TestEtcdKilledLeaderRefusesNoWrite(t *testing.T) {
	ps, members := startReplicasOnCluster(t, 3)
	load := startWriteLoad(t, ps)
	defer load.end()
	time.Sleep(2 * time.Second)
	load.window()

	leader := harness.Leader(t, members, 30*time.Second)
	killed := time.Now()
	leader.Kill()
	survivors := slices.DeleteFunc(slices.Clone(members), func(m *harness.EtcdProc) bool { return m == leader })
	harness.Leader(t, survivors, 30*time.Second)
	elected := time.Since(killed)
	t.Logf("leader killed: the survivors agreed on a new one after %v", elected.Round(time.Millisecond))
	time.Sleep(8*time.Second - elected)
	took, refusals := load.window()
	if elected > defaultRequestTimeout-electionSlack {
		for _, r := range refusals {
			if !strings.Contains(r, "credential store (etcd) cannot be reached") {
				t.Errorf("leader killed, etcd without a leader for %v: a write refused with %q", elected, r)
			}
		}
		t.Logf("leader killed: %d writes refused while etcd had no leader for %v", len(refusals), elected)
		refusals = nil
	}
	checkWindow(t, ps, "leader killed, 8 s", took, refusals, defaultRequestTimeout)

	leader.Restart()
	time.Sleep(4 * time.Second)
	took, refusals = load.window()
	checkWindow(t, ps, "old leader back", took, refusals, defaultRequestTimeout/2)
}

// electionSlack is what a write needs after an election besides it: the
// rest of the attempt that found no leader (each is bounded, 250 ms at
// first) and the write itself. Measured: the slowest write ends at most
// 0.5 s after the survivors are seen to agree.
const electionSlack = time.Second

// The whole etcd cluster down, first frozen (a black hole: connections
// open, nothing answers, as when etcd's hosts vanish) then killed
// (connections refused): a change is refused, naming the store, within
// requestTimeout (not a multiple of it), also for changes queued behind
// one another on one replica; the replicas keep authenticating; once etcd
// is back, changes work again.
func TestEtcdDownRefusesWithinRequestTimeout(t *testing.T) {
	ps, members := startReplicasOnCluster(t, 2)
	ctx := testCtx(t, 2*time.Minute)
	asRoot := withToken(ctx, "root:Milvus")
	m := milvuspb.NewMilvusServiceClient(dial(t, ps[0].Addr, nil))
	refusedInTime := func(phase string) {
		const queued = 3
		type result struct {
			took   time.Duration
			reason string
		}
		results := make(chan result, queued)
		for i := range queued {
			go func() {
				began := time.Now()
				st, err := m.CreateRole(asRoot, &milvuspb.CreateRoleRequest{Entity: &milvuspb.RoleEntity{Name: fmt.Sprintf("down%d", i)}})
				results <- result{time.Since(began), refusal(st.GetCode(), st.GetReason(), err)}
			}()
		}
		limit := defaultRequestTimeout + time.Second // the margin: the RPC around the store
		for range queued {
			r := <-results
			t.Logf("etcd %s: a change refused after %v: %s", phase, r.took.Round(time.Millisecond), r.reason)
			if !strings.Contains(r.reason, "credential store (etcd) cannot be reached") {
				t.Errorf("etcd %s: a change: %q", phase, r.reason)
			}
			if r.took > limit {
				t.Errorf("etcd %s: the refusal took %v, more than requestTimeout (%v) and a margin", phase, r.took, defaultRequestTimeout)
			}
		}
		for _, p := range ps {
			must(t, getVersion(ctx, milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil)), "root:Milvus"))
		}
	}
	for _, e := range members {
		e.Freeze()
	}
	refusedInTime("frozen")
	for _, e := range members {
		e.Kill()
	}
	refusedInTime("killed")
	for _, e := range members {
		e.Restart()
	}
	within(t, 60*time.Second, "a change after etcd is back", func() error {
		st, err := m.CreateRole(asRoot, &milvuspb.CreateRoleRequest{Entity: &milvuspb.RoleEntity{Name: "back"}})
		if r := refusal(st.GetCode(), st.GetReason(), err); r != "" {
			return fmt.Errorf("%s", r)
		}
		return nil
	})
}
