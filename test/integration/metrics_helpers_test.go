package integration

import (
	"strconv"
	"strings"
	"testing"

	"github.com/authproxy/authproxy/test/harness"
)

// metricValue returns the value of one series of /metrics (0 if absent).
func metricValue(t *testing.T, p *harness.Proxy, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(p.Metrics(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return f
		}
	}
	return 0
}
