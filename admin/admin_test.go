package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

func TestReadinessFollowsItsChecks(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := NewStatus(reg, reg)
	backendErr := errors.New("backend 127.0.0.1:1 not reachable")
	var failing bool
	s.AddCheck("backend", func(context.Context) error {
		if failing {
			return backendErr
		}
		return nil
	})
	h := s.Handler()

	if code, body := get(t, h, "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	if code, body := get(t, h, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz with passing checks: %d %s", code, body)
	}
	failing = true
	code, body := get(t, h, "/readyz")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with a failing check: %d, want 503", code)
	}
	var r readiness
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	if r.Ready || r.Checks["backend"].OK || r.Checks["backend"].Error != backendErr.Error() {
		t.Fatalf("/readyz body: %+v", r)
	}
}

// A failed reload shows in the detail and the counter but keeps the proxy
// ready: it still serves the last good state.
func TestFailedReloadIsReportedNotFatal(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := NewStatus(reg, reg)
	s.Reloaded("credentials", "/etc/authproxy/credentials.yaml", true, nil)
	s.Reloaded("credentials", "/etc/authproxy/credentials.yaml", true, errors.New("line 3: bad hash"))
	s.Reloaded("config", "/etc/authproxy/config.yaml", false, nil)

	if got := testutil.ToFloat64(s.reloadCount.WithLabelValues("credentials", "failure")); got != 1 {
		t.Errorf("failures counted: %v", got)
	}
	if got := testutil.ToFloat64(s.reloadCount.WithLabelValues("config", "unchanged")); got != 1 {
		t.Errorf("unchanged counted: %v", got)
	}
	r := s.Ready(context.Background())
	cred := r.Reloads["credentials"]
	if !r.Ready || cred.OK || cred.Error != "line 3: bad hash" || cred.LastOK.IsZero() {
		t.Fatalf("after a failed reload: %+v", r)
	}
	_, body := get(t, s.Handler(), "/metrics")
	if !strings.Contains(body, `authproxy_reloads_total{file="credentials",result="failure"} 1`) {
		t.Errorf("/metrics does not serve the injected registry:\n%s", body)
	}
}

// Two Status values in one process: separate registries, separate counts.
func TestTwoStatusesDoNotShareCounters(t *testing.T) {
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	a, b := NewStatus(regA, regA), NewStatus(regB, regB)
	a.Reloaded("tls", "a.pem", true, nil)
	if got := testutil.ToFloat64(b.reloadCount.WithLabelValues("tls", "success")); got != 0 {
		t.Fatalf("b sees a's reload: %v", got)
	}
	if code, _ := get(t, NewStatus(nil, nil).Handler(), "/metrics"); code != http.StatusNotFound {
		t.Fatalf("/metrics without a gatherer: %d, want 404", code)
	}
}
