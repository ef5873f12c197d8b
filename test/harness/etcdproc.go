package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// EtcdBinary is the etcd server the process clusters run: Debian's
// etcd-server package (etcd 3.4), which .ci/run installs.
const EtcdBinary = "/usr/bin/etcd"

// EtcdProc is one member of an etcd cluster running as its own process, so
// that a test can freeze it (SIGSTOP), kill it or restart it as an
// operator's fault would; it dies with the test process (Pdeathsig).
type EtcdProc struct {
	Name string
	URL  string
	t    testing.TB
	args []string
	logs *logBuffer
	cmd  *exec.Cmd
	done <-chan struct{}
}

// StartEtcdProcCluster starts an n-member cluster of etcd processes on
// loopback; the test's end kills them.
func StartEtcdProcCluster(t testing.TB, n int) []*EtcdProc {
	t.Helper()
	if _, err := os.Stat(EtcdBinary); err != nil {
		t.Fatalf("%s: %v (install Debian's etcd-server, as .ci/run does)", EtcdBinary, err)
	}
	members := make([]*EtcdProc, n)
	peers := make([]string, n)
	var initial []string
	for i := range members {
		members[i] = &EtcdProc{Name: fmt.Sprintf("m%d", i), URL: "http://" + FreeAddr(t), t: t}
		peers[i] = "http://" + FreeAddr(t)
		initial = append(initial, members[i].Name+"="+peers[i])
	}
	for i, m := range members {
		m.args = []string{
			"--name", m.Name, "--data-dir", memoryDir(t),
			"--listen-client-urls", m.URL, "--advertise-client-urls", m.URL,
			"--listen-peer-urls", peers[i], "--initial-advertise-peer-urls", peers[i],
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "authproxy-test",
			"--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn",
		}
		m.launch()
		t.Cleanup(m.Kill)
	}
	for _, m := range members {
		m.waitHealthy(60 * time.Second)
	}
	return members
}

// memoryDir is a data directory in memory (/dev/shm) when it has room,
// else on disk. etcd 3.4 has no switch to skip fsync, and an election
// writes its vote with fsync: on a busy disk one took 4.9 s of the
// proxy's 5 s requestTimeout. The tests are about the proxy across
// elections and kills (SIGKILL of a process keeps what it wrote to
// tmpfs), not about the disk. Removed after the members are killed.
func memoryDir(t testing.TB) string {
	const room = 1 << 30 // three members' 64 MiB WAL segments, many times over
	var fs syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &fs); err != nil || fs.Bavail*uint64(fs.Bsize) < room {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp("/dev/shm", "authproxy-etcd-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// Endpoints lists the members' client URLs.
func Endpoints(members []*EtcdProc) []string {
	var urls []string
	for _, m := range members {
		urls = append(urls, m.URL)
	}
	return urls
}

func (m *EtcdProc) launch() {
	m.t.Helper()
	m.logs = newLogBuffer()
	m.cmd = exec.Command(EtcdBinary, m.args...)
	m.cmd.Stdout, m.cmd.Stderr = m.logs, m.logs
	done, err := StartChild(m.cmd)
	if err != nil {
		m.t.Fatalf("start etcd %s: %v", m.Name, err)
	}
	m.done = done
}

// waitHealthy waits until the member answers a linearizable read, which
// needs a leader.
func (m *EtcdProc) waitHealthy(limit time.Duration) {
	m.t.Helper()
	cli := m.client()
	defer cli.Close()
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Get(ctx, "health")
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("etcd %s not healthy after %v: %v\n%s", m.Name, limit, err, m.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (m *EtcdProc) client() *clientv3.Client {
	m.t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.URL}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		m.t.Fatal(err)
	}
	return cli
}

// status is the member's view: its ID and the leader it knows (0: none).
func (m *EtcdProc) status() (id, leader uint64, err error) {
	cli := m.client()
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := cli.Status(ctx, m.URL)
	if err != nil {
		return 0, 0, err
	}
	return st.Header.MemberId, st.Leader, nil
}

// Leader waits (up to limit) until every member answers and all name the
// same leader, one of them, and returns it. A loaded machine can hold an
// election at any moment: a single look may find none, or an old leader
// that has not heard of the new one yet.
func Leader(t testing.TB, members []*EtcdProc, limit time.Duration) *EtcdProc {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var leader *EtcdProc
		var why string
		ids := map[uint64]*EtcdProc{}
		views := map[uint64]bool{}
		for _, m := range members {
			id, l, err := m.status()
			if err != nil {
				why = fmt.Sprintf("%s: %v", m.Name, err)
				break
			}
			ids[id], views[l] = m, true
		}
		if why == "" {
			for l := range views {
				leader = ids[l]
			}
			switch {
			case len(views) != 1:
				why = fmt.Sprintf("the members name %d different leaders", len(views))
			case leader == nil:
				why = "no leader"
			}
		}
		if why == "" {
			return leader
		}
		if time.Now().After(deadline) {
			t.Fatalf("no leader all etcd members agree on after %v: %s", limit, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Freeze stops the process (SIGSTOP): its sockets stay open, nothing
// answers; Thaw resumes it.
func (m *EtcdProc) Freeze() { m.signal(syscall.SIGSTOP) }

// Thaw resumes a frozen member (SIGCONT).
func (m *EtcdProc) Thaw() { m.signal(syscall.SIGCONT) }

func (m *EtcdProc) signal(sig syscall.Signal) {
	m.t.Helper()
	if err := m.cmd.Process.Signal(sig); err != nil {
		m.t.Fatalf("%v to etcd %s: %v", sig, m.Name, err)
	}
}

// Kill ends the member with SIGKILL (a frozen one too); Restart brings it
// back on its data and ports.
func (m *EtcdProc) Kill() {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	select {
	case <-m.done:
	default:
		_ = m.cmd.Process.Kill()
		<-m.done
	}
}

// Restart starts a killed member again; it rejoins its cluster (the
// initial-cluster flags are ignored on an existing data dir).
func (m *EtcdProc) Restart() {
	m.t.Helper()
	m.Kill()
	m.launch()
}

// Logs is what the member wrote.
func (m *EtcdProc) Logs() string { return m.logs.String() }
