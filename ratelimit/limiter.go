package ratelimit

import (
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authproxy/authproxy/config"
)

// Call is one forwarded call, as the limits see it.
type Call struct {
	User string
	// Source is who vouches for User: "" or local, ldap, oidc.
	Source string
	// Roles are the caller's roles, bindings and mapped groups alike;
	// read only when NeedsRoles.
	Roles []string
	// Method is the full gRPC method, /service/Method.
	Method string
	// DB is the database the call is on, as the authorizer read it.
	DB string
	// Bytes is the size of the request message, for the MB/s rates.
	Bytes int
	// NQ is a Search's nq, for dql.searchRate.
	NQ int64
}

// Verdict is a decision: admitted (Limit "") or refused by Limit, whose
// rate on this replica is Rate, with the time its bucket needs to admit
// again.
type Verdict struct {
	Limit      string
	Rate       float64
	RetryAfter time.Duration
}

// Admitted reports whether the call may go on.
func (v Verdict) Admitted() bool { return v.Limit == "" }

// Options configure a Limiter.
type Options struct {
	Registry prometheus.Registerer
	Logger   *slog.Logger
	// clock is nanoseconds on a monotonic clock (tests replace it).
	clock func() int64
}

// Limiter holds the buckets of every configured limit. Set swaps the
// limits (a config reload); SetReplicas the number of replicas they are
// shared by. Its methods are safe for concurrent use.
type Limiter struct {
	cur      atomic.Pointer[state]
	replicas atomic.Int64
	total    *prometheus.CounterVec
	log      *slog.Logger
	// clock is what decisions read (ns on a monotonic clock), precise
	// what the sweeper and the metrics read: a coarseClock's, or a
	// test's.
	clock   func() int64
	precise func() int64
	mu      sync.Mutex // one Set at a time
	stop    chan struct{}
	stopped sync.Once
}

type state struct {
	limits []*limit
	// byMethod lists, per MilvusService method, the limits that count
	// it; other holds the callRate limits, for every other method.
	byMethod    map[string][]*limit
	other       []*limit
	exemptUsers []string
	exemptRoles []string
	needsRoles  bool
	needsDB     bool
}

type selector uint8

const (
	selUser selector = iota
	selRole
	selDatabase
	selSource
)

// limit is one configured limit and its buckets.
type limit struct {
	spec     config.RateLimit
	rate     rate
	sel      selector
	value    string // the selector's value; "*" for each user or database
	admitted prometheus.Counter
	refused  prometheus.Counter
	// perUnit is the time one unit takes at the whole limit's rate (ns);
	// a replica's is perUnit * replicas. window is the burst's time,
	// whatever the replicas.
	perUnit float64
	window  int64

	// buckets are the settled tenants, read without a lock; a new tenant
	// waits in recent (under mu) until the sweeper, once a second, folds
	// recent into a new settled map: one copy a second, not one per new
	// tenant, however many tenants requests invent.
	buckets atomic.Pointer[map[bucketKey]*bucket]
	mu      sync.Mutex
	recent  map[bucketKey]*bucket
}

// bucketKey is whose bucket: a database (for database "*"), a user
// (user "*", or each: true), both, or neither (one shared bucket). Two
// strings instead of one joined: a lookup allocates nothing.
type bucketKey struct{ db, user string }

// overflowKey is where new tenants of a limit go once it holds
// maxBuckets: database names come from requests, and memory must not
// grow with them.
var overflowKey = bucketKey{db: "\x00overflow"}

const (
	maxBuckets = 10000
	// quietAfter is how long a limited tenant must go without a refusal
	// to be logged as no longer limited.
	quietAfter = 2 * time.Second
	// idleAfter is how long an untouched, full bucket is kept.
	idleAfter = time.Minute
)

// bucket is a token bucket kept as one number (GCRA): tat, the clock at
// which the bucket would be full again. Tokens are (now + window - tat)
// / per-unit time, capped at the burst; a call that finds its cost moves
// tat on by it. One compare-and-swap per decision.
type bucket struct {
	tat atomic.Int64
	// Only refusals and the sweeper touch the rest.
	mu      sync.Mutex
	limited bool
	// refused counts the refusals since the tenant became limited;
	// lastRefused is the clock at the last one.
	refused     int64
	lastRefused atomic.Int64
}

// New returns a Limiter without limits; Set gives it some. Close stops
// its sweeper.
func New(opts Options) *Limiter {
	l := &Limiter{log: opts.Logger, clock: opts.clock, precise: opts.clock, stop: make(chan struct{})}
	if l.log == nil {
		l.log = slog.Default()
	}
	if l.clock == nil {
		c := newCoarseClock(l.stop)
		l.clock, l.precise = c.Now, c.precise
	}
	l.replicas.Store(1)
	l.total = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "authproxy_ratelimit_total",
		Help: "Calls counted by each configured rate limit (label limit: its name in the config), admitted or refused.",
	}, []string{"result", "limit"})
	l.cur.Store(&state{})
	if opts.Registry != nil {
		opts.Registry.MustRegister(l.total, (*collector)(l))
	}
	go l.sweep()
	return l
}

// Close stops the sweeper.
func (l *Limiter) Close() { l.stopped.Do(func() { close(l.stop) }) }

// Set applies a validated configuration. A limit whose settings did not
// change keeps its buckets; a new or changed one starts with full
// buckets, so a raised limit applies to the next call.
func (l *Limiter) Set(cfg config.RateLimits) {
	l.mu.Lock()
	defer l.mu.Unlock()
	prev := l.cur.Load()
	st := &state{byMethod: map[string][]*limit{}, exemptUsers: slices.Clone(cfg.Exempt.Users), exemptRoles: slices.Clone(cfg.Exempt.Roles)}
	st.needsRoles = len(st.exemptRoles) > 0
	kept := map[string]bool{}
	for _, spec := range cfg.Limits {
		var lim *limit
		for _, old := range prev.limits {
			if old.spec == spec {
				lim = old
			}
		}
		if lim == nil {
			lim = newLimit(spec)
			lim.admitted = l.total.WithLabelValues("admitted", spec.Name)
			lim.refused = l.total.WithLabelValues("refused", spec.Name)
		}
		kept[spec.Name] = true
		st.limits = append(st.limits, lim)
		st.needsRoles = st.needsRoles || lim.sel == selRole
		st.needsDB = st.needsDB || lim.sel == selDatabase
		for name, m := range methods {
			if slices.Contains(m.rates, lim.rate) {
				st.byMethod[name] = append(st.byMethod[name], lim)
			}
		}
		if lim.rate == rateAllCalls {
			st.other = append(st.other, lim)
		}
	}
	for _, old := range prev.limits {
		if !kept[old.spec.Name] {
			l.total.DeleteLabelValues("admitted", old.spec.Name)
			l.total.DeleteLabelValues("refused", old.spec.Name)
		}
	}
	l.cur.Store(st)
}

func newLimit(spec config.RateLimit) *limit {
	lim := &limit{spec: spec, rate: rateByName[spec.Rate]}
	burst := spec.Burst
	if burst == 0 {
		burst = spec.Max
	}
	lim.perUnit = 1e9 / spec.Max
	lim.window = int64(math.Round(burst * lim.perUnit))
	empty := map[bucketKey]*bucket{}
	lim.buckets.Store(&empty)
	switch {
	case spec.User != "":
		lim.sel, lim.value = selUser, spec.User
	case spec.Role != "":
		lim.sel, lim.value = selRole, spec.Role
	case spec.Database != "":
		lim.sel, lim.value = selDatabase, spec.Database
	default:
		lim.sel, lim.value = selSource, spec.IdentitySource
	}
	return lim
}

// SetReplicas shares every limit among n replicas (n < 1 counts as 1).
func (l *Limiter) SetReplicas(n int) { l.replicas.Store(int64(max(n, 1))) }

// Replicas is the number of replicas the limits are shared among.
func (l *Limiter) Replicas() int { return int(l.replicas.Load()) }

// Configured reports whether any limit is set.
func (l *Limiter) Configured() bool { return len(l.cur.Load().limits) > 0 }

// NeedsRoles reports whether a decision reads Call.Roles.
func (l *Limiter) NeedsRoles() bool { return l.cur.Load().needsRoles }

// NeedsDB reports whether a decision reads Call.DB.
func (l *Limiter) NeedsDB() bool { return l.cur.Load().needsDB }

// Admit counts c against every limit that selects it: admitted when each
// has tokens left, else refused by the first that has none (and what the
// others took is given back).
func (l *Limiter) Admit(c *Call) Verdict {
	st := l.cur.Load()
	if len(st.limits) == 0 || st.exempt(c) {
		return Verdict{}
	}
	lims, ok := st.byMethod[c.Method]
	if !ok {
		lims = st.other
	}
	now := l.clock()
	n := float64(l.replicas.Load())
	for i, lim := range lims {
		key, selected := lim.selects(c)
		if !selected {
			continue
		}
		b := lim.bucket(key)
		if wait, ok := b.take(lim.cost(c), lim.perUnit*n, lim.window, now); !ok {
			lim.refused.Inc()
			rate := lim.spec.Max / n
			if b.startLimited() {
				l.log.Info("rate limit: tenant limited", "limit", lim.spec.Name, "user", c.User, "database", cut(c.DB), "rate", rate, "unit", config.RateNames[lim.spec.Rate])
			}
			for _, back := range lims[:i] {
				if k, sel := back.selects(c); sel {
					back.bucket(k).give(back.cost(c), back.perUnit*n)
				}
			}
			return Verdict{Limit: lim.spec.Name, Rate: rate, RetryAfter: wait}
		}
		lim.admitted.Inc()
	}
	return Verdict{}
}

func (st *state) exempt(c *Call) bool {
	if slices.Contains(st.exemptUsers, c.User) {
		return true
	}
	for _, r := range st.exemptRoles {
		if slices.Contains(c.Roles, r) {
			return true
		}
	}
	return false
}

// selects says whether the limit counts c, and in which bucket.
func (lim *limit) selects(c *Call) (bucketKey, bool) {
	var key bucketKey
	switch lim.sel {
	case selUser:
		if lim.value != "*" && lim.value != c.User {
			return key, false
		}
		key.user = c.User
		return key, true
	case selRole:
		if !slices.Contains(c.Roles, lim.value) {
			return key, false
		}
	case selDatabase:
		if lim.value != "*" && lim.value != c.DB {
			return key, false
		}
		if lim.value == "*" {
			key.db = c.DB
		}
	case selSource:
		src := c.Source
		if src == "" {
			src = "local"
		}
		if src != lim.value {
			return key, false
		}
	}
	if lim.spec.Each {
		key.user = c.User
	}
	return key, true
}

// cost is what c spends of the limit's rate, in its unit.
func (lim *limit) cost(c *Call) float64 {
	switch lim.rate {
	case rateInsertMB, rateUpsertMB, rateDeleteMB:
		return float64(c.Bytes) / mb
	case rateSearchVectors:
		// A search of nq 0 still searches: charged as one vector.
		return float64(max(c.NQ, 1))
	}
	return 1
}

// bucket returns the tenant's bucket, created full.
func (lim *limit) bucket(key bucketKey) *bucket {
	if b, ok := (*lim.buckets.Load())[key]; ok {
		return b
	}
	lim.mu.Lock()
	defer lim.mu.Unlock()
	settled := *lim.buckets.Load()
	if b, ok := settled[key]; ok {
		return b
	}
	if b, ok := lim.recent[key]; ok {
		return b
	}
	if len(settled)+len(lim.recent) >= maxBuckets {
		key = overflowKey
		if b, ok := settled[key]; ok {
			return b
		}
		if b, ok := lim.recent[key]; ok {
			return b
		}
	}
	// The names may share memory with a request message: a key keeps copies.
	key = bucketKey{db: strings.Clone(key.db), user: strings.Clone(key.user)}
	b := &bucket{}
	if lim.recent == nil {
		lim.recent = map[bucketKey]*bucket{}
	}
	lim.recent[key] = b
	return b
}

// take spends cost when the bucket holds it, or, for a call larger than
// the whole burst (one big insert), when the bucket is full: that call
// leaves a debt the refill pays back, so the rate over time is exact
// whatever the sizes. Refused, it says how long until the call would
// pass. per is the time one unit takes at this replica's rate, window
// the burst's.
func (b *bucket) take(cost, per float64, window, now int64) (time.Duration, bool) {
	// Truncated: a burst of 15 at 1/15 s each must fit its 1 s window.
	spend := int64(cost * per)
	need := min(spend, window)
	for {
		tat := b.tat.Load()
		if wait := tat + need - window - now; wait > 0 {
			b.lastRefused.Store(now)
			return time.Duration(wait), false
		}
		if b.tat.CompareAndSwap(tat, max(tat, now)+spend) {
			return 0, true
		}
	}
}

// give returns what a call took when a later limit refused it.
func (b *bucket) give(cost, per float64) { b.tat.Add(-int64(cost * per)) }

// startLimited counts a refusal and reports whether it starts an episode.
func (b *bucket) startLimited() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refused++
	if b.limited {
		return false
	}
	b.limited = true
	return true
}

// sweep logs the tenants that stopped being limited, settles new ones
// and forgets idle buckets, once a second.
func (l *Limiter) sweep() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		l.sweepOnce()
	}
}

func (l *Limiter) sweepOnce() {
	now := l.precise()
	for _, lim := range l.cur.Load().limits {
		lim.mu.Lock()
		next := maps.Clone(*lim.buckets.Load())
		maps.Copy(next, lim.recent)
		lim.recent = nil
		for key, b := range next {
			b.mu.Lock()
			if b.limited && now-b.lastRefused.Load() > int64(quietAfter) {
				l.log.Info("rate limit: tenant no longer limited", "limit", lim.spec.Name, "user", key.user, "database", cut(key.db), "refused", b.refused)
				b.limited, b.refused = false, 0
			}
			// Full for idleAfter: nothing to remember.
			if !b.limited && b.tat.Load() < now-int64(idleAfter) {
				delete(next, key)
			}
			b.mu.Unlock()
		}
		lim.buckets.Store(&next)
		lim.mu.Unlock()
	}
}

// cut bounds a request-supplied name in a log line.
func cut(s string) string {
	if len(s) > 64 {
		return s[:64]
	}
	return s
}

// collector reports each limit's fill (the fullest tenant's spent share
// of the burst: above 1 while in debt) and limited tenants, and the
// replicas the limits are shared among, at scrape time.
type collector Limiter

var (
	fillDesc = prometheus.NewDesc("authproxy_ratelimit_fill",
		"Share of its burst the most spent tenant of each limit has used (0 idle, 1 empty, above 1 in debt).", []string{"limit"}, nil)
	limitedDesc = prometheus.NewDesc("authproxy_ratelimit_limited_tenants",
		"Tenants of each limit refused within the last 2 s.", []string{"limit"}, nil)
	replicasDesc = prometheus.NewDesc("authproxy_ratelimit_replicas",
		"Replicas the limits are shared among (each takes limit / N).", nil, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- fillDesc
	ch <- limitedDesc
	ch <- replicasDesc
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	l := (*Limiter)(c)
	now := l.precise()
	ch <- prometheus.MustNewConstMetric(replicasDesc, prometheus.GaugeValue, float64(l.replicas.Load()))
	for _, lim := range l.cur.Load().limits {
		fill, limited := 0.0, 0
		lim.mu.Lock()
		for _, m := range []map[bucketKey]*bucket{*lim.buckets.Load(), lim.recent} {
			for _, b := range m {
				fill = max(fill, float64(b.tat.Load()-now)/float64(lim.window))
				b.mu.Lock()
				if b.limited {
					limited++
				}
				b.mu.Unlock()
			}
		}
		lim.mu.Unlock()
		ch <- prometheus.MustNewConstMetric(fillDesc, prometheus.GaugeValue, fill, lim.spec.Name)
		ch <- prometheus.MustNewConstMetric(limitedDesc, prometheus.GaugeValue, float64(limited), lim.spec.Name)
	}
}
