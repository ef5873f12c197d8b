// Package harness runs the real authproxy binary for integration tests: it
// builds it once per test process, writes a config and starts it on free
// loopback ports, waits until it serves, and keeps every log line so that a
// test run can assert that no secret was ever logged.
package harness

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// RepoRoot is the authproxy repository (the product module).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Binary builds bin/authproxy from the product module once per process;
// with AUTHPROXY_RACE=1 it is built with the race detector.
func Binary(t testing.TB) string {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "authproxy-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "authproxy")
		args := []string{"build", "-o", binPath}
		if os.Getenv("AUTHPROXY_RACE") == "1" {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/authproxy")...)
		cmd.Dir = RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// FreeAddr returns a free loopback host:port, below the kernel's
// ephemeral range: a port from that range, free when FreeAddr looks, can
// be taken by any outgoing connection before the server binds it (seen
// with etcd's ports while the suite ran thousands of connections). A port
// is handed out once per test process, so two servers about to bind never
// get the same one.
func FreeAddr(t testing.TB) string {
	low := ephemeralLow()
	for range 200 {
		if low <= 11000 {
			break
		}
		port := 10000 + rand.IntN(low-11000)
		if _, taken := handedOut.LoadOrStore(port, true); taken {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		addr := l.Addr().String()
		l.Close()
		return addr
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// handedOut holds the ports FreeAddr returned.
var handedOut sync.Map

// ephemeralLow is the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	var low, high int
	if _, err := fmt.Sscan(string(b), &low, &high); err != nil {
		return 32768
	}
	return low
}

// Proxy is a running authproxy process.
type Proxy struct {
	Addr      string // client address
	AdminAddr string
	Dir       string // working directory: config, credentials, certs
	Config    string // path of the config file
	CredFile  string

	t      testing.TB
	args   []string
	noWait bool
	cmd    *exec.Cmd
	logDir string
	logs   *fileLog
	done   <-chan struct{}
}

// Options shape a proxy's config. Extra is appended to the generated YAML
// (top-level keys not generated here, e.g. a tls: section).
type Options struct {
	Backend    string
	AuthOff    bool
	SuperUsers string
	Extra      string
	// Common replaces the generated common.security block entirely.
	Common string
	// Dir reuses a working directory (files prepared before the start).
	Dir string
	// BackendExtra is appended to the backend: section (e.g. its tls:).
	BackendExtra string
	// BackendREST is backend.rest (the backend's REST base URL), if set.
	BackendREST string
	// CredFile overrides the credential file path (default Dir/credentials.yaml).
	CredFile string
	// Credentials, if set, replaces the generated credentials: section
	// (e.g. a store on etcd).
	Credentials string
	// NoWait returns as soon as the process runs, without waiting for the
	// client port (a proxy that waits for its store).
	NoWait bool
}

// Start writes a config and starts the proxy; it is stopped at test end.
func Start(t testing.TB, o Options) *Proxy {
	t.Helper()
	dir := o.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	// The log files live apart from Dir, where the proxy watches files.
	p := &Proxy{t: t, Dir: dir, logDir: t.TempDir()}
	p.CredFile = filepath.Join(dir, "credentials.yaml")
	if o.CredFile != "" {
		p.CredFile = o.CredFile
	}
	p.Config = filepath.Join(dir, "authproxy.yaml")
	common := o.Common
	if common == "" {
		common = fmt.Sprintf("common:\n  security:\n    authorizationEnabled: %t\n    superUsers: %q\n", !o.AuthOff, o.SuperUsers)
	}
	backend := fmt.Sprintf("  address: %q\n", o.Backend)
	if o.BackendREST != "" {
		backend += fmt.Sprintf("  rest: %q\n", o.BackendREST)
	}
	backend += o.BackendExtra
	credentials := fmt.Sprintf("credentials:\n  file: %q\n", p.CredFile)
	if o.Credentials != "" {
		credentials = o.Credentials
	}
	p.args = []string{"serve", "--config", p.Config}
	p.noWait = o.NoWait
	t.Cleanup(p.Stop)
	// A port found free can still be bound by another process before the
	// proxy binds it: then the start is tried again on other ports.
	for attempt := 1; ; attempt++ {
		p.Addr, p.AdminAddr = FreeAddr(t), FreeAddr(t)
		yaml := fmt.Sprintf(`listen: %q
backend:
%s%sadmin:
  listen: %q
shutdown:
  gracePeriod: 5s
%s%s%s`, p.Addr, backend, credentials, p.AdminAddr, common, forwarding(o.Extra), o.Extra)
		if err := os.WriteFile(p.Config, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		err := p.launch()
		if err == nil {
			return p
		}
		if attempt == 3 || !strings.Contains(p.logs.String(), "address already in use") {
			t.Fatalf("authproxy did not start: %v\nlogs:\n%s", err, p.logs.String())
		}
		t.Logf("authproxy did not start (attempt %d, trying other ports): %v", attempt, err)
	}
}

// Core is the forwarding core of the run: AUTHPROXY_FORWARDING, or the
// product's default (frames).
func Core() string {
	if v := os.Getenv("AUTHPROXY_FORWARDING"); v != "" {
		return v
	}
	return "frames"
}

// forwarding selects the forwarding core for every proxy of a run:
// AUTHPROXY_FORWARDING=grpc runs the whole suite on the grpc core, except
// where a test names its core itself.
func forwarding(extra string) string {
	if v := os.Getenv("AUTHPROXY_FORWARDING"); v != "" && !strings.Contains(extra, "forwarding:") {
		return fmt.Sprintf("forwarding: %q\n", v)
	}
	return ""
}

func (p *Proxy) start() {
	p.t.Helper()
	if err := p.launch(); err != nil {
		p.t.Fatalf("authproxy did not start: %v\nlogs:\n%s", err, p.logs.String())
	}
}

// launch starts the process and waits until it serves (unless noWait); on
// an error the process is stopped.
func (p *Proxy) launch() error {
	p.t.Helper()
	logs, err := newFileLog(p.logDir)
	if err != nil {
		p.t.Fatal(err)
	}
	p.logs = logs
	p.cmd = exec.Command(Binary(p.t), p.args...)
	p.cmd.Dir = p.Dir
	p.cmd.Stdout = logs.f
	p.cmd.Stderr = logs.f
	done, err := StartChild(p.cmd)
	_ = logs.f.Close() // the process has its own descriptor
	if err != nil {
		p.t.Fatal(err)
	}
	p.done = done
	if p.noWait {
		return nil
	}
	if err := p.waitServing(15 * time.Second); err != nil {
		p.Stop()
		return err
	}
	return nil
}

func (p *Proxy) waitServing(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("process exited: %v", p.cmd.ProcessState)
		default:
		}
		if resp, err := client.Get("http://" + p.AdminAddr + "/healthz"); err == nil {
			resp.Body.Close()
			if c, err := net.DialTimeout("tcp", p.Addr, time.Second); err == nil {
				c.Close()
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not serving after %s", limit)
}

// Stop sends SIGTERM and waits for the process to exit.
func (p *Proxy) Stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	p.collect()
}

// Kill stops the process with SIGKILL.
func (p *Proxy) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
	p.collect()
}

// Restart stops the proxy and starts it again with the same files and ports.
func (p *Proxy) Restart() {
	p.Stop()
	p.start()
}

// Signal sends sig to the process.
func (p *Proxy) Signal(sig os.Signal) {
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// Exited reports whether the process has exited.
func (p *Proxy) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Logs returns everything the process wrote so far.
func (p *Proxy) Logs() string { return p.logs.String() }

// WaitLog waits until the logs contain substr.
func (p *Proxy) WaitLog(substr string, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if strings.Contains(p.Logs(), substr) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// Metrics returns the /metrics text.
func (p *Proxy) Metrics() string {
	return p.AdminGet("/metrics")
}

// AdminGet fetches a path of the admin listener.
func (p *Proxy) AdminGet(path string) string {
	code, body := p.AdminStatus(path)
	if code == 0 {
		p.t.Fatalf("GET %s failed: %s", path, body)
	}
	return body
}

// AdminStatus fetches a path of the admin listener and returns status and body.
func (p *Proxy) AdminStatus(path string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.AdminAddr+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// collect keeps the logs and the credential file's hashes for the
// end-of-run secret check.
func (p *Proxy) collect() {
	if strings.Contains(p.logs.String(), "WARNING: DATA RACE") {
		p.t.Errorf("the race detector reported a data race in authproxy:\n%s", p.logs.String())
	}
	allLogsMu.Lock()
	allLogs = append(allLogs, p.logs.String())
	allLogsMu.Unlock()
	if data, err := os.ReadFile(p.CredFile); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(line)
			for _, key := range []string{"passwordHash:", "digest:"} {
				if v, ok := strings.CutPrefix(line, key); ok {
					Secret(strings.Trim(strings.TrimSpace(v), `"`))
				}
			}
		}
	}
}

// fileLog is a proxy's stdout and stderr: a file the process writes
// itself. A pipe would need a goroutine to copy what the process wrote,
// which on a loaded machine lags behind what the test sees the process do
// (a warning logged before the proxy served was not in Logs yet).
type fileLog struct{ f *os.File }

func newFileLog(dir string) (*fileLog, error) {
	f, err := os.CreateTemp(dir, "authproxy-*.log")
	if err != nil {
		return nil, err
	}
	return &fileLog{f: f}, nil
}

// String is everything written so far.
func (l *fileLog) String() string {
	data, err := os.ReadFile(l.f.Name())
	if err != nil {
		return fmt.Sprintf("(the log %s cannot be read: %v)", l.f.Name(), err)
	}
	return string(data)
}

type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func newLogBuffer() *logBuffer { return &logBuffer{} }

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
