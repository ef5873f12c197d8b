package integration

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/authproxy/authproxy/test/harness"
)

// Which forwarding core runs shows outside the process: in the start-up
// log line, in /readyz's detail and in authproxy_build_info, with the
// version `authproxy version` prints. Both cores, whatever the run's.
func TestForwardingCoreIsShown(t *testing.T) {
	out, err := exec.Command(harness.Binary(t), "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	version := strings.TrimSpace(strings.TrimPrefix(string(out), "authproxy "))
	for _, core := range []string{"grpc", "frames"} {
		t.Run(core, func(t *testing.T) {
			_, p := startPair(t, harness.Options{Extra: fmt.Sprintf("forwarding: %s\n", core)})
			if !p.WaitLog("authproxy serving", 5*time.Second) {
				t.Fatalf("no start-up line:\n%s", p.Logs())
			}
			var line string
			for _, l := range strings.Split(p.Logs(), "\n") {
				if strings.Contains(l, "authproxy serving") {
					line = l
				}
			}
			if !strings.Contains(line, "forwarding="+core) || !strings.Contains(line, "version="+version) {
				t.Errorf("start-up line %q names no forwarding=%s version=%s", line, core, version)
			}
			code, body := p.AdminStatus("/readyz")
			var ready struct {
				Info map[string]string `json:"info"`
			}
			if err := json.Unmarshal([]byte(body), &ready); err != nil || code != 200 {
				t.Fatalf("/readyz %d %v:\n%s", code, err, body)
			}
			if ready.Info["forwarding"] != core || ready.Info["version"] != version {
				t.Errorf("/readyz info %v, want forwarding %s, version %s", ready.Info, core, version)
			}
			series := fmt.Sprintf(`authproxy_build_info{forwarding=%q,version=%q}`, core, version)
			if v := metricValue(t, p, series); v != 1 {
				t.Errorf("%s = %v, want 1:\n%s", series, v, p.Metrics())
			}
		})
	}
}
