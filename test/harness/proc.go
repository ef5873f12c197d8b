package harness

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// PID is the proxy process's id.
func (p *Proxy) PID() int { return p.cmd.Process.Pid }

// ResetPeakRSS starts a new peak-memory measurement (Linux's clear_refs 5
// resets VmHWM to the current RSS).
func (p *Proxy) ResetPeakRSS(t testing.TB) {
	t.Helper()
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.PID()), []byte("5"), 0); err != nil {
		t.Fatalf("reset peak RSS: %v", err)
	}
}

// PeakRSS is the process's peak resident memory (VmHWM) in bytes since the
// start or the last ResetPeakRSS; RSS is the current one (VmRSS).
func (p *Proxy) PeakRSS(t testing.TB) int64 { return p.procStatus(t, "VmHWM:") }

// RSS is the process's resident memory (VmRSS) in bytes.
func (p *Proxy) RSS(t testing.TB) int64 { return p.procStatus(t, "VmRSS:") }

func (p *Proxy) procStatus(t testing.TB, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID()))
	if err != nil {
		t.Fatalf("read /proc status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("parse %s %q: %v", field, rest, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("%s not in /proc status", field)
	return 0
}
