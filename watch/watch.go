package watch

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

const (
	defaultDebounce = 200 * time.Millisecond
	defaultRecheck  = 10 * time.Second
	// retryInterval is how often a vanished directory is polled until it
	// exists again; short, because a reload is pending meanwhile.
	retryInterval = 250 * time.Millisecond
	// k8sDataLink is the symlink a Kubernetes ConfigMap or Secret volume
	// swaps atomically on update: every file in the volume resolves through it.
	k8sDataLink = "..data"
)

// Options tunes a Watcher. The zero value is usable.
type Options struct {
	// Debounce is the quiet period after the last event before onChange
	// runs (default 200ms).
	Debounce time.Duration
	// Recheck is the interval of the content-hash safety net (default 10s;
	// negative disables it).
	Recheck time.Duration
	// Logger receives warnings about lost watches and event errors
	// (default slog.Default()).
	Logger *slog.Logger
}

// Watcher calls a function after a watched file may have changed.
// Create it with New, register files with Add, then call Run once.
type Watcher struct {
	fs       *fsnotify.Watcher
	debounce time.Duration
	recheck  time.Duration
	log      *slog.Logger

	closed atomic.Bool // set under mu; read without it in callbacks
	wg     sync.WaitGroup

	mu   sync.Mutex
	dirs map[string]*dirState // by absolute directory path
}

type dirState struct {
	entries []*entry
	lost    bool // the directory watch is gone; Run polls to re-add it
}

type entry struct {
	path     string // absolute
	base     string
	onChange func()
	timer    *time.Timer // debounce timer; guarded by Watcher.mu

	mu      sync.Mutex
	running bool   // onChange is executing
	pending bool   // another call was requested while running
	digest  digest // content at the last call (or at Add)
}

// digest identifies a file's content; the zero value means missing or
// unreadable, so a file that disappears and comes back counts as changed.
type digest struct {
	sum     [sha256.Size]byte
	present bool
}

// New returns a Watcher; it holds an inotify (or platform) handle until Run
// returns.
func New(opts Options) (*Watcher, error) {
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch: create fsnotify watcher: %w", err)
	}
	w := &Watcher{
		fs:       fsw,
		debounce: opts.Debounce,
		recheck:  opts.Recheck,
		log:      opts.Logger,
		dirs:     make(map[string]*dirState),
	}
	if w.debounce <= 0 {
		w.debounce = defaultDebounce
	}
	if w.recheck == 0 {
		w.recheck = defaultRecheck
	}
	if w.log == nil {
		w.log = slog.Default()
	}
	return w, nil
}

// Add watches path (through its directory) and calls onChange, debounced,
// after it may have changed. The directory must exist now. The same path may
// be added several times; each registration gets its own calls.
func (w *Watcher) Add(path string, onChange func()) error {
	if onChange == nil {
		return fmt.Errorf("watch %s: nil onChange", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("watch %s: %w", path, err)
	}
	e := &entry{path: abs, base: filepath.Base(abs), onChange: onChange, digest: hashFile(abs)}
	dir := filepath.Dir(abs)

	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed.Load() {
		return fmt.Errorf("watch %s: watcher is closed", path)
	}
	d := w.dirs[dir]
	if d == nil {
		if err := w.fs.Add(dir); err != nil {
			return fmt.Errorf("watch %s: watch directory %s: %w", path, dir, err)
		}
		d = &dirState{}
		w.dirs[dir] = d
	}
	d.entries = append(d.entries, e)
	return nil
}

// Run dispatches events until ctx is done, then closes the fsnotify handle,
// cancels pending calls and waits for running ones. Call it once.
func (w *Watcher) Run(ctx context.Context) {
	defer w.shutdown()

	var recheckC <-chan time.Time
	if w.recheck > 0 {
		t := time.NewTicker(w.recheck)
		defer t.Stop()
		recheckC = t.C
	}
	// The retry ticker only exists while a directory is lost.
	var retry *time.Ticker
	var retryC <-chan time.Time
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()

	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			w.handleEvent(ev)
		case err, ok := <-w.fs.Errors:
			if !ok {
				return
			}
			// Events may have been dropped (overflow): assume everything changed.
			w.log.Warn("file watch error; rechecking all watched files", "err", err)
			w.checkWatches()
			w.scheduleAll()
		case <-recheckC:
			w.checkWatches()
			w.rehash()
		case <-retryC:
			w.retryLost()
		}

		lost := w.anyLost()
		switch {
		case lost && retry == nil:
			retry = time.NewTicker(retryInterval)
			retryC = retry.C
		case !lost && retry != nil:
			retry.Stop()
			retry, retryC = nil, nil
		}
	}
}

func (w *Watcher) handleEvent(ev fsnotify.Event) {
	if !ev.Has(fsnotify.Create | fsnotify.Write | fsnotify.Rename | fsnotify.Remove) {
		return // Chmod only: content unchanged
	}
	name := filepath.Clean(ev.Name)

	w.mu.Lock()
	defer w.mu.Unlock()
	if d := w.dirs[name]; d != nil && ev.Has(fsnotify.Remove|fsnotify.Rename) {
		// The watched directory itself went away; the kernel watch is dead.
		if !d.lost {
			w.log.Warn("watched directory disappeared; waiting for it to come back", "dir", name)
			d.lost = true
			_ = w.fs.Remove(name) // usually already dropped by fsnotify
		}
		return
	}
	d := w.dirs[filepath.Dir(name)]
	if d == nil {
		return
	}
	base := filepath.Base(name)
	for _, e := range d.entries {
		if base == e.base || base == k8sDataLink {
			w.schedule(e)
		}
	}
}

// checkWatches marks directories whose kernel watch was dropped behind our
// back (unmount, IN_IGNORED) as lost so Run re-adds them.
func (w *Watcher) checkWatches() {
	active := make(map[string]bool)
	for _, p := range w.fs.WatchList() {
		active[filepath.Clean(p)] = true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for dir, d := range w.dirs {
		if !d.lost && !active[dir] {
			w.log.Warn("directory watch was dropped; re-adding", "dir", dir)
			d.lost = true
		}
	}
}

func (w *Watcher) retryLost() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for dir, d := range w.dirs {
		if !d.lost {
			continue
		}
		if err := w.fs.Add(dir); err != nil {
			w.log.Debug("watched directory still missing", "dir", dir, "err", err)
			continue
		}
		w.log.Info("watched directory is back", "dir", dir)
		d.lost = false
		// Files may have been written before the new watch existed.
		for _, e := range d.entries {
			w.schedule(e)
		}
	}
}

func (w *Watcher) anyLost() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, d := range w.dirs {
		if d.lost {
			return true
		}
	}
	return false
}

// rehash fires onChange for every file whose content differs from the
// content seen at its last call.
func (w *Watcher) rehash() {
	for _, e := range w.entries() {
		now := hashFile(e.path)
		e.mu.Lock()
		changed := now != e.digest
		e.mu.Unlock()
		if changed {
			w.log.Info("file content changed without a file event", "path", e.path)
			w.mu.Lock()
			w.schedule(e)
			w.mu.Unlock()
		}
	}
}

func (w *Watcher) scheduleAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, d := range w.dirs {
		for _, e := range d.entries {
			w.schedule(e)
		}
	}
}

func (w *Watcher) entries() []*entry {
	w.mu.Lock()
	defer w.mu.Unlock()
	var all []*entry
	for _, d := range w.dirs {
		all = append(all, d.entries...)
	}
	return all
}

// schedule (re)starts e's debounce timer. Caller holds w.mu.
func (w *Watcher) schedule(e *entry) {
	if w.closed.Load() {
		return
	}
	if e.timer == nil {
		e.timer = time.AfterFunc(w.debounce, func() { w.deliver(e) })
		return
	}
	e.timer.Reset(w.debounce)
}

// deliver runs e.onChange, or, if a call is already running, asks it to run
// once more when done, so calls for one file never overlap and the last
// change is always seen.
func (w *Watcher) deliver(e *entry) {
	w.mu.Lock()
	if w.closed.Load() {
		w.mu.Unlock()
		return
	}
	w.wg.Add(1)
	w.mu.Unlock()
	defer w.wg.Done()

	e.mu.Lock()
	if e.running {
		e.pending = true
		e.mu.Unlock()
		return
	}
	e.running = true
	e.mu.Unlock()

	for {
		d := hashFile(e.path) // before the call: a later change differs from it
		e.mu.Lock()
		e.digest = d
		e.mu.Unlock()

		e.onChange()

		e.mu.Lock()
		if !e.pending || w.closed.Load() {
			e.running, e.pending = false, false
			e.mu.Unlock()
			return
		}
		e.pending = false
		e.mu.Unlock()
	}
}

func (w *Watcher) shutdown() {
	w.mu.Lock()
	w.closed.Store(true)
	for _, d := range w.dirs {
		for _, e := range d.entries {
			if e.timer != nil {
				e.timer.Stop()
			}
		}
	}
	w.mu.Unlock()
	if err := w.fs.Close(); err != nil && !errors.Is(err, fsnotify.ErrClosed) {
		w.log.Warn("close file watcher", "err", err)
	}
	w.wg.Wait()
}

// hashFile returns the SHA-256 of path's content, following symlinks.
func hashFile(path string) digest {
	f, err := os.Open(path)
	if err != nil {
		return digest{}
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return digest{}
	}
	var d digest
	h.Sum(d.sum[:0])
	d.present = true
	return d
}
