package main

import (
	"bytes"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// perfEvents are what -perf counts on a target's processes over the
// insert window: figures the machine's load moves little, unlike CPU
// seconds and MB/s. instructions needs a PMU, which a VM may not have
// (then it is left out of the report).
var perfEvents = []string{"task-clock", "context-switches", "raw_syscalls:sys_enter", "instructions",
	// The system calls that make up most of a proxy's (results.json has
	// each per sample): reads and writes, the event loop's waits, and the
	// Go runtime's wake-ups (futex) and naps (nanosleep, sched_yield).
	"syscalls:sys_enter_read", "syscalls:sys_enter_readv", "syscalls:sys_enter_recvfrom",
	"syscalls:sys_enter_write", "syscalls:sys_enter_writev", "syscalls:sys_enter_sendmsg", "syscalls:sys_enter_splice",
	"syscalls:sys_enter_epoll_wait", "syscalls:sys_enter_epoll_pwait",
	"syscalls:sys_enter_futex", "syscalls:sys_enter_nanosleep", "syscalls:sys_enter_sched_yield"}

// perfRun is a `perf stat` attached to a target's processes.
type perfRun struct {
	cmd *exec.Cmd
	out bytes.Buffer
}

// startPerf attaches perf stat to pids; nil if there are none.
func startPerf(pids []int) (*perfRun, error) {
	if len(pids) == 0 {
		return nil, nil
	}
	ids := make([]string, len(pids))
	for i, p := range pids {
		ids[i] = strconv.Itoa(p)
	}
	p := &perfRun{}
	p.cmd = exec.Command("perf", "stat", "-x", ",", "-e", strings.Join(perfEvents, ","), "-p", strings.Join(ids, ","))
	p.cmd.Stderr = &p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	time.Sleep(300 * time.Millisecond) // until it has attached
	return p, nil
}

// stop ends the count and returns each event's total (events perf
// could not count are absent).
func (p *perfRun) stop() map[string]float64 {
	if p == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	_ = p.cmd.Wait()
	out := map[string]float64{}
	for _, line := range strings.Split(p.out.String(), "\n") {
		f := strings.Split(line, ",")
		if len(f) < 3 {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			out[f[2]] = v
		}
	}
	return out
}
