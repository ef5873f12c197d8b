package auth

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the authentication counters. They live on a registry the
// caller chooses, so two proxies (or two tests) in one process never share
// or collide on them.
type Metrics struct {
	outcomes       *prometheus.CounterVec
	cacheHits      prometheus.Counter
	cacheMisses    prometheus.Counter
	hashes         prometheus.Counter
	cacheEntries   prometheus.Gauge
	hashesInFlight prometheus.Gauge
	hashesPeak     prometheus.Gauge
	lockouts       *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them on reg; a nil reg
// keeps them unregistered (unit tests that do not read them).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authproxy_auth_total",
			Help: "Authentication outcomes by result (success, failure) and reason.",
		}, []string{"result", "reason"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "authproxy_auth_cache_hits_total",
			Help: "Verifications answered from the cache, without hashing.",
		}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "authproxy_auth_cache_misses_total",
			Help: "Password verifications not found (or stale) in the cache.",
		}),
		hashes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "authproxy_password_hash_verifications_total",
			Help: "Password hash verifications run (dummy ones for unknown users included).",
		}),
		cacheEntries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "authproxy_auth_cache_entries",
			Help: "Successful verifications held in the cache.",
		}),
		hashesInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "authproxy_password_hash_verifications_in_flight",
			Help: "Cold password verifications running now.",
		}),
		hashesPeak: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "authproxy_password_hash_verifications_in_flight_peak",
			Help: "Most password hashes that ever ran at once; auth.maxConcurrentVerifications bounds it, and so do the processors less one.",
		}),
		lockouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authproxy_auth_lockouts_total",
			Help: "Lockouts started, by what was locked: one user from one address (user_address), or an address for every user (address).",
		}, []string{"kind"}),
	}
	// Export both series from the start, so dashboards see zeros.
	m.lockouts.WithLabelValues("user_address")
	m.lockouts.WithLabelValues("address")
	if reg != nil {
		reg.MustRegister(m.outcomes, m.cacheHits, m.cacheMisses, m.hashes, m.cacheEntries, m.hashesInFlight, m.hashesPeak, m.lockouts)
	}
	return m
}
