package ratelimit

import (
	"bytes"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	"github.com/authproxy/authproxy/config"
)

const (
	search = "/" + Service + "/Search"
	insert = "/" + Service + "/Insert"
	create = "/" + Service + "/CreateCollection"
	query  = "/" + Service + "/Query"
)

// testLimiter is a Limiter on a clock the test moves.
type testLimiter struct {
	*Limiter
	now  atomic.Int64
	logs *bytes.Buffer
	reg  *prometheus.Registry
}

func newTest(t *testing.T, limits ...config.RateLimit) *testLimiter {
	t.Helper()
	tl := &testLimiter{logs: &bytes.Buffer{}, reg: prometheus.NewRegistry()}
	tl.Limiter = New(Options{Registry: tl.reg, Logger: slog.New(slog.NewTextHandler(tl.logs, nil)), clock: tl.now.Load})
	t.Cleanup(tl.Close)
	cfg := config.RateLimits{Limits: limits}
	validate(t, cfg)
	tl.Set(cfg)
	return tl
}

func validate(t *testing.T, rl config.RateLimits) {
	t.Helper()
	c := config.Default()
	c.RateLimits = rl
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func (tl *testLimiter) advance(d time.Duration) { tl.now.Add(int64(d)) }

// admitted counts how many of n calls are admitted at the current time.
func (tl *testLimiter) admitted(c Call, n int) int {
	ok := 0
	for range n {
		if tl.Admit(&c).Admitted() {
			ok++
		}
	}
	return ok
}

func TestUserLimitLeavesOthersAlone(t *testing.T) {
	tl := newTest(t, config.RateLimit{Name: "alice-search", User: "alice", Rate: "dql.searchRate", Max: 50})
	alice := Call{User: "alice", Method: search, NQ: 1}
	if got := tl.admitted(alice, 80); got != 50 {
		t.Fatalf("a full bucket of 50 admitted %d of 80", got)
	}
	if got := tl.admitted(Call{User: "bob", Method: search, NQ: 1}, 500); got != 500 {
		t.Fatalf("bob, not limited, got %d of 500", got)
	}
	if got := tl.admitted(Call{User: "alice", Method: insert}, 10); got != 10 {
		t.Fatalf("alice's inserts are not searches: %d of 10", got)
	}
	tl.advance(200 * time.Millisecond)
	if got := tl.admitted(alice, 50); got != 10 {
		t.Fatalf("200 ms at 50/s admitted %d, want 10", got)
	}
	v := tl.Admit(&alice)
	if v.Admitted() || v.Limit != "alice-search" || v.Rate != 50 || v.RetryAfter <= 0 || v.RetryAfter > 40*time.Millisecond {
		t.Fatalf("verdict %+v", v)
	}
	// nq counts: one search of 10 vectors spends 10.
	tl.advance(time.Second)
	if got := tl.admitted(Call{User: "alice", Method: search, NQ: 10}, 10); got != 5 {
		t.Fatalf("searches of nq 10 in a bucket of 50: %d admitted, want 5", got)
	}
}

func TestRoleSharedOrEach(t *testing.T) {
	shared := newTest(t, config.RateLimit{Name: "analysts", Role: "analyst", Rate: "dql.callRate", Max: 10})
	a := Call{User: "a", Roles: []string{"analyst"}, Method: query}
	b := Call{User: "b", Roles: []string{"public", "analyst"}, Method: search}
	if got := shared.admitted(a, 6) + shared.admitted(b, 6); got != 10 {
		t.Fatalf("holders sharing one bucket of 10 got %d", got)
	}
	if !shared.NeedsRoles() {
		t.Fatal("a role limit must ask for roles")
	}
	each := newTest(t, config.RateLimit{Name: "analysts", Role: "analyst", Each: true, Rate: "dql.callRate", Max: 10})
	if got := each.admitted(a, 12) + each.admitted(b, 12); got != 20 {
		t.Fatalf("holders with a bucket each got %d, want 20", got)
	}
	if got := each.admitted(Call{User: "c", Method: query}, 20); got != 20 {
		t.Fatalf("a user without the role is limited: %d", got)
	}
}

func TestDatabaseAndSource(t *testing.T) {
	tl := newTest(t,
		config.RateLimit{Name: "per-db", Database: "*", Rate: "ddl.callRate", Max: 2},
		config.RateLimit{Name: "ldap", IdentitySource: "ldap", Rate: "callRate", Max: 3},
	)
	if got := tl.admitted(Call{User: "u", Method: create, DB: "one"}, 5) + tl.admitted(Call{User: "v", Method: create, DB: "two"}, 5); got != 4 {
		t.Fatalf("two databases with 2 each: %d", got)
	}
	if got := tl.admitted(Call{User: "u", Method: query, DB: "one"}, 5); got != 5 {
		t.Fatalf("queries are not DDL: %d", got)
	}
	if got := tl.admitted(Call{User: "x", Source: "ldap", Method: "/grpc.health.v1.Health/Check"}, 5); got != 3 {
		t.Fatalf("callRate counts every method, other services too: %d", got)
	}
	if got := tl.admitted(Call{User: "y", Source: "", Method: query}, 5); got != 5 {
		t.Fatalf("a local user is not ldap: %d", got)
	}
}

func TestInsertMegabytes(t *testing.T) {
	tl := newTest(t, config.RateLimit{Name: "dml", User: "*", Rate: "dml.insertRate", Max: 2, Burst: 1})
	c := Call{User: "w", Method: insert, Bytes: mb / 4}
	if got := tl.admitted(c, 10); got != 4 {
		t.Fatalf("1 MB of burst admitted %d inserts of 0.25 MB", got)
	}
	// A call larger than the burst passes a full bucket and leaves a
	// debt: 4 MB from a full bucket of 1 MB at 2 MB/s is -3 MB, -1 MB a
	// second later, 0.625 s from the 0.25 MB of the next call.
	tl.advance(time.Second)
	if !tl.Admit(&Call{User: "w", Method: insert, Bytes: 4 * mb}).Admitted() {
		t.Fatal("a large insert from a bucket with tokens refused")
	}
	tl.advance(time.Second)
	if v := tl.Admit(&c); v.Admitted() || v.RetryAfter < 620*time.Millisecond || v.RetryAfter > 630*time.Millisecond {
		t.Fatalf("in debt: %+v", v)
	}
	tl.advance(630 * time.Millisecond)
	if !tl.Admit(&c).Admitted() {
		t.Fatal("the debt is paid: refused")
	}
}

func TestExemptions(t *testing.T) {
	tl := newTest(t, config.RateLimit{Name: "all", User: "*", Rate: "callRate", Max: 1})
	cfg := config.RateLimits{Exempt: config.RateExempt{Users: []string{"root"}, Roles: []string{"admin"}},
		Limits: []config.RateLimit{{Name: "all", User: "*", Rate: "callRate", Max: 1}}}
	tl.Set(cfg)
	if got := tl.admitted(Call{User: "root", Method: query}, 100); got != 100 {
		t.Fatalf("root exempt: %d", got)
	}
	if got := tl.admitted(Call{User: "ops", Roles: []string{"admin"}, Method: query}, 100); got != 100 {
		t.Fatalf("admin role exempt: %d", got)
	}
	if got := tl.admitted(Call{User: "dev", Roles: []string{"public"}, Method: query}, 100); got != 1 {
		t.Fatalf("not exempt: %d", got)
	}
}

func TestReplicasShareTheLimit(t *testing.T) {
	tl := newTest(t, config.RateLimit{Name: "q", User: "*", Rate: "dql.queryRate", Max: 30})
	tl.SetReplicas(3)
	c := Call{User: "u", Method: query}
	if got := tl.admitted(c, 30); got != 10 {
		t.Fatalf("a third of 30: %d", got)
	}
	tl.advance(time.Second)
	tl.SetReplicas(2)
	if got := tl.admitted(c, 30); got != 15 {
		t.Fatalf("after one replica left, half of 30: %d", got)
	}
}

func TestReloadRaisesAtOnceAndKeepsUnchanged(t *testing.T) {
	low := config.RateLimit{Name: "q", User: "u", Rate: "dql.queryRate", Max: 2}
	other := config.RateLimit{Name: "o", User: "v", Rate: "dql.queryRate", Max: 2}
	tl := newTest(t, low, other)
	tl.admitted(Call{User: "u", Method: query}, 5)
	tl.admitted(Call{User: "v", Method: query}, 5)
	high := low
	high.Max = 100
	tl.Set(config.RateLimits{Limits: []config.RateLimit{high, other}})
	if got := tl.admitted(Call{User: "u", Method: query}, 100); got != 100 {
		t.Fatalf("raised to 100: %d on the next calls", got)
	}
	if got := tl.admitted(Call{User: "v", Method: query}, 5); got != 0 {
		t.Fatalf("an unchanged limit kept its spent bucket: %d admitted", got)
	}
	tl.Set(config.RateLimits{})
	if got := tl.admitted(Call{User: "v", Method: query}, 5); got != 5 || tl.Configured() {
		t.Fatalf("limits removed: %d", got)
	}
}

func TestRefusedCallGivesBackWhatOthersTook(t *testing.T) {
	tl := newTest(t,
		config.RateLimit{Name: "wide", User: "*", Rate: "callRate", Max: 100},
		config.RateLimit{Name: "narrow", User: "u", Rate: "dql.queryRate", Max: 1},
	)
	tl.admitted(Call{User: "u", Method: query}, 50)
	if got := tl.admitted(Call{User: "u", Method: insert}, 200); got != 99 {
		t.Fatalf("refused queries spent the wide limit: %d inserts admitted, want 99", got)
	}
}

func TestAuditAndMetrics(t *testing.T) {
	tl := newTest(t, config.RateLimit{Name: "q", User: "u", Rate: "dql.queryRate", Max: 1})
	c := Call{User: "u", Method: query}
	tl.admitted(c, 10)
	tl.advance(500 * time.Millisecond) // half a token: not enough for a call
	tl.admitted(c, 10)
	if n := strings.Count(tl.logs.String(), "tenant limited"); n != 1 {
		t.Fatalf("%d 'limited' lines for one episode:\n%s", n, tl.logs)
	}
	tl.sweepOnce()
	if strings.Contains(tl.logs.String(), "no longer limited") {
		t.Fatal("logged as no longer limited while refused 0 s ago")
	}
	tl.advance(3 * time.Second)
	tl.sweepOnce()
	if n := strings.Count(tl.logs.String(), "no longer limited"); n != 1 {
		t.Fatalf("%d 'no longer' lines:\n%s", n, tl.logs)
	}
	if got := testutil.ToFloat64(tl.total.WithLabelValues("refused", "q")); got != 19 {
		t.Fatalf("refused = %v, want 19", got)
	}
	if got := testutil.ToFloat64(tl.total.WithLabelValues("admitted", "q")); got != 1 {
		t.Fatalf("admitted = %v, want 1", got)
	}
	if err := testutil.GatherAndCompare(tl.reg, strings.NewReader(`
# HELP authproxy_ratelimit_fill Share of its burst the most spent tenant of each limit has used (0 idle, 1 empty, above 1 in debt).
# TYPE authproxy_ratelimit_fill gauge
authproxy_ratelimit_fill{limit="q"} 0
`), "authproxy_ratelimit_fill"); err != nil {
		t.Fatal(err)
	}
}

func TestBucketsAreBounded(t *testing.T) {
	tl := newTest(t, config.RateLimit{Name: "db", Database: "*", Rate: "callRate", Max: 1})
	for i := range maxBuckets + 50 {
		tl.Admit(&Call{User: "u", Method: query, DB: "db" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)})
	}
	lim := tl.cur.Load().limits[0]
	if n := len(*lim.buckets.Load()) + len(lim.recent); n > maxBuckets+1 {
		t.Fatalf("%d buckets for %d databases", n, maxBuckets+50)
	}
	tl.sweepOnce()
	if n := len(*lim.buckets.Load()); n != maxBuckets+1 {
		t.Fatalf("%d settled buckets after a sweep, want %d (the overflow's included)", n, maxBuckets+1)
	}
	tl.advance(2 * idleAfter)
	tl.sweepOnce()
	if len(*lim.buckets.Load()) != 0 {
		t.Fatalf("%d idle buckets kept", len(*lim.buckets.Load()))
	}
}

func TestRefusalIsMilvusOwn(t *testing.T) {
	v := Verdict{Limit: "x", Rate: 50, RetryAfter: 1500 * time.Millisecond}
	const want = "request is rejected by grpc RateLimiter middleware, please retry later: rate limit exceeded[rate=50]"
	check := func(st *commonpb.Status) {
		t.Helper()
		if st.GetCode() != 8 || st.GetErrorCode() != commonpb.ErrorCode_RateLimit || st.GetReason() != want || !st.GetRetriable() {
			t.Fatalf("status %v", st)
		}
	}
	for method, resp := range map[string]interface {
		proto.Message
		GetStatus() *commonpb.Status
	}{search: &milvuspb.SearchResults{}, insert: &milvuspb.MutationResult{}, query: &milvuspb.QueryResults{}} {
		b, ok := (&Refusal{Verdict: v, Method: method}).Reply()
		if !ok {
			t.Fatalf("%s: no reply", method)
		}
		if err := proto.Unmarshal(b, resp); err != nil {
			t.Fatal(err)
		}
		check(resp.GetStatus())
	}
	b, ok := (&Refusal{Verdict: v, Method: create}).Reply()
	st := &commonpb.Status{}
	if !ok || proto.Unmarshal(b, st) != nil {
		t.Fatal("CreateCollection's reply is a Status")
	}
	check(st)
	if _, ok := (&Refusal{Verdict: v, Method: "/grpc.health.v1.Health/Check"}).Reply(); ok {
		t.Fatal("a reply for a method without a Milvus status")
	}
	if v.RetryAfterSeconds() != "2" || v.RESTMessage() != "request is rejected by limiter, error: "+want {
		t.Fatalf("REST: %s %s", v.RetryAfterSeconds(), v.RESTMessage())
	}
}

func TestNQReadAsAParserReadsIt(t *testing.T) {
	b, _ := proto.Marshal(&milvuspb.SearchRequest{CollectionName: "c", Nq: 3})
	b2, _ := proto.Marshal(&milvuspb.SearchRequest{Nq: 7})
	if nq, ok := NQ(search, [][]byte{append(b, b2...)}); !ok || nq != 7 {
		t.Fatalf("last occurrence wins: %d %v", nq, ok)
	}
	if nq, ok := NQ(search, [][]byte{b[:3], b[3:]}); !ok || nq != 3 {
		t.Fatalf("split buffers: %d %v", nq, ok)
	}
	if _, ok := NQ(search, [][]byte{b[:len(b)-1]}); ok {
		t.Fatal("a truncated message read")
	}
	if nq, ok := NQ(query, [][]byte{b}); !ok || nq != 0 {
		t.Fatal("Query has no nq")
	}
	if f := ReadsFields(search); len(f) != 1 || f[0] != 12 {
		t.Fatalf("Search's nq field: %v", f)
	}
}
