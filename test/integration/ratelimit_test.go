package integration

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus-proto/go-api/v2/schemapb"
	"github.com/milvus-io/milvus/client/v2/entity"
	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/authproxy/authproxy/test/fakemilvus"
	"github.com/authproxy/authproxy/test/harness"
)

const rateLimitMessage = "request is rejected by grpc RateLimiter middleware, please retry later: rate limit exceeded[rate="

// limitedPair starts a proxy with rateLimits (YAML under the key) and
// users alice, bob (role reader: every privilege on collection books)
// and carol, dave (role ops, the same grants); books exists.
func limitedPair(t *testing.T, ctx context.Context, rateLimits string) (*fakemilvus.Server, *harness.Proxy) {
	t.Helper()
	fake, p := startRESTPair(t, harness.Options{Extra: "rateLimits:\n" + rateLimits})
	root := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "root", Password: "Milvus"})
	createVectors(t, ctx, root, "books", 8)
	for _, role := range []string{"reader", "ops"} {
		must(t, root.CreateRole(ctx, milvusclient.NewCreateRoleOption(role)))
		must(t, root.GrantPrivilegeV2(ctx, milvusclient.NewGrantPrivilegeV2Option(role, "CollectionReadWrite", "books")))
	}
	for user, role := range map[string]string{"alice": "reader", "bob": "reader", "carol": "ops", "dave": "ops"} {
		harness.Password(user, user+"-pw-1")
		must(t, root.CreateUser(ctx, milvusclient.NewCreateUserOption(user, user+"-pw-1")))
		must(t, root.GrantRole(ctx, milvusclient.NewGrantRoleOption(user, role)))
	}
	return fake, p
}

// retryingClient is the Go SDK with its own RetryOnRateLimitInterceptor:
// v2.6.2 ships it but leaves it out of its default dial options
// (client.go, commented out), so it is added here as pymilvus's
// retry_on_rpc_failure is on by default: backoff 10 ms x 3 per attempt,
// at most maxBackoff, 75 attempts.
func retryingClient(t *testing.T, ctx context.Context, addr, user string, maxBackoff time.Duration) *milvusclient.Client {
	t.Helper()
	opts := append(append([]grpc.DialOption{}, milvusclient.DefaultGrpcOpts...),
		grpc.WithChainUnaryInterceptor(milvusclient.RetryOnRateLimitInterceptor(75, maxBackoff, func(_ context.Context, attempt uint) time.Duration {
			return retryBackoff(attempt, maxBackoff)
		})))
	return sdkClient(t, ctx, &milvusclient.ClientConfig{Address: addr, Username: user, Password: user + "-pw-1", DialOptions: opts})
}

// retryBackoff is 10 ms x 3^attempt, at most maxBackoff. Capped as it
// grows: 10 ms x 3^attempt in time.Duration overflows from attempt 26 on,
// and the interceptor skips the wait when the result is not positive. With
// that, 41 of the 75 attempts did not wait, a search gave up after about
// 3 s of refusals, and one of alice's searches failed in CI.
func retryBackoff(attempt uint, maxBackoff time.Duration) time.Duration {
	d := 10 * time.Millisecond
	for range attempt {
		if d *= 3; d >= maxBackoff {
			return maxBackoff
		}
	}
	return d
}

// startsIn counts the backend's calls to method that started in [from, to).
func startsIn(fake *fakemilvus.Server, method string, from, to time.Time) int {
	n := 0
	for _, c := range fake.Recorder().CallsTo("/milvus.proto.milvus.MilvusService/" + method) {
		if !c.Start.Before(from) && c.Start.Before(to) {
			n++
		}
	}
	return n
}

// Two users: alice limited to 50 searches/s (dql.searchRate, nq 1), bob
// not. Alice's Go SDK, retrying code 8 as pymilvus does, slows down and
// completes every search; the backend sees her at 50/s within 10%; bob's
// searches are never refused; one audit line says alice is limited and one
// that she no longer is.
func TestRateLimitTwoUsersOneLimited(t *testing.T) {
	ctx := testCtx(t, 120*time.Second)
	fake, p := limitedPair(t, ctx, `  limits:
    - {name: alice-search, user: alice, rate: dql.searchRate, max: 50, burst: 10}
`)
	alice := retryingClient(t, ctx, p.Addr, "alice", 100*time.Millisecond)
	bob := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	asBob := withToken(ctx, "bob:bob-pw-1")
	search := func(c *milvusclient.Client) error {
		_, err := c.Search(ctx, milvusclient.NewSearchOption("books", 3, []entity.Vector{constVec(1, 8)}).WithANNSField("vec"))
		return err
	}
	must(t, search(alice)) // describes books once, before the clock starts

	const workers, perWorker = 8, 40 // 320 searches: about 6.2 s at 50/s
	start := time.Now()
	var wg sync.WaitGroup
	var aliceErrs, bobRefused, bobCalls atomic.Int64
	for range workers {
		wg.Go(func() {
			for range perWorker {
				if err := search(alice); err != nil {
					aliceErrs.Add(1)
					t.Errorf("alice's search failed: %v", err)
					return
				}
			}
		})
	}
	bobDone := make(chan struct{})
	go func() {
		defer close(bobDone)
		for time.Since(start) < 3*time.Second {
			r, err := bob.Search(asBob, &milvuspb.SearchRequest{CollectionName: "books", Nq: 1, DslType: commonpb.DslType_BoolExprV1})
			bobCalls.Add(1)
			if err != nil || r.GetStatus().GetCode() == 8 {
				bobRefused.Add(1)
			}
		}
	}()
	wg.Wait()
	elapsed := time.Since(start)
	<-bobDone
	if aliceErrs.Load() > 0 {
		t.Fatalf("%d of alice's searches failed", aliceErrs.Load())
	}
	// The backend's view of alice over the steady part (after the first
	// second, to the end): 50/s within 10%.
	aliceStarts := func(from, to time.Time) int {
		n := 0
		for _, c := range fake.Recorder().CallsTo("/milvus.proto.milvus.MilvusService/Search") {
			if strings.Join(c.Metadata.Get("x-authproxy-user"), "") == "alice" && !c.Start.Before(from) && c.Start.Before(to) {
				n++
			}
		}
		return n
	}
	from, to := start.Add(time.Second), start.Add(elapsed)
	rate := float64(aliceStarts(from, to)) / to.Sub(from).Seconds()
	refusedAlice := metricValue(t, p, `authproxy_ratelimit_total{limit="alice-search",result="refused"}`)
	t.Logf("alice: %d searches in %.2f s, backend rate %.1f/s after the first second (limit 50), %v refusals retried; bob: %d searches in 3 s, %d refused",
		workers*perWorker, elapsed.Seconds(), rate, refusedAlice, bobCalls.Load(), bobRefused.Load())
	if math.Abs(rate-50)/50 > 0.10 {
		t.Errorf("alice reached the backend at %.1f/s, want 50/s within 10%%", rate)
	}
	if refusedAlice == 0 {
		t.Error("no refusal counted: alice was never limited")
	}
	if bobRefused.Load() > 0 || bobCalls.Load() < 50 {
		t.Errorf("bob: %d of %d searches refused (want none, and at least 50 calls)", bobRefused.Load(), bobCalls.Load())
	}
	if !p.WaitLog("no longer limited", 5*time.Second) {
		t.Errorf("no audit line when alice stopped being limited:\n%s", p.Logs())
	}
	if n := strings.Count(p.Logs(), "rate limit: tenant limited"); n < 1 || n > 3 {
		t.Errorf("%d 'tenant limited' audit lines for one burst of refusals (want one, or a few if the workers paused)", n)
	}
}

// A refused call gets Milvus's own answer on gRPC: the method's response
// with status code 8 / RateLimit and gRPC status OK, and nothing reaches
// the backend; REST gets HTTP 429, Milvus's envelope (1807) and a
// Retry-After.
func TestRateLimitRefusalIsMilvusOwn(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	fake, p := limitedPair(t, ctx, `  limits:
    - {name: alice-all, user: alice, rate: callRate, max: 0.2, burst: 1}
`)
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	asAlice := withToken(ctx, "alice:alice-pw-1")
	if _, err := m.Query(asAlice, &milvuspb.QueryRequest{CollectionName: "books", Expr: "id in [1, 2]"}); err != nil {
		t.Fatal(err)
	}
	before := len(fake.Recorder().Calls())
	st := func(what string, s *commonpb.Status, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: gRPC error %v, want a reply with status OK", what, err)
		}
		if s.GetCode() != 8 || s.GetErrorCode() != commonpb.ErrorCode_RateLimit || !s.GetRetriable() || !strings.HasPrefix(s.GetReason(), rateLimitMessage+"0.2]") {
			t.Fatalf("%s: status %v", what, s)
		}
	}
	q, err := m.Query(asAlice, &milvuspb.QueryRequest{CollectionName: "books", Expr: "id in [1, 2]"})
	st("query", q.GetStatus(), err)
	s, err := m.Search(asAlice, &milvuspb.SearchRequest{CollectionName: "books", Nq: 1})
	st("search", s.GetStatus(), err)
	ins, err := m.Insert(asAlice, &milvuspb.InsertRequest{CollectionName: "books"})
	st("insert", ins.GetStatus(), err)
	rc, err := m.ReleaseCollection(asAlice, &milvuspb.ReleaseCollectionRequest{CollectionName: "books"})
	st("release collection (a Status reply)", rc, err)
	if n := len(fake.Recorder().Calls()) - before; n != 0 {
		t.Fatalf("the backend saw %d refused calls", n)
	}
	r := curl(t, "http://"+p.Addr+"/v2/vectordb/entities/query", "Bearer alice:alice-pw-1", `{"collectionName":"books","filter":"id in [1, 2]"}`, "--include")
	code, _, msg := envelope(t, curlResult{status: r.status, body: r.body[strings.Index(r.body, "{"):]})
	if r.status != 429 || code != 1807 || msg != "request is rejected by limiter, error: "+rateLimitMessage+"0.2]" || !strings.Contains(r.body, "Retry-After: ") {
		t.Fatalf("REST: HTTP %d code %d message %q\n%s", r.status, code, msg, r.body)
	}
	if n := len(fake.Recorder().Calls()) - before; n != 0 {
		t.Fatalf("the backend saw %d refused calls", n)
	}
	// bob, not limited, goes through.
	if _, err := m.Query(withToken(ctx, "bob:bob-pw-1"), &milvuspb.QueryRequest{CollectionName: "books", Expr: "id in [1, 2]"}); err != nil {
		t.Fatal(err)
	}
}

// A DML limit in MB/s (dml.insertRate, milvus.yaml's unit), measured at
// the backend over 10 s of inserts from four clients retrying as
// pymilvus does: within 10% of the limit.
func TestRateLimitInsertMegabytesOver10s(t *testing.T) {
	ctx := testCtx(t, 120*time.Second)
	fake, p := limitedPair(t, ctx, `  limits:
    - {name: writers, role: reader, rate: dml.insertRate, max: 1, burst: 1}
`)
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	asAlice := withToken(ctx, "alice:alice-pw-1")
	// One insert: 1,024 rows of 64 floats, about 266 KB on the wire.
	ids, vecs := vectors(1024, 64)
	req := insertRequest("books", ids, vecs)
	size := protoSize(req)

	const window = 10 * time.Second
	start := time.Now()
	stop := start.Add(window + 2*time.Second)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 4 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				// pymilvus retry_on_rpc_failure: sleep, back_off *= 3, at
				// most max_back_off (here 100 ms), on a RateLimit status.
				for backoff := 10 * time.Millisecond; ; backoff = min(3*backoff, 100*time.Millisecond) {
					r, err := m.Insert(asAlice, req)
					if err != nil {
						failed.Add(1)
						return
					}
					if r.GetStatus().GetCode() != 8 {
						break
					}
					time.Sleep(backoff)
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d inserts failed", failed.Load())
	}
	from := start.Add(2 * time.Second) // past the burst
	n := startsIn(fake, "Insert", from, from.Add(window))
	mbps := float64(n*size) / (1 << 20) / window.Seconds()
	t.Logf("%d inserts of %d bytes reached the backend in %v: %.3f MB/s (limit 1 MB/s)", n, size, window, mbps)
	if math.Abs(mbps-1) > 0.10 {
		t.Fatalf("%.3f MB/s, want 1 MB/s within 10%%", mbps)
	}
}

// A live reload that raises a limit takes effect on the next call; a bad
// limit in a reload is refused by name and the running limits stay.
func TestRateLimitLiveReload(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	_, p := limitedPair(t, ctx, `  limits:
    - {name: alice-query, user: alice, rate: dql.queryRate, max: 0.1, burst: 1}
`)
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	asAlice := withToken(ctx, "alice:alice-pw-1")
	query := func() int32 {
		r, err := m.Query(asAlice, &milvuspb.QueryRequest{CollectionName: "books", Expr: "id in [1, 2]"})
		must(t, err)
		return r.GetStatus().GetCode()
	}
	if query() != 0 || query() != 8 {
		t.Fatal("the first query should pass and the second be limited")
	}
	cfg, err := os.ReadFile(p.Config)
	must(t, err)
	bad := strings.Replace(string(cfg), "max: 0.1", "max: -5", 1)
	writeByRename(t, p.Config, []byte(bad))
	if !p.WaitLog("rateLimits.limits[0] (alice-query).max: must be a positive number", 5*time.Second) {
		t.Fatalf("a bad limit was not refused by name:\n%s", p.Logs())
	}
	if query() != 8 {
		t.Fatal("the refused reload changed the running limit")
	}
	raised := strings.Replace(string(cfg), "max: 0.1, burst: 1", "max: 1000, burst: 1000", 1)
	writeByRename(t, p.Config, []byte(raised))
	if !p.WaitLog("rate limits changed", 5*time.Second) {
		t.Fatalf("reload not applied:\n%s", p.Logs())
	}
	for i := range 20 {
		if c := query(); c != 0 {
			t.Fatalf("query %d after the raise: code %d", i, c)
		}
	}
}

// Exempt users and roles are never limited; the others are.
func TestRateLimitExemptions(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	_, p := limitedPair(t, ctx, `  exempt: {users: [root], roles: [ops]}
  limits:
    - {name: everyone, user: "*", rate: callRate, max: 0.1, burst: 2}
`)
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	passed := func(token string) int {
		n := 0
		for range 10 {
			r, err := m.Query(withToken(ctx, token), &milvuspb.QueryRequest{CollectionName: "books", Expr: "id in [1, 2]"})
			if err != nil {
				t.Fatalf("%s: %v", token, err)
			}
			if r.GetStatus().GetCode() == 0 {
				n++
			}
		}
		return n
	}
	for token, want := range map[string]int{"root:Milvus": 10, "carol:carol-pw-1": 10, "dave:dave-pw-1": 10, "alice:alice-pw-1": 2, "bob:bob-pw-1": 2} {
		if got := passed(token); got != want {
			t.Errorf("%s: %d of 10 queries passed, want %d", strings.Split(token, ":")[0], got, want)
		}
	}
}

// A bad limit in the config is refused at start, by its name and key.
func TestRateLimitBadConfigRefusedByName(t *testing.T) {
	dir := t.TempDir()
	for name, c := range map[string]struct{ limits, want string }{
		"unknown rate":  {"    - {name: search-a, user: a, rate: dql.searchrate, max: 5}\n", `rateLimits.limits[0] (search-a).rate: "dql.searchrate" is not one of`},
		"two selectors": {"    - {name: x, user: a, role: r, rate: callRate, max: 5}\n", "rateLimits.limits[0] (x): needs exactly one of user, role, database, identitySource; got 2"},
		"zero max":      {"    - {name: ok, user: a, rate: callRate, max: 1}\n    - {name: zero, user: b, rate: callRate, max: 0}\n", "rateLimits.limits[1] (zero).max: must be a positive number"},
		"same name":     {"    - {name: d, user: a, rate: callRate, max: 1}\n    - {name: d, user: b, rate: callRate, max: 1}\n", `rateLimits.limits[1] (d).name: "d" is used by another limit`},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
		yaml := fmt.Sprintf("listen: \"127.0.0.1:0\"\nadmin:\n  listen: \"\"\ncredentials:\n  file: %q\nrateLimits:\n  limits:\n%s", filepath.Join(dir, "c.yaml"), c.limits)
		must(t, os.WriteFile(path, []byte(yaml), 0o600))
		if out := refusedAtStart(t, dir, path); !strings.Contains(out, c.want) {
			t.Errorf("%s: message %q does not say %q", name, out, c.want)
		}
	}
}

// insertRequest is an Insert of ids and float vectors "vec".
func insertRequest(collection string, ids []int64, vecs [][]float32) *milvuspb.InsertRequest {
	dim := len(vecs[0])
	flat := make([]float32, 0, len(vecs)*dim)
	for _, v := range vecs {
		flat = append(flat, v...)
	}
	return &milvuspb.InsertRequest{
		CollectionName: collection,
		NumRows:        uint32(len(ids)),
		FieldsData: []*schemapb.FieldData{
			{FieldName: "id", Type: schemapb.DataType_Int64, Field: &schemapb.FieldData_Scalars{Scalars: &schemapb.ScalarField{
				Data: &schemapb.ScalarField_LongData{LongData: &schemapb.LongArray{Data: ids}}}}},
			{FieldName: "vec", Type: schemapb.DataType_FloatVector, Field: &schemapb.FieldData_Vectors{Vectors: &schemapb.VectorField{
				Dim: int64(dim), Data: &schemapb.VectorField_FloatVector{FloatVector: &schemapb.FloatArray{Data: flat}}}}},
		},
	}
}

func protoSize(m proto.Message) int { return proto.Size(m) }

// Three replicas on one etcd share a cluster-wide limit of 60 queries/s
// (each takes 20/s) while clients are spread evenly: the backend sees 60/s
// within 10%. One replica is stopped: the other two count it out within
// seconds and take 30/s each, and the backend again sees 60/s.
func TestRateLimitSharedByThreeReplicas(t *testing.T) {
	ctx := testCtx(t, 180*time.Second)
	etcd := harness.StartEtcd(t)
	fake := startFake(t)
	store := fmt.Sprintf("credentials:\n  store: etcd\n  etcd:\n    endpoints: [%q]\n    prefix: /authproxy-rl/\n", etcd.URL)
	extra := "rateLimits:\n  limits:\n    - {name: alice-query, user: alice, rate: dql.queryRate, max: 60, burst: 30}\n"
	var ps []*harness.Proxy
	for range 3 {
		ps = append(ps, harness.Start(t, harness.Options{Backend: fake.Addr(), Credentials: store, Extra: extra}))
	}
	root := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: ps[0].Addr, Username: "root", Password: "Milvus"})
	createVectors(t, ctx, root, "books", 8)
	must(t, root.CreateRole(ctx, milvusclient.NewCreateRoleOption("reader")))
	must(t, root.GrantPrivilegeV2(ctx, milvusclient.NewGrantPrivilegeV2Option("reader", "CollectionReadOnly", "books")))
	harness.Password("alice", "alice-pw-1")
	must(t, root.CreateUser(ctx, milvusclient.NewCreateUserOption("alice", "alice-pw-1")))
	must(t, root.GrantRole(ctx, milvusclient.NewGrantRoleOption("alice", "reader")))
	replicasSeen := func(want float64, of []*harness.Proxy) error {
		for i, p := range of {
			if got := metricValue(t, p, "authproxy_ratelimit_replicas"); got != want {
				return fmt.Errorf("replica %d counts %v replicas, want %v", i, got, want)
			}
		}
		return nil
	}
	within(t, 10*time.Second, "three replicas registered", func() error { return replicasSeen(3, ps) })

	// Three clients per replica, each retrying a RateLimit status as
	// pymilvus does (10 ms x 3, at most 100 ms: shorter than the burst's
	// 0.5 s, so that a waiting client never lets tokens overflow), for d;
	// the backend's rate of alice's queries over the last d - 1 s (the
	// first second spends the burst). Three, not one: on a loaded machine
	// a client's own calls slow down, and the limit, not the clients,
	// must be what the rate measures.
	var refused atomic.Int64
	measure := func(of []*harness.Proxy, d time.Duration) float64 {
		start := time.Now()
		var wg sync.WaitGroup
		for _, p := range slices.Concat(of, of, of) {
			m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
			asAlice := withToken(ctx, "alice:alice-pw-1")
			wg.Go(func() {
				for time.Since(start) < d {
					for backoff := 10 * time.Millisecond; time.Since(start) < d; backoff = min(3*backoff, 100*time.Millisecond) {
						r, err := m.Query(asAlice, &milvuspb.QueryRequest{CollectionName: "books", Expr: "id in [1]"})
						if err != nil {
							t.Errorf("query: %v", err)
							return
						}
						if r.GetStatus().GetCode() != 8 {
							break
						}
						refused.Add(1)
						time.Sleep(backoff)
					}
				}
			})
		}
		wg.Wait()
		from, to := start.Add(time.Second), start.Add(d)
		return float64(startsIn(fake, "Query", from, to)) / to.Sub(from).Seconds()
	}
	rate3 := measure(ps, 6*time.Second)
	refused3 := refused.Swap(0)
	stopped := time.Now()
	ps[2].Stop()
	took := within(t, 10*time.Second, "the stopped replica counted out", func() error { return replicasSeen(2, ps[:2]) })
	afterStop := time.Since(stopped)
	rate2 := measure(ps[:2], 6*time.Second)
	t.Logf("cluster-wide limit 60/s: %.1f/s through three replicas (%d calls refused); one stopped (SIGTERM), counted out %v after the process ended (%v after the signal); %.1f/s through two (%d refused)",
		rate3, refused3, took.Round(time.Millisecond), afterStop.Round(time.Millisecond), rate2, refused.Load())
	// Never more than the limit; and two replicas that did not take over
	// the stopped one's share would pass 40/s.
	for _, r := range []float64{rate3, rate2} {
		if r > 66 || r < 51 {
			t.Errorf("backend rate %.1f/s, want 60/s (within +10%%, -15%%)", r)
		}
	}

	// A replica that comes is counted in; one that dies without a word
	// (SIGKILL) is counted out when its lease expires (5 s).
	ps = append(ps[:2], harness.Start(t, harness.Options{Backend: fake.Addr(), Credentials: store, Extra: extra}))
	came := within(t, 10*time.Second, "a new replica counted in", func() error { return replicasSeen(3, ps) })
	ps[2].Kill()
	died := within(t, 15*time.Second, "a killed replica counted out", func() error { return replicasSeen(2, ps[:2]) })
	t.Logf("a new replica counted in within %v of its start; a killed one counted out %v after SIGKILL", came.Round(time.Millisecond), died.Round(time.Millisecond))
}
