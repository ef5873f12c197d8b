package main

import (
	"fmt"
	"html"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// results is everything a run measured; results.json is this, raw.
type results struct {
	Started, Finished time.Time
	LoadAvgStart      string
	LoadAvgEnd        string
	Rounds            int
	Conc              int
	InsertBytes       int
	LatCalls          int
	MemConns          int
	StreamWindow      int
	Targets           []string
	Machine           [][2]string
	Notes             []string
	Memory            map[string]*memResult
	// Samples[workload][target] is one sample per round.
	Samples map[string]map[string][]*sample
}

// Names of the targets the comparisons refer to (bench/run.sh uses these).
const (
	tDirect = "direct"
	tNoAuth = "ap-noauth"
	tAuth   = "ap-auth"
	// tRBAC is ap-auth's process called as a user whose grants are checked.
	tRBAC = "ap-rbac"
	// tEtcd is authproxy with its credential store on etcd.
	tEtcd    = "ap-etcd"
	tTLS     = "ap-tls"
	tNginx   = "nginx-h2c"
	tNginxTL = "nginx-tls"
	// tFrames and tFramesTLS are ap-auth and ap-tls on the frame relay.
	tFrames    = "ap-frames"
	tFramesTLS = "ap-frames-tls"
	// tFloor is `loadgen l4`: a TCP relay that parses nothing and splices
	// the bytes in the kernel, the least work any proxy can do.
	tFloor = "l4-splice"
	// tTwin and tTwinTLS are a second nginx, configured as the first: the
	// frame relay's bounds applied to them give what a proxy exactly level
	// with nginx scores against those bounds in the same run.
	tTwin    = "nginx-twin"
	tTwinTLS = "nginx-twin-tls"
)

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// values is f of each round's sample of workload w on target t.
func (r *results) values(w, t string, f func(*sample) float64) []float64 {
	var out []float64
	for _, s := range r.Samples[w][t] {
		out = append(out, f(s))
	}
	return out
}

func (r *results) med(w, t string, f func(*sample) float64) float64 { return median(r.values(w, t, f)) }

// spread is (max-min)/median over rounds, in percent.
func (r *results) spread(w, t string, f func(*sample) float64) float64 {
	v := r.values(w, t, f)
	if len(v) < 2 {
		return math.NaN()
	}
	sort.Float64s(v)
	return 100 * (v[len(v)-1] - v[0]) / median(v)
}

// roundRatios is f(a)/f(b) round by round, each ratio taken from samples
// of the same round (measured seconds apart).
func (r *results) roundRatios(w, a, b string, f func(*sample) float64) []float64 {
	as, bs := r.Samples[w][a], r.Samples[w][b]
	var out []float64
	for i := range min(len(as), len(bs)) {
		out = append(out, f(as[i])/f(bs[i]))
	}
	return out
}

// pairRatio is the median over rounds of f(a)/f(b) (roundRatios).
func (r *results) pairRatio(w, a, b string, f func(*sample) float64) float64 {
	return median(r.roundRatios(w, a, b, f))
}

// addedRatios is (f(a)-f(d))/(f(b)-f(d)) round by round: the latency a
// adds to direct relative to what b adds. A round where b added nothing
// (direct's figure as high as b's: a p99 of direct's can be) has no
// ratio, and a negative one would turn the comparison round; such rounds
// are left out.
func (r *results) addedRatios(w, a, b string, f func(*sample) float64) []float64 {
	as, bs, ds := r.Samples[w][a], r.Samples[w][b], r.Samples[w][tDirect]
	var out []float64
	for i := range min(len(as), len(bs), len(ds)) {
		if ref := f(bs[i]) - f(ds[i]); ref > 0 {
			out = append(out, (f(as[i])-f(ds[i]))/ref)
		}
	}
	return out
}

// medianOrNaN is the median of v, NaN (not judged) when v is empty: an
// added ratio with no round left (addedRatios).
func medianOrNaN(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	return median(v)
}

// atMost and atLeast are a goal's test of a ratio.
func atMost(bound float64) func(float64) bool  { return func(x float64) bool { return x <= bound } }
func atLeast(bound float64) func(float64) bool { return func(x float64) bool { return x >= bound } }

func (r *results) has(t string) bool {
	for _, x := range r.Targets {
		if x == t {
			return true
		}
	}
	return false
}

var (
	p50  = func(s *sample) float64 { return s.P50 }
	p99  = func(s *sample) float64 { return s.P99 }
	rate = func(s *sample) float64 { return s.Rate }
)

func perCall(f func(cpuUse) float64) func(*sample) float64 {
	return func(s *sample) float64 { return f(s.CPU) * 1e6 / float64(s.Calls) }
}

// cpuPerMB is the target's CPU milliseconds per MB inserted.
func cpuPerMB(s *sample) float64 { return s.CPU.Target * 1e3 / (s.Rate * s.Elapsed) }

// perMB is a perf event's count per MB inserted (NaN where perf did not
// count it).
func perMB(event string) func(*sample) float64 {
	return func(s *sample) float64 {
		v, ok := s.Perf[event]
		if !ok {
			return math.NaN()
		}
		return v / (s.Rate * s.Elapsed)
	}
}

// counted says whether perf counted event in any insert sample.
func (r *results) counted(event string) bool {
	for _, byTarget := range r.Samples["insert_4mib"] {
		for _, s := range byTarget {
			if _, ok := s.Perf[event]; ok {
				return true
			}
		}
	}
	return false
}

func fmtNum(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "–"
	case math.Abs(v) >= 1000:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

type row struct {
	label string
	w     string
	f     func(*sample) float64
}

func (r *results) markdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# authproxy benchmark results\n\n")
	p("Run %s, %s, %d rounds (every workload on every target per round, target order rotated each round). "+
		"Figures are medians over the rounds; ratios in the comparison table are medians of per-round ratios.\n\n",
		r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Finished.Sub(r.Started).Round(time.Second), r.Rounds)
	p("| machine | |\n| --- | --- |\n")
	for _, m := range r.Machine {
		p("| %s | %s |\n", m[0], m[1])
	}
	p("| load average at start / end | %s / %s |\n", r.LoadAvgStart, r.LoadAvgEnd)
	p("\n")

	rows := []row{
		{"GetVersion c=1 p50 (µs)", "getversion_c1", p50},
		{"GetVersion c=1 p99 (µs)", "getversion_c1", p99},
		{"Search nq=1 c=1 p50 (µs)", "search_c1", p50},
		{"Search nq=1 c=1 p99 (µs)", "search_c1", p99},
		{fmt.Sprintf("GetVersion c=%d, 1 conn (calls/s)", r.Conc), "getversion_c32", rate},
		{fmt.Sprintf("Insert %.1f MiB c=1 (MB/s)", float64(r.InsertBytes)/(1<<20)), "insert_4mib", rate},
		{fmt.Sprintf("FullDuplex stream, %d in flight (msgs/s)", r.StreamWindow), "fullduplex", rate},
		{"target CPU per call at c=32 (µs)", "getversion_c32", perCall(func(c cpuUse) float64 { return c.Target })},
		{"backend CPU per call at c=32 (µs)", "getversion_c32", perCall(func(c cpuUse) float64 { return c.Backend })},
		{"loadgen CPU per call at c=32 (µs)", "getversion_c32", perCall(func(c cpuUse) float64 { return c.Loadgen })},
		{"target CPU per MB inserted (ms)", "insert_4mib", cpuPerMB},
		{"target CPU in the kernel per MB inserted (ms)", "insert_4mib", func(s *sample) float64 { return s.CPU.TargetSys * 1e3 / (s.Rate * s.Elapsed) }},
	}
	if r.counted("task-clock") {
		rows = append(rows,
			row{"target task-clock per MB inserted (ms, perf)", "insert_4mib", perMB("task-clock")},
			row{"target system calls per MB inserted (perf)", "insert_4mib", perMB("raw_syscalls:sys_enter")},
			row{"target context switches per MB inserted (perf)", "insert_4mib", perMB("context-switches")})
	}
	if r.counted("instructions") {
		rows = append(rows, row{"target instructions per MB inserted (millions, perf)", "insert_4mib",
			func(s *sample) float64 { return perMB("instructions")(s) / 1e6 }})
	}
	header := func(first string) {
		p("| %s |", first)
		for _, t := range r.Targets {
			p(" %s |", t)
		}
		p("\n| --- |")
		for range r.Targets {
			p(" ---: |")
		}
		p("\n")
	}
	p("## Results (median of rounds)\n\n")
	header("metric")
	for _, rw := range rows {
		p("| %s |", rw.label)
		for _, t := range r.Targets {
			v := r.med(rw.w, t, rw.f)
			if strings.HasPrefix(rw.label, "target ") && t == tDirect {
				v = math.NaN()
			}
			p(" %s |", fmtNum(v))
		}
		p("\n")
	}
	mem := []struct {
		label string
		f     func(*memResult) int64
	}{
		{"RSS at start, before any call (MiB)", func(m *memResult) int64 { return m.StartKiB }},
		{"RSS idle after warm-up (MiB)", func(m *memResult) int64 { return m.IdleKiB }},
		{fmt.Sprintf("RSS with %d connections (MiB)", r.MemConns), func(m *memResult) int64 { return m.ConnsKiB }},
		{"RSS 1 s after closing them (MiB)", func(m *memResult) int64 { return m.AfterKiB }},
	}
	for _, m := range mem {
		p("| %s |", m.label)
		for _, t := range r.Targets {
			if mr, ok := r.Memory[t]; ok && m.f(mr) > 0 {
				p(" %.1f |", float64(m.f(mr))/1024)
			} else {
				p(" – |")
			}
		}
		p("\n")
	}

	if r.has(tDirect) {
		p("\n## Relative to direct (median of rounds; latency: added µs over direct)\n\n")
		header("metric")
		rel := []struct {
			label string
			w     string
			f     func(*sample) float64
			added bool
		}{
			{"GetVersion c=1 p50 added (µs)", "getversion_c1", p50, true},
			{"GetVersion c=1 p99 added (µs)", "getversion_c1", p99, true},
			{"Search c=1 p50 added (µs)", "search_c1", p50, true},
			{"GetVersion c=32 calls/s ÷ direct", "getversion_c32", rate, false},
			{"Insert MB/s ÷ direct", "insert_4mib", rate, false},
			{"FullDuplex msgs/s ÷ direct", "fullduplex", rate, false},
		}
		for _, x := range rel {
			p("| %s |", x.label)
			for _, t := range r.Targets {
				var v float64
				if x.added {
					v = r.med(x.w, t, x.f) - r.med(x.w, tDirect, x.f)
				} else {
					v = r.pairRatio(x.w, t, tDirect, x.f)
				}
				p(" %s |", fmtNum(v))
			}
			p("\n")
		}
	}

	p("\n## Goals (authproxy against nginx, same run)\n\n")
	p("A goal is judged on the median of its per-round ratios; beside it, the lowest and highest of them and in how many rounds the goal held, " +
		"which tell a goal missed by noise from one missed in every round.\n\n")
	p("| goal | authproxy | nginx / reference | ratio (median of per-round) | lowest–highest | met | rounds met |\n| --- | ---: | ---: | ---: | :---: | :---: | :---: |\n")
	goal := func(name string, a, b float64, per []float64, ok func(float64) bool) {
		p("%s", goalRow(name, a, b, per, ok))
	}
	// bounded is a goal of the relay's, a ratio to nginx held to bound by
	// test (atMost, atLeast); tally, when set, counts those at 1.0×
	// judged and met: a twin's score.
	var tally *[2]int
	twinScore := map[string]*[2]int{}
	bounded := func(name string, a, b float64, per []float64, test func(float64) func(float64) bool, bound float64) {
		goal(name, a, b, per, test(bound))
		if ratio := medianOrNaN(per); tally != nil && bound == 1 && !math.IsNaN(ratio) {
			tally[0]++
			if test(bound)(ratio) {
				tally[1]++
			}
		}
	}
	for _, pair := range [][2]string{{tAuth, tNginx}, {tTLS, tNginxTL}} {
		a, n := pair[0], pair[1]
		if !r.has(a) || !r.has(n) {
			continue
		}
		if r.has(tDirect) {
			for _, w := range []struct{ w, label string }{{"getversion_c1", "GetVersion"}, {"search_c1", "Search"}} {
				da := r.med(w.w, a, p50) - r.med(w.w, tDirect, p50)
				dn := r.med(w.w, n, p50) - r.med(w.w, tDirect, p50)
				goal(fmt.Sprintf("%s c=1 added p50 µs: %s ≤ %s", w.label, a, n), da, dn, r.addedRatios(w.w, a, n, p50), atMost(1))
			}
		}
		for _, w := range []struct{ w, label string }{{"getversion_c32", fmt.Sprintf("c=%d calls/s", r.Conc)}, {"insert_4mib", "insert MB/s"}} {
			goal(fmt.Sprintf("%s: %s ≥ %s", w.label, a, n), r.med(w.w, a, rate), r.med(w.w, n, rate), r.roundRatios(w.w, a, n, rate), atLeast(1))
		}
	}
	// The frame relay's goals (issues 15 and 26: issue 26 withdrew the
	// 1.1× insert bound for 1.0×, and added CPU per MB at most nginx's),
	// against nginx and today's core; then the same bounds on the floor,
	// which has no core of its own.
	for _, pair := range [][3]string{{tFrames, tNginx, tAuth}, {tFramesTLS, tNginxTL, tTLS}, {tFloor, tNginx, ""}, {tTwin, tNginx, ""}, {tTwinTLS, tNginxTL, ""}} {
		f, n, today := pair[0], pair[1], pair[2]
		if !r.has(f) || !r.has(n) {
			continue
		}
		tally = nil
		if f == tTwin || f == tTwinTLS {
			tally = &[2]int{}
			twinScore[f] = tally
		}
		if r.has(tDirect) {
			for _, w := range []struct{ w, label string }{{"getversion_c1", "GetVersion"}, {"search_c1", "Search"}} {
				for _, q := range []struct {
					name  string
					f     func(*sample) float64
					bound float64
				}{{"p50", p50, 0.8}, {"p99", p99, 1}} {
					bounded(fmt.Sprintf("%s c=1 added %s: %s ≤ %.1f× %s", w.label, q.name, f, q.bound, n),
						r.med(w.w, f, q.f)-r.med(w.w, tDirect, q.f), r.med(w.w, n, q.f)-r.med(w.w, tDirect, q.f), r.addedRatios(w.w, f, n, q.f), atMost, q.bound)
				}
			}
		}
		for _, w := range []struct {
			w, label string
			bound    float64
		}{{"fullduplex", "FullDuplex msgs/s", 1}, {"insert_4mib", "insert MB/s", 1}, {"getversion_c32", fmt.Sprintf("c=%d calls/s", r.Conc), 1.5}} {
			bounded(fmt.Sprintf("%s: %s ≥ %.1f× %s", w.label, f, w.bound, n), r.med(w.w, f, rate), r.med(w.w, n, rate), r.roundRatios(w.w, f, n, rate), atLeast, w.bound)
		}
		bounded(fmt.Sprintf("CPU per MB inserted (ms): %s ≤ %s", f, n), r.med("insert_4mib", f, cpuPerMB), r.med("insert_4mib", n, cpuPerMB), r.roundRatios("insert_4mib", f, n, cpuPerMB), atMost, 1)
		if r.has(today) {
			cpu := perCall(func(c cpuUse) float64 { return c.Target })
			goal(fmt.Sprintf("CPU per call at c=%d: %s ≤ %s (today's core)", r.Conc, f, today), r.med("getversion_c32", f, cpu), r.med("getversion_c32", today, cpu), r.roundRatios("getversion_c32", f, today, cpu), atMost(1))
		}
		if mf, ok := r.Memory[f]; ok {
			if mn, ok := r.Memory[n]; ok && mf.ConnsKiB > 0 && mn.ConnsKiB > 0 {
				a, b := float64(mf.ConnsKiB)/1024, float64(mn.ConnsKiB)/1024
				// Measured once a run, before the rounds: one figure.
				goal(fmt.Sprintf("RSS with %d connections: %s ≤ %s + 10 MiB", r.MemConns, f, n), a, b, []float64{a / (b + 10)}, atMost(1))
			}
		}
	}
	if r.has(tAuth) && r.has(tNoAuth) {
		goal("auth on ≤ 5% over auth off: GetVersion c=1 p50", r.med("getversion_c1", tAuth, p50), r.med("getversion_c1", tNoAuth, p50), r.roundRatios("getversion_c1", tAuth, tNoAuth, p50), atMost(1.05))
		goal("auth on ≤ 5% over auth off: c=32 calls/s (off ÷ on)", r.med("getversion_c32", tAuth, rate), r.med("getversion_c32", tNoAuth, rate), r.roundRatios("getversion_c32", tNoAuth, tAuth, rate), atMost(1.05))
	}
	if r.has(tAuth) && r.has(tEtcd) {
		for _, w := range []string{"getversion_c1", "search_c1"} {
			goal(fmt.Sprintf("store on etcd ≤ 5%% over a file: %s p50 (ap-etcd ÷ ap-auth)", w), r.med(w, tEtcd, p50), r.med(w, tAuth, p50), r.roundRatios(w, tEtcd, tAuth, p50), atMost(1.05))
		}
	}
	if r.has(tAuth) && r.has(tRBAC) {
		goal("grants checked ≤ 5% over root: Search c=1 p50 (ap-rbac ÷ ap-auth)", r.med("search_c1", tRBAC, p50), r.med("search_c1", tAuth, p50), r.roundRatios("search_c1", tRBAC, tAuth, p50), atMost(1.05))
	}
	if m, ok := r.Memory[tAuth]; ok {
		ref := math.NaN()
		if n, ok := r.Memory[tNginx]; ok {
			ref = float64(n.IdleKiB) / 1024
		}
		goal("idle RSS < 30 MiB (ap-auth; reference: nginx master+workers)", float64(m.IdleKiB)/1024, ref, []float64{float64(m.IdleKiB) / 1024 / 30}, func(x float64) bool { return x < 1 })
	}

	if r.has(tFloor) {
		p("\nThe %s rows are not goals: they hold the frame relay's bounds against what a TCP relay that parses nothing reaches in the same run. "+
			"On bulk data (the insert) no proxy can do less work, so a bound the floor misses there is out of reach on this machine; "+
			"on small messages (FullDuplex) a splice costs more than the read and write it saves, so it is no floor there "+
			"(`loadgen l4 -copy buffer`, with L4_ARGS, is the user-space copy relay).\n", tFloor)
	}
	for _, pair := range [][2]string{{tTwin, tNginx}, {tTwinTLS, tNginxTL}} {
		if sc := twinScore[pair[0]]; sc != nil {
			p("\nThe %s rows are not goals either: %s is a second nginx configured as %s, held to the frame relay's bounds. "+
				"Of those at 1.0× (added p99s, FullDuplex, insert, CPU per MB) it met %d of the %d judged: what a proxy exactly level with nginx scores against them in this run. "+
				"A bound of 1.0× against an equal is met about as often as missed, however many rounds are run.\n", pair[0], pair[0], pair[1], sc[1], sc[0])
		}
	}
	p("\n## Noise: spread over rounds, (max−min)/median %%\n\n")
	header("metric")
	for _, rw := range rows[:7] {
		p("| %s |", rw.label)
		for _, t := range r.Targets {
			p(" %s |", fmtNum(r.spread(rw.w, t, rw.f)))
		}
		p("\n")
	}

	p("\n## How light is the load generator\n\n")
	p("CPU seconds per second of wall time (cores busy) during the c=%d window, median of rounds; the machine has %s cores. "+
		"'rest of the machine' is every other process (a busy machine makes that window's figures suspect).\n\n", r.Conc, r.machineValue("cores (nproc)"))
	header("process")
	for _, x := range []struct {
		label string
		f     func(cpuUse) float64
	}{{"loadgen", func(c cpuUse) float64 { return c.Loadgen }}, {"target (proxy)", func(c cpuUse) float64 { return c.Target }}, {"backend", func(c cpuUse) float64 { return c.Backend }}, {"rest of the machine", func(c cpuUse) float64 { return c.Other }}} {
		p("| %s |", x.label)
		for _, t := range r.Targets {
			v := r.med("getversion_c32", t, func(s *sample) float64 { return x.f(s.CPU) / s.Elapsed })
			if x.label == "target (proxy)" && t == tDirect {
				v = math.NaN()
			}
			p(" %s |", fmtNum(v))
		}
		p("\n")
	}
	if len(r.Notes) > 0 {
		p("\n## Notes\n\n")
		for _, n := range r.Notes {
			p("- %s\n", n)
		}
	}
	p("\nLatency distributions (GetVersion and Search at c=1): latency.svg. Every round's raw figures: results.json.\n")
	return b.String()
}

// goalRow is a row of the goals table: the goal is met if ok holds for
// the median of per, its per-round ratios; the row gives their lowest and
// highest and the rounds ok held in.
func goalRow(name string, a, b float64, per []float64, ok func(float64) bool) string {
	ratio := medianOrNaN(per)
	mark, held := "no", 0
	if ok(ratio) {
		mark = "yes"
	}
	if math.IsNaN(ratio) {
		mark = "–"
	}
	for _, x := range per {
		if ok(x) {
			held++
		}
	}
	span := "–"
	if len(per) > 0 {
		span = fmtNum(slices.Min(per)) + "–" + fmtNum(slices.Max(per))
	}
	return fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %d/%d |\n", name, fmtNum(a), fmtNum(b), fmtNum(ratio), span, mark, held, len(per))
}

func (r *results) machineValue(k string) string {
	for _, m := range r.Machine {
		if m[0] == k {
			return m[1]
		}
	}
	return "?"
}

var palette = []string{"#222222", "#1f77b4", "#d62728", "#9467bd", "#2ca02c", "#ff7f0e", "#8c564b", "#e377c2"}

// svg draws, for GetVersion and Search at c=1, each target's latency by
// percentile (all rounds pooled): x is the percentile on a log scale of
// 1/(1−q) (50%, 90%, 99%, 99.9%), y the latency in µs.
func (r *results) svg() string {
	const W, H, panelW, top, left, plotH = 1000, 540, 470, 50, 60, 320
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%d" y="22" font-size="15" text-anchor="middle">Latency by percentile at concurrency 1 (all %d rounds pooled; lower is better)</text>`+"\n", W/2, r.Rounds)
	const qmax = 0.999
	xOf := func(q float64, x0, w float64) float64 { return x0 + w*(-math.Log10(1-q))/(-math.Log10(1-qmax)) }
	for pi, w := range []struct{ w, title string }{{"getversion_c1", "GetVersion"}, {"search_c1", "Search nq=1 top-10"}} {
		x0 := float64(left + pi*(panelW+30))
		pw := float64(panelW - left + 10)
		curves := map[string][]float64{}
		ymax := 0.0
		for _, t := range r.Targets {
			var all []float64
			for _, s := range r.Samples[w.w][t] {
				all = append(all, s.lat...)
			}
			sort.Float64s(all)
			curves[t] = all
			ymax = math.Max(ymax, percentile(all, qmax))
		}
		ymax = niceCeil(ymax)
		ymin := ymax
		for _, all := range curves {
			if len(all) > 0 {
				ymin = math.Min(ymin, all[0])
			}
		}
		ymin = niceFloor(ymin)
		// Log scale: the medians and the tail both stay readable.
		yOf := func(v float64) float64 {
			v = math.Min(math.Max(v, ymin), ymax)
			return top + plotH - plotH*math.Log(v/ymin)/math.Log(ymax/ymin)
		}
		p(`<text x="%.0f" y="%d" font-size="13" text-anchor="middle">%s</text>`+"\n", x0+pw/2, top-10, html.EscapeString(w.title))
		for _, v := range ticks125(ymin, ymax) {
			y := yOf(v)
			p(`<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", x0, x0+pw, y, y)
			p(`<text x="%.0f" y="%.1f" text-anchor="end">%.0f</text>`+"\n", x0-5, y+4, v)
		}
		for _, q := range []float64{0, .5, .9, .99, .999} {
			x := xOf(q, x0, pw)
			p(`<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#ddd"/>`+"\n", x, x, top, top+plotH)
			p(`<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x, top+plotH+16, strings.TrimSuffix(fmt.Sprintf("%g", q*100), ".0")+"%")
		}
		p(`<text x="%.0f" y="%d" text-anchor="middle">percentile</text>`+"\n", x0+pw/2, top+plotH+34)
		p(`<text transform="translate(%.0f,%d) rotate(-90)" text-anchor="middle">µs (log scale)</text>`+"\n", x0-42, top+plotH/2)
		p(`<rect x="%.0f" y="%d" width="%.0f" height="%d" fill="none" stroke="#888"/>`+"\n", x0, top, pw, plotH)
		for ti, t := range r.Targets {
			all := curves[t]
			if len(all) == 0 {
				continue
			}
			var pts []string
			for i := 0; i <= 150; i++ {
				q := 1 - math.Pow(10, -3*float64(i)/150) // 0 .. 0.999 evenly in log(1/(1-q))
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", xOf(q, x0, pw), yOf(percentile(all, math.Max(q, 1/float64(len(all)))))))
			}
			p(`<polyline fill="none" stroke="%s" stroke-width="1.6" points="%s"/>`+"\n", palette[ti%len(palette)], strings.Join(pts, " "))
		}
	}
	// Legend with p50/p99 of GetVersion and Search.
	ly := top + plotH + 52
	for ti, t := range r.Targets {
		x := left
		y := ly + ti*18
		gv, se := curves2(r, "getversion_c1", t), curves2(r, "search_c1", t)
		p(`<rect x="%d" y="%d" width="14" height="4" fill="%s"/>`+"\n", x, y-5, palette[ti%len(palette)])
		p(`<text x="%d" y="%d">%s  GetVersion p50 %.0f p99 %.0f · Search p50 %.0f p99 %.0f µs</text>`+"\n", x+18, y, html.EscapeString(t),
			percentile(gv, .5), percentile(gv, .99), percentile(se, .5), percentile(se, .99))
	}
	p("</svg>\n")
	return b.String()
}

func curves2(r *results, w, t string) []float64 {
	var all []float64
	for _, s := range r.Samples[w][t] {
		all = append(all, s.lat...)
	}
	sort.Float64s(all)
	return all
}

// niceFloor rounds v down to 1, 2 or 5 times a power of ten.
func niceFloor(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{5, 2, 1} {
		if m*e <= v {
			return m * e
		}
	}
	return e
}

// ticks125 is 1, 2, 5 times powers of ten from lo to hi.
func ticks125(lo, hi float64) []float64 {
	var out []float64
	for e := math.Pow(10, math.Floor(math.Log10(lo))); e <= hi; e *= 10 {
		for _, m := range []float64{1, 2, 5} {
			if v := m * e; v >= lo*0.999 && v <= hi*1.001 {
				out = append(out, v)
			}
		}
	}
	return out
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*e >= v {
			return m * e
		}
	}
	return 10 * e
}
