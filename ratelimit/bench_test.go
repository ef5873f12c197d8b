package ratelimit

import (
	"testing"

	"github.com/authproxy/authproxy/config"
)

// BenchmarkDecision is the cost of a decision under the limit against the
// same call with no limit configured (the baseline), in one run: with one
// limit counting the call (a user's search limit), and with four limits
// of which three count it. It prints the ratios and fails when a decision
// allocates, or when the one-limit decision adds 100 ns or more.
//
//	go test -run '^$' -bench Decision -benchmem ./ratelimit
func BenchmarkDecision(b *testing.B) {
	call := Call{User: "alice", Source: "local", Method: search, DB: "default", Bytes: 512, NQ: 1}
	one := []config.RateLimit{{Name: "alice-search", User: "alice", Rate: "dql.searchRate", Max: 1e12}}
	four := append(one,
		config.RateLimit{Name: "each-user", User: "*", Rate: "callRate", Max: 1e12},
		config.RateLimit{Name: "bob-insert", User: "bob", Rate: "dml.insertRate", Max: 10},
		config.RateLimit{Name: "per-db", Database: "*", Rate: "dql.callRate", Max: 1e12},
	)
	ns := map[string]float64{}
	for _, c := range []struct {
		name   string
		limits []config.RateLimit
	}{{"no-limit", nil}, {"one-limit", one}, {"four-limits", four}} {
		b.Run(c.name, func(b *testing.B) {
			lim := New(Options{})
			defer lim.Close()
			lim.Set(config.RateLimits{Exempt: config.RateExempt{Users: []string{"root"}}, Limits: c.limits})
			// A tenant's first calls take a lock until the sweeper
			// settles its buckets (within a second); measured is the
			// steady state.
			lim.Admit(&call)
			lim.sweepOnce()
			if allocs := testing.AllocsPerRun(1000, func() { lim.Admit(&call) }); allocs != 0 {
				b.Fatalf("a decision under the limit allocates %v times", allocs)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if !lim.Admit(&call).Admitted() {
					b.Fatal("refused under the limit")
				}
			}
			ns[c.name] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		})
	}
	base := ns["no-limit"]
	if base == 0 || ns["one-limit"] == 0 || ns["four-limits"] == 0 {
		return // a -bench pattern that ran only some
	}
	b.Logf("decision: %.1f ns without limits; one limit %.1f ns (%.1fx, +%.1f ns); four limits, three counting the call, %.1f ns (%.1fx, +%.1f ns)",
		base, ns["one-limit"], ns["one-limit"]/base, ns["one-limit"]-base, ns["four-limits"], ns["four-limits"]/base, ns["four-limits"]-base)
	if added := ns["one-limit"] - base; added >= 100 {
		b.Errorf("a limit adds %.1f ns to the decision, the budget is 100", added)
	}
}
