package ratelimit

import (
	"testing"

	"github.com/authproxy/authproxy/config"
)

// BenchmarkDecision is the cost of a decision under the limit: a user
// with a search limit far above the load, among other limits, against
// the same call with no limit configured (the baseline). It prints the
// ratio and fails when a decision allocates or takes 100 ns or more.
//
//	go test -run '^$' -bench Decision -benchmem ./ratelimit
func BenchmarkDecision(b *testing.B) {
	call := Call{User: "alice", Source: "local", Method: search, DB: "default", Bytes: 512, NQ: 1}
	limits := []config.RateLimit{
		{Name: "alice-search", User: "alice", Rate: "dql.searchRate", Max: 1e12},
		{Name: "each-user", User: "*", Rate: "callRate", Max: 1e12},
		{Name: "bob-insert", User: "bob", Rate: "dml.insertRate", Max: 10},
		{Name: "per-db", Database: "*", Rate: "dql.callRate", Max: 1e12},
	}
	run := func(b *testing.B, lim *Limiter) float64 {
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if !lim.Admit(&call).Admitted() {
				b.Fatal("refused under the limit")
			}
		}
		return float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	}
	var base, limited float64
	b.Run("no-limit", func(b *testing.B) {
		lim := New(Options{})
		defer lim.Close()
		base = run(b, lim)
	})
	b.Run("under-limit", func(b *testing.B) {
		lim := New(Options{})
		defer lim.Close()
		lim.Set(config.RateLimits{Exempt: config.RateExempt{Users: []string{"root"}}, Limits: limits})
		limited = run(b, lim)
		if allocs := testing.AllocsPerRun(1000, func() { lim.Admit(&call) }); allocs != 0 {
			b.Fatalf("a decision under the limit allocates %v times", allocs)
		}
	})
	if base > 0 && limited > 0 {
		b.Logf("decision: %.1f ns with 4 limits (3 counting the call) against %.1f ns without limits: %.1fx, +%.1f ns", limited, base, limited/base, limited-base)
		if limited >= 100 {
			b.Errorf("a decision under the limit takes %.1f ns, the budget is 100", limited)
		}
	}
}
