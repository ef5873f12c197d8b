package integration

import (
	"testing"
	"time"

	"github.com/milvus-io/milvus/client/v2/milvusclient"

	"github.com/authproxy/authproxy/test/harness"
)

// The cost of a read under one row policy against the same read without
// one, through the real binary with the Go SDK: alice queries "docs"
// (under tenant_rows) and "plain" (the same five rows, no policy) in
// turn, so that the load of a shared machine falls on both alike. It
// reports both latencies and their ratio, policy/plain (goal: at most
// 1.05). Run: make bench-rowsecurity.
func BenchmarkRowSecurityQuery(b *testing.B) {
	_, p := startPair(b, harness.Options{})
	ctx, root, admin, asRoot := rlsSetup(b, p.Addr, 10*time.Minute)
	tenantCollection(b, ctx, root, "plain")
	must(b, root.GrantPrivilegeV2(ctx, milvusclient.NewGrantPrivilegeV2Option("tenant", "CollectionReadOnly", "plain")))
	alice := rlsUser(b, ctx, p.Addr, root, admin, asRoot, "alice", "Alice-pw-1", "acme")

	read := func(collection, filter string) time.Duration {
		start := time.Now()
		if _, err := alice.Query(ctx, milvusclient.NewQueryOption(collection).WithFilter(filter).WithOutputFields("id")); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	// alice's filter on plain is the one the proxy sends for her on docs:
	// the backend's work is the same, the difference is the proxy's.
	const asSent = `((tenant_id == "acme")) and (id > 0)`
	for range 50 { // warm up connections and caches
		read("docs", "id > 0")
		read("plain", asSent)
	}
	var withPolicy, without time.Duration
	for b.Loop() {
		withPolicy += read("docs", "id > 0")
		without += read("plain", asSent)
	}
	b.ReportMetric(float64(withPolicy.Nanoseconds())/float64(b.N), "ns/policy-read")
	b.ReportMetric(float64(without.Nanoseconds())/float64(b.N), "ns/plain-read")
	b.ReportMetric(float64(withPolicy)/float64(without), "policy/plain")
}
