package console

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The chart covers the last hour in 10-second steps, read from the
// process's own counters (the registry /metrics serves), not from a
// Prometheus server.
const (
	historyStep   = 10 * time.Second
	historyPoints = 360
)

// Counters read from the registry. Calls are every gRPC call the proxy
// answered or forwarded; refusals are failed authentications and denied
// authorizations.
const (
	metricCalls     = "authproxy_grpc_calls_total"
	metricAuth      = "authproxy_auth_total"
	metricDecisions = "authproxy_authz_decisions_total"
)

// Totals are the counters at one moment.
type Totals struct {
	Calls    float64
	Refusals float64
	// ByReason are the refusals by reason: authentication reasons, and
	// "denied" for authorization.
	ByReason map[string]float64
}

// readTotals sums the counters the console shows.
func readTotals(g prometheus.Gatherer) Totals {
	t := Totals{ByReason: map[string]float64{}}
	families, _ := g.Gather() // a partial answer still has the families read
	for _, f := range families {
		for _, m := range f.GetMetric() {
			v := m.GetCounter().GetValue()
			switch f.GetName() {
			case metricCalls:
				t.Calls += v
			case metricAuth:
				if label(m, "result") == "failure" {
					t.ByReason[label(m, "reason")] += v
					t.Refusals += v
				}
			case metricDecisions:
				if label(m, "result") == "denied" {
					t.ByReason["denied"] += v
					t.Refusals += v
				}
			}
		}
	}
	return t
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// Point is one step of the chart: calls and refusals per second over it.
type Point struct {
	Time     int64   `json:"t"` // Unix seconds at the step's end
	Calls    float64 `json:"calls"`
	Refusals float64 `json:"refusals"`
}

// history is a ring of the last hour's points.
type history struct {
	gatherer prometheus.Gatherer

	mu     sync.Mutex
	last   Totals
	lastAt time.Time
	points []Point
}

func newHistory(g prometheus.Gatherer) *history {
	return &history{gatherer: g, last: readTotals(g), lastAt: time.Now()}
}

// run samples every step until ctx is done.
func (h *history) run(ctx context.Context) {
	tick := time.NewTicker(historyStep)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			h.sample(now)
		}
	}
}

func (h *history) sample(now time.Time) {
	t := readTotals(h.gatherer)
	h.mu.Lock()
	defer h.mu.Unlock()
	secs := now.Sub(h.lastAt).Seconds()
	if secs <= 0 {
		return
	}
	h.points = append(h.points, Point{Time: now.Unix(), Calls: (t.Calls - h.last.Calls) / secs, Refusals: (t.Refusals - h.last.Refusals) / secs})
	if len(h.points) > historyPoints {
		h.points = h.points[len(h.points)-historyPoints:]
	}
	h.last, h.lastAt = t, now
}

// series returns the points kept, oldest first.
func (h *history) series() []Point {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Point(nil), h.points...)
}

// rateNow is calls and refusals per second since the last sample (or over
// the last step when one just ran).
func (h *history) rateNow() Point {
	t := readTotals(h.gatherer)
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	secs := now.Sub(h.lastAt).Seconds()
	if secs < 1 && len(h.points) > 0 {
		return h.points[len(h.points)-1]
	}
	if secs <= 0 {
		return Point{Time: now.Unix()}
	}
	return Point{Time: now.Unix(), Calls: (t.Calls - h.last.Calls) / secs, Refusals: (t.Refusals - h.last.Refusals) / secs}
}

// reasons sorts a by-reason map for display.
func reasons(m map[string]float64) []ReasonCount {
	out := make([]ReasonCount, 0, len(m))
	for k, v := range m {
		out = append(out, ReasonCount{Reason: k, Count: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Reason < out[j].Reason })
	return out
}

// ReasonCount is one line of "refusals by reason".
type ReasonCount struct {
	Reason string
	Count  float64
}
