package main

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// userHZ is the unit of utime and stime in /proc/PID/stat (USER_HZ, 100 on
// every Linux platform).
const userHZ = 100

// cpuUse is CPU seconds (user+system) spent during a measured window by the
// load generator itself, the target's processes and the backend.
// Other is the CPU the rest of the machine used meanwhile (from /proc/stat):
// a busy machine makes every figure of that window suspect.
// TargetSys is the part of Target spent in the kernel.
type cpuUse struct {
	Loadgen, Target, Backend, Other float64
	TargetSys                       float64
}

type cpuSnap struct{ loadgen, target, targetSys, backend, machine int64 }

func cpuSnapshot(targetPIDs, backendPIDs []int) cpuSnap {
	var sys int64
	for _, p := range targetPIDs {
		_, k := cpuTimes(strconv.Itoa(p))
		sys += k
	}
	return cpuSnap{loadgen: cpuTicks("self"), target: sumTicks(targetPIDs), targetSys: sys, backend: sumTicks(backendPIDs), machine: machineBusyTicks()}
}

func (a cpuSnap) since(b cpuSnap) cpuUse {
	u := cpuUse{
		Loadgen:   float64(b.loadgen-a.loadgen) / userHZ,
		Target:    float64(b.target-a.target) / userHZ,
		TargetSys: float64(b.targetSys-a.targetSys) / userHZ,
		Backend:   float64(b.backend-a.backend) / userHZ,
	}
	if a.machine > 0 && b.machine > 0 {
		u.Other = max(0, float64(b.machine-a.machine)/userHZ-u.Loadgen-u.Target-u.Backend)
	}
	return u
}

// machineBusyTicks is the machine's non-idle CPU time (first line of
// /proc/stat: user nice system irq softirq steal; idle and iowait excluded).
func machineBusyTicks() int64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var n int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		n += v
	}
	return n
}

func sumTicks(pids []int) int64 {
	var n int64
	for _, p := range pids {
		n += cpuTicks(strconv.Itoa(p))
	}
	return n
}

// cpuTicks is utime+stime of a process (all its threads), or 0.
func cpuTicks(pid string) int64 {
	u, k := cpuTimes(pid)
	return u + k
}

// cpuTimes is utime and stime of a process (all its threads), or 0s.
func cpuTimes(pid string) (user, sys int64) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, 0
	}
	user, _ = strconv.ParseInt(f[11], 10, 64) // field 14, utime
	sys, _ = strconv.ParseInt(f[12], 10, 64)  // field 15, stime
	return user, sys
}

// rssKiB is the sum of VmRSS over pids.
func rssKiB(pids []int) int64 {
	var total int64
	for _, p := range pids {
		f, err := os.Open("/proc/" + strconv.Itoa(p) + "/status")
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				total += n
			}
		}
		f.Close()
	}
	return total
}

// machineInfo describes the machine for the report; extra is "key: value"
// lines separated by |.
func machineInfo(extra string) [][2]string {
	out := [][2]string{{"cores (nproc)", strconv.Itoa(runtime.NumCPU())}}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				out = append(out, [2]string{"CPU", strings.TrimSpace(v)})
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		out = append(out, [2]string{"kernel", strings.TrimSpace(string(b))})
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if l, _, ok := strings.Cut(string(b), "\n"); ok {
			out = append(out, [2]string{"memory", strings.TrimSpace(strings.TrimPrefix(l, "MemTotal:"))})
		}
	}
	out = append(out, [2]string{"Go (loadgen build)", runtime.Version()})
	for _, l := range splitBar(extra) {
		k, v, _ := strings.Cut(l, ":")
		out = append(out, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
	}
	return out
}

func splitBar(s string) []string {
	var out []string
	for _, p := range strings.Split(s, "|") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func splitPlus(s string) []string {
	var out []string
	for _, p := range strings.Split(s, "+") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
