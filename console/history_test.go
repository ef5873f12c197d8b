package console

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The chart's points are rates between two samples of the process's own
// counters: calls from authproxy_grpc_calls_total, refusals from failed
// authentications and denied authorizations.
func TestHistoryRates(t *testing.T) {
	reg := prometheus.NewRegistry()
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricCalls}, []string{"method", "code"})
	authn := prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricAuth}, []string{"result", "reason"})
	authz := prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricDecisions}, []string{"result", "privilege"})
	reg.MustRegister(calls, authn, authz)
	h := newHistory(reg)
	start := h.lastAt
	calls.WithLabelValues("/m", "OK").Add(100)
	authn.WithLabelValues("success", "password").Add(50)
	authn.WithLabelValues("failure", "bad_password").Add(15)
	authz.WithLabelValues("allowed", "Search").Add(70)
	authz.WithLabelValues("denied", "Search").Add(5)
	h.sample(start.Add(10 * time.Second))
	pts := h.series()
	if len(pts) != 1 || pts[0].Calls != 10 || pts[0].Refusals != 2 {
		t.Fatalf("points %+v, want 10 calls/s and 2 refusals/s", pts)
	}
	for i := range historyPoints + 5 {
		h.sample(start.Add(time.Duration(20+10*i) * time.Second))
	}
	if n := len(h.series()); n != historyPoints {
		t.Fatalf("%d points kept, want the last hour's %d", n, historyPoints)
	}
	by := readTotals(reg).ByReason
	if by["bad_password"] != 15 || by["denied"] != 5 || len(by) != 2 {
		t.Fatalf("refusals by reason %v", by)
	}
}
