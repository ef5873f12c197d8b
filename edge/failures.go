package edge

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Refusal is one refused authentication, as the gRPC and REST adapters
// report it. It never holds the secret.
type Refusal struct {
	Protocol string // grpc or rest
	Target   string // the gRPC method or the REST path
	User     string // the claimed user, empty for API keys and missing tokens
	Peer     string // the client address, without the port
	Reason   string
}

// Limits of the failure log: per window, the first refusals of a source
// (reason, user, peer) are logged in full up to failureFullLines; the rest
// are counted and summarised at the end of the window, the largest
// failureSummaryLines sources by name and all others in one line. So a
// flood writes at most failureFullLines+failureSummaryLines+1 lines per
// window, whatever it sends; the metrics still count every refusal.
const (
	failureWindow       = 10 * time.Second
	failureFullLines    = 5
	failureSummaryLines = 5
	failureSources      = 4096 // distinct sources counted by name in one window
	maxLoggedLen        = 64   // bytes of a client-sent string that reach the log
)

type refusalKey struct{ reason, user, peer string }

// FailureLog writes authentication refusals to the log, rate-limited.
type FailureLog struct {
	logger *slog.Logger
	window time.Duration

	mu      sync.Mutex
	full    int                // full lines written in this window
	counts  map[refusalKey]int // refusals per source not written in full
	others  int                // refusals past failureSources
	pending bool               // a flush is scheduled
	timer   *time.Timer

	// Denials keeps the last refusals for the console, every one of them
	// (the log's rate limit does not apply to a bounded ring).
	Denials *Denials
}

// NewFailureLog returns a FailureLog writing to logger.
func NewFailureLog(logger *slog.Logger) *FailureLog {
	return &FailureLog{logger: logger, window: failureWindow, counts: map[refusalKey]int{}, Denials: &Denials{}}
}

// Record logs a refusal, in full or in the window's summary.
func (l *FailureLog) Record(r Refusal) {
	key := refusalKey{reason: r.Reason, user: Bound(r.User), peer: Bound(r.Peer)}
	l.Denials.Add(Denial{Kind: "authentication", Protocol: r.Protocol, Target: r.Target, User: key.user, Peer: key.peer, Reason: r.Reason})
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.pending {
		l.pending = true
		l.timer = time.AfterFunc(l.window, l.Flush)
	}
	if _, seen := l.counts[key]; !seen && l.full < failureFullLines {
		l.full++
		l.counts[key] = 0
		l.logger.Warn("authentication failed", "protocol", r.Protocol, "target", Bound(r.Target),
			"user", key.user, "peer", key.peer, "reason", r.Reason)
		return
	}
	if _, seen := l.counts[key]; seen || len(l.counts) < failureSources {
		l.counts[key]++
	} else {
		l.others++
	}
}

// Flush writes the summary of the refusals not logged in full and starts a
// new window. It runs at the end of each window and on shutdown.
func (l *FailureLog) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.timer != nil {
		l.timer.Stop()
	}
	type source struct {
		refusalKey
		n int
	}
	var sources []source
	for k, n := range l.counts {
		if n > 0 {
			sources = append(sources, source{k, n})
		}
	}
	slices.SortFunc(sources, func(a, b source) int { return b.n - a.n })
	for i, s := range sources {
		if i == failureSummaryLines {
			break
		}
		l.logger.Warn("authentication failures not logged one by one", "user", s.user, "peer", s.peer,
			"reason", s.reason, "count", s.n, "window", l.window.String())
	}
	rest, restSources := l.others, 0
	for _, s := range sources[min(len(sources), failureSummaryLines):] {
		rest += s.n
		restSources++
	}
	if rest > 0 {
		l.logger.Warn("authentication failures from other sources not logged one by one",
			"count", rest, "sources", restSources, "window", l.window.String())
	}
	l.full, l.others, l.pending = 0, 0, false
	clear(l.counts)
}

// Bound cuts a client-sent string to what a log line or a counter key may
// keep, and copies it: a slice of a 4 MiB header would keep all of it.
func Bound(s string) string {
	if len(s) <= maxLoggedLen {
		return strings.Clone(s)
	}
	cut := maxLoggedLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	// The concatenation is a new string: nothing of s is retained.
	return s[:cut] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

// VerifiedCert is the client certificate a TLS handshake verified, or nil.
// gRPC and REST both take the identity from it.
func VerifiedCert(state *tls.ConnectionState) *x509.Certificate {
	if state == nil || len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return nil
	}
	return state.VerifiedChains[0][0]
}
