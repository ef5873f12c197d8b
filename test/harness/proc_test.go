package harness

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// orphanDir, in the environment, makes TestKilledTestBinaryLeavesNoProxy
// the test binary that is killed.
const orphanDir = "HARNESS_TEST_ORPHAN_DIR"

// A test binary that is killed (SIGKILL: no cleanup runs) takes the proxy
// it started with it. The test runs this test binary again as a child
// that starts a proxy and waits; it kills that child and watches the proxy.
func TestKilledTestBinaryLeavesNoProxy(t *testing.T) {
	if dir := os.Getenv(orphanDir); dir != "" {
		p := Start(t, Options{Backend: "127.0.0.1:1", Dir: dir})
		fmt.Printf("proxy pid %d\n", p.PID())
		time.Sleep(time.Minute) // killed long before
		return
	}
	dir := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run=^TestKilledTestBinaryLeavesNoProxy$", "-test.count=1")
	child.Env = append(os.Environ(), orphanDir+"="+dir)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	pids := make(chan int, 1)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			var pid int
			if _, err := fmt.Sscanf(s.Text(), "proxy pid %d", &pid); err == nil {
				pids <- pid
			}
		}
	}()
	var pid int
	select {
	case pid = <-pids:
	case <-time.After(2 * time.Minute): // the child builds the proxy first
		t.Fatal("the child test binary started no proxy within 2 minutes")
	}
	if !alive(pid) {
		t.Fatalf("proxy %d is not running", pid)
	}
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("proxy %d still runs 10 s after its test binary was killed", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid runs (a zombie, dead but not reaped, does not).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z" && fields[0] != "X"
}
