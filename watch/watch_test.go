package watch

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// counter records onChange calls and detects overlapping calls.
type counter struct {
	calls   atomic.Int32
	active  atomic.Int32
	overlap atomic.Bool
	ch      chan struct{}
}

func newCounter() *counter { return &counter{ch: make(chan struct{}, 100)} }

func (c *counter) onChange() {
	if c.active.Add(1) > 1 {
		c.overlap.Store(true)
	}
	c.calls.Add(1)
	c.active.Add(-1)
	c.ch <- struct{}{}
}

// waitCall fails the test unless onChange runs within d.
func (c *counter) waitCall(t *testing.T, d time.Duration, what string) {
	t.Helper()
	select {
	case <-c.ch:
	case <-time.After(d):
		t.Fatalf("%s: no onChange within %v", what, d)
	}
}

// quiet fails the test if onChange runs within d.
func (c *counter) quiet(t *testing.T, d time.Duration, what string) {
	t.Helper()
	select {
	case <-c.ch:
		t.Fatalf("%s: unexpected onChange", what)
	case <-time.After(d):
	}
}

func testLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// start runs w until the test ends and checks that Run returned.
func start(t *testing.T, w *Watcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
}

func newWatcher(t *testing.T, opts Options) *Watcher {
	t.Helper()
	if opts.Debounce == 0 {
		opts.Debounce = 50 * time.Millisecond
	}
	opts.Logger = testLogger()
	w, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPlainWrite(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "users.yaml")
	other := filepath.Join(dir, "other.yaml")
	writeFile(t, file, "a")
	writeFile(t, other, "a")
	w := newWatcher(t, Options{})
	c := newCounter()
	if err := w.Add(file, c.onChange); err != nil {
		t.Fatal(err)
	}
	start(t, w)

	writeFile(t, other, "b") // same directory, other name: ignored
	c.quiet(t, 200*time.Millisecond, "write to another file")
	writeFile(t, file, "b")
	c.waitCall(t, 2*time.Second, "plain write")
	if err := os.Chmod(file, 0o600); err != nil {
		t.Fatal(err)
	}
	c.quiet(t, 200*time.Millisecond, "chmod")
}

func TestRenameOnSave(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "config.yaml")
	writeFile(t, file, "v1")
	w := newWatcher(t, Options{})
	c := newCounter()
	if err := w.Add(file, c.onChange); err != nil {
		t.Fatal(err)
	}
	start(t, w)

	for i := range 3 { // several saves: the watch must survive each
		tmp := filepath.Join(dir, ".config.yaml.swp")
		writeFile(t, tmp, fmt.Sprintf("v%d", i+2))
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
		c.waitCall(t, 2*time.Second, fmt.Sprintf("rename-on-save %d", i))
	}
}

func TestKubernetesDataSwap(t *testing.T) {
	dir := t.TempDir()
	mkVersion := func(name, content string) {
		t.Helper()
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, name, "creds.yaml"), content)
	}
	symlink := func(target, name string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	old := "..2026_11_22_05_00_00.123"
	mkVersion(old, "v1")
	symlink(old, "..data")
	symlink("..data/creds.yaml", "creds.yaml")

	w := newWatcher(t, Options{})
	c := newCounter()
	file := filepath.Join(dir, "creds.yaml")
	if err := w.Add(file, c.onChange); err != nil {
		t.Fatal(err)
	}
	start(t, w)

	// The kubelet's atomic writer sequence.
	next := "..2026_11_22_05_10_00.456"
	mkVersion(next, "v2")
	symlink(next, "..data_tmp")
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
		t.Fatal(err)
	}
	c.waitCall(t, 2*time.Second, "..data swap")
	got, err := os.ReadFile(file)
	if err != nil || string(got) != "v2" {
		t.Fatalf("after swap read %q, %v; want v2", got, err)
	}
}

func TestBurstIsDebounced(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "burst.yaml")
	writeFile(t, file, "0")
	w := newWatcher(t, Options{Debounce: 100 * time.Millisecond})
	c := newCounter()
	if err := w.Add(file, c.onChange); err != nil {
		t.Fatal(err)
	}
	start(t, w)

	// A loaded machine can pause the writer for longer than the debounce:
	// each such pause may end a burst and start another.
	pauses := 0
	last := time.Now()
	for i := range 20 {
		writeFile(t, file, fmt.Sprint(i))
		if now := time.Now(); now.Sub(last) >= 100*time.Millisecond {
			pauses++
		}
		last = time.Now()
		time.Sleep(2 * time.Millisecond)
	}
	c.waitCall(t, 2*time.Second, "burst")
	time.Sleep(300 * time.Millisecond) // longer than the debounce: late calls would show
	if n := c.calls.Load(); n < 1 || n > int32(3+pauses) {
		t.Fatalf("burst of 20 writes (%d paused longer than the debounce) gave %d calls, want 1 to %d", pauses, n, 3+pauses)
	}
	if c.overlap.Load() {
		t.Fatal("onChange calls overlapped")
	}
}

func TestCallsNeverOverlap(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "slow.yaml")
	writeFile(t, file, "0")
	w := newWatcher(t, Options{Debounce: 10 * time.Millisecond})
	var active, maxActive, calls atomic.Int32
	if err := w.Add(file, func() {
		if n := active.Add(1); n > maxActive.Load() {
			maxActive.Store(n)
		}
		time.Sleep(100 * time.Millisecond) // longer than the debounce
		calls.Add(1)
		active.Add(-1)
	}); err != nil {
		t.Fatal(err)
	}
	start(t, w)

	for i := range 5 {
		writeFile(t, file, fmt.Sprint(i))
		time.Sleep(40 * time.Millisecond)
	}
	deadline := time.Now().Add(3 * time.Second)
	for calls.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if calls.Load() < 2 {
		t.Fatalf("got %d calls, want at least 2 (one pending rerun)", calls.Load())
	}
	if maxActive.Load() != 1 {
		t.Fatalf("%d concurrent onChange calls, want 1", maxActive.Load())
	}
}

// TestRecheckWithoutEvents changes the content of a watched symlink's target
// in a directory that is not watched: no event reaches the watcher, only the
// periodic content hash can notice.
func TestRecheckWithoutEvents(t *testing.T) {
	watched, elsewhere := t.TempDir(), t.TempDir()
	target := filepath.Join(elsewhere, "real.pem")
	writeFile(t, target, "v1")
	link := filepath.Join(watched, "server.pem")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}

	// Control: without the recheck nothing fires.
	w0 := newWatcher(t, Options{Recheck: -1})
	c0 := newCounter()
	if err := w0.Add(link, c0.onChange); err != nil {
		t.Fatal(err)
	}
	start(t, w0)

	w := newWatcher(t, Options{Recheck: 100 * time.Millisecond})
	c := newCounter()
	if err := w.Add(link, c.onChange); err != nil {
		t.Fatal(err)
	}
	start(t, w)
	c.quiet(t, 300*time.Millisecond, "recheck with unchanged content")

	writeFile(t, target, "v2")
	c.waitCall(t, 2*time.Second, "recheck")
	c.quiet(t, 300*time.Millisecond, "recheck after the digest was recorded")
	if n := c0.calls.Load(); n != 0 {
		t.Fatalf("watcher without recheck fired %d times; the test does not prove what it claims", n)
	}
}

func TestDirectoryRemovedAndRecreated(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "conf")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "users.yaml")
	writeFile(t, file, "v1")
	w := newWatcher(t, Options{Recheck: -1})
	c := newCounter()
	if err := w.Add(file, c.onChange); err != nil {
		t.Fatal(err)
	}
	start(t, w)

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	c.waitCall(t, 2*time.Second, "file removed with its directory")
	time.Sleep(100 * time.Millisecond) // let the watcher see the directory go
	drain(c)

	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c.waitCall(t, 2*time.Second, "directory recreated")
	drain(c)
	// The new watch delivers events again.
	writeFile(t, file, "v2")
	c.waitCall(t, 2*time.Second, "write after the directory came back")
}

func drain(c *counter) {
	for {
		select {
		case <-c.ch:
		default:
			return
		}
	}
}

func TestAddErrors(t *testing.T) {
	w := newWatcher(t, Options{})
	if err := w.Add(filepath.Join(t.TempDir(), "nodir", "x.yaml"), func() {}); err == nil {
		t.Fatal("Add in a missing directory: want error")
	}
	if err := w.Add(filepath.Join(t.TempDir(), "x.yaml"), nil); err == nil {
		t.Fatal("Add with nil onChange: want error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w.Run(ctx)
	if err := w.Add(filepath.Join(t.TempDir(), "x.yaml"), func() {}); err == nil {
		t.Fatal("Add after Run returned: want error")
	}
}

func TestRunReleasesGoroutines(t *testing.T) {
	base := runtime.NumGoroutine()
	dir := t.TempDir()
	file := filepath.Join(dir, "a.yaml")
	writeFile(t, file, "a")
	w := newWatcher(t, Options{Recheck: 50 * time.Millisecond})
	c := newCounter()
	if err := w.Add(file, c.onChange); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	writeFile(t, file, "b")
	c.waitCall(t, 2*time.Second, "write")
	writeFile(t, file, "c") // leave a debounce timer pending at cancel
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base {
		t.Fatalf("%d goroutines after Run returned, %d before", n, base)
	}
	time.Sleep(100 * time.Millisecond)
	drain(c)
	writeFile(t, file, "d")
	c.quiet(t, 200*time.Millisecond, "write after Run returned")
}
