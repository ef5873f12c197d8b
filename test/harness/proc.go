package harness

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
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

// StartChild starts cmd so that it dies with the test process, and returns
// a channel closed once it has exited and been reaped (do not call
// cmd.Wait). On Linux the child gets SIGKILL when its parent dies
// (Pdeathsig), so a test binary that is killed, or times out, leaves no
// proxy or slapd behind. The kernel sends that signal when the OS thread
// that started the child exits, not the process: so cmd is started from a
// goroutine locked to its thread, which stays there (waiting for the child)
// until the child is gone, and only then lets the thread go.
func StartChild(cmd *exec.Cmd) (<-chan struct{}, error) {
	started := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the runtime ends the thread with this goroutine,
		// after the child has exited.
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return done, nil
}
