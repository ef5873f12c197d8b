package admin

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is a readiness check: nil means ready.
type Check func(ctx context.Context) error

// ReloadStatus is the outcome of the last reload of one file.
type ReloadStatus struct {
	Path   string    `json:"path"`
	OK     bool      `json:"ok"`
	Error  string    `json:"error,omitempty"`
	At     time.Time `json:"at"`
	LastOK time.Time `json:"lastOk,omitempty"`
}

// Status collects readiness checks and reload outcomes.
type Status struct {
	mu      sync.Mutex
	checks  map[string]Check
	reloads map[string]ReloadStatus
	info    map[string]string

	reloadCount *prometheus.CounterVec
	gatherer    prometheus.Gatherer
}

// NewStatus returns an empty Status. Its reload counter is registered on
// reg, and /metrics serves what gatherer collects (usually the same
// registry); a nil reg or gatherer leaves out that part.
func NewStatus(reg prometheus.Registerer, gatherer prometheus.Gatherer) *Status {
	s := &Status{
		checks:  map[string]Check{},
		reloads: map[string]ReloadStatus{},
		info:    map[string]string{},
		reloadCount: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authproxy_reloads_total",
			Help: "Reloads of watched files by file kind (config, credentials, tls) and result (success, failure, unchanged).",
		}, []string{"file", "result"}),
		gatherer: gatherer,
	}
	if reg != nil {
		reg.MustRegister(s.reloadCount)
	}
	return s
}

// AddCheck registers a named readiness check.
func (s *Status) AddCheck(name string, c Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[name] = c
}

// SetInfo shows what is running (the forwarding core, the version) in
// /readyz's detail.
func (s *Status) SetInfo(key, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.info[key] = value
}

// Reloaded records the outcome of reloading a file of the given kind. A
// failed reload keeps the last good state, so it shows in the detail but
// does not make the proxy unready.
func (s *Status) Reloaded(kind, path string, changed bool, err error) {
	result := "success"
	switch {
	case err != nil:
		result = "failure"
	case !changed:
		result = "unchanged"
	}
	s.reloadCount.WithLabelValues(kind, result).Inc()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	prev := s.reloads[kind]
	st := ReloadStatus{Path: path, OK: err == nil, At: now, LastOK: prev.LastOK}
	if err != nil {
		st.Error = err.Error()
	} else {
		st.LastOK = now
	}
	s.reloads[kind] = st
}

type checkResult struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

type readiness struct {
	Ready   bool                    `json:"ready"`
	Info    map[string]string       `json:"info"`
	Checks  map[string]checkResult  `json:"checks"`
	Reloads map[string]ReloadStatus `json:"reloads"`
}

// Ready runs every check, each bounded by ctx.
func (s *Status) Ready(ctx context.Context) readiness {
	s.mu.Lock()
	names := make([]string, 0, len(s.checks))
	for n := range s.checks {
		names = append(names, n)
	}
	checks := make(map[string]Check, len(s.checks))
	for n, c := range s.checks {
		checks[n] = c
	}
	reloads := maps.Clone(s.reloads)
	info := maps.Clone(s.info)
	s.mu.Unlock()
	sort.Strings(names)

	r := readiness{Ready: true, Info: info, Checks: map[string]checkResult{}, Reloads: reloads}
	for _, n := range names {
		if err := checks[n](ctx); err != nil {
			r.Ready = false
			r.Checks[n] = checkResult{Error: err.Error()}
		} else {
			r.Checks[n] = checkResult{OK: true}
		}
	}
	return r
}

// Handler serves /healthz, /readyz and, with a gatherer, /metrics.
func (s *Status) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		res := s.Ready(ctx)
		w.Header().Set("Content-Type", "application/json")
		if !res.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	})
	if s.gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{}))
	}
	return mux
}
