package credentials

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultRootPassword is Milvus's default (common.security.defaultRootPassword).
const DefaultRootPassword = "Milvus"

// FileOptions configures OpenFile.
type FileOptions struct {
	// DefaultRootPassword is root's password when OpenFile creates the file;
	// DefaultRootPassword ("Milvus") if empty. Ignored for an existing file.
	DefaultRootPassword string
	// Logger receives the bootstrap warning; slog.Default() if nil.
	Logger *slog.Logger
	// Now stamps the bootstrap root user; time.Now if nil.
	Now func() time.Time
	// MustExist refuses a missing file instead of creating one. A config
	// reload that names a new path sets it: a typo there must not replace
	// every user with a fresh root:Milvus.
	MustExist bool
}

// MaxFileBytes bounds a credential file. Milvus allows 100 users by default;
// 4 MiB holds over ten thousand, while a runaway file is refused before it
// costs seconds of parsing and hundreds of MiB.
const MaxFileBytes = 4 << 20

// readCapped reads a credential file of at most MaxFileBytes.
func readCapped(path string) ([]byte, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	data, err := io.ReadAll(io.LimitReader(file, MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("the file is larger than %d bytes, the limit for a credential file", MaxFileBytes)
	}
	return data, nil
}

// FileStore is a Store backed by one YAML file (format in doc.go).
type FileStore struct {
	path string
	log  *slog.Logger
	now  func() time.Time

	mu  sync.Mutex // serializes Update and Reload
	cur atomic.Pointer[fileState]
}

// fileState is a published Set and the digest of the bytes it came from.
type fileState struct {
	set    *Set
	digest string
}

var _ Store = (*FileStore)(nil)

// OpenFile loads the credential file at path. If the file does not exist it
// is created (mode 0600; the parent directory must exist) with user root,
// opts.DefaultRootPassword and no role. An existing file is never modified
// here; a malformed one is an error naming the file and line.
func OpenFile(path string, opts FileOptions) (*FileStore, error) {
	f := &FileStore{path: path, log: opts.Logger, now: opts.Now}
	if f.log == nil {
		f.log = slog.Default()
	}
	if f.now == nil {
		f.now = time.Now
	}
	data, err := readCapped(path)
	if errors.Is(err, fs.ErrNotExist) {
		if opts.MustExist {
			return nil, fmt.Errorf("load credentials %s: the file does not exist, and only a start creates one (with root's default password); create it first, e.g. with `authproxy user add`", path)
		}
		data, err = f.bootstrap(opts.DefaultRootPassword)
	}
	if err != nil {
		return nil, fmt.Errorf("load credentials %s: %w", path, err)
	}
	set, err := parseFile(data)
	if err != nil {
		return nil, fmt.Errorf("load credentials %s: %w", path, err)
	}
	f.removeStaleTemps()
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		f.log.Warn("credential file is readable by other users; chmod 600 it",
			"path", path, "mode", fi.Mode().Perm().String())
	}
	f.cur.Store(&fileState{set: set, digest: digest(data)})
	return f, nil
}

// staleTempAge is how old a temp file must be before it counts as left by a
// writer that was killed; a live writer's temp file exists for milliseconds.
const staleTempAge = time.Minute

// removeStaleTemps deletes temp files that a killed writer (kill -9 mid
// write) left beside the credential file: they hold hashes. Failures, as on
// a read-only mount, are only logged.
func (f *FileStore) removeStaleTemps() {
	var matches []string
	paths := []string{f.path}
	if t := writeTarget(f.path); t != f.path {
		paths = append(paths, t)
	}
	for _, p := range paths {
		dir, base := filepath.Split(p)
		found, _ := filepath.Glob(filepath.Join(dir, "."+base+".tmp-*"))
		matches = append(matches, found...)
	}
	for _, m := range matches {
		fi, err := os.Lstat(m)
		if err != nil || !fi.Mode().IsRegular() || f.now().Sub(fi.ModTime()) < staleTempAge {
			continue
		}
		if err := os.Remove(m); err != nil {
			f.log.Debug("cannot remove a stale credential temp file", "file", m, "err", err)
			continue
		}
		f.log.Info("removed a temp file left by an interrupted credential write", "file", m)
	}
}

// bootstrap creates the file with root and returns its content. If another
// process creates the file first, that file wins and is returned.
func (f *FileStore) bootstrap(password string) ([]byte, error) {
	if password == "" {
		password = DefaultRootPassword
	}
	if err := ValidatePassword(password); err != nil {
		return nil, fmt.Errorf("default root password: %w", err)
	}
	hash, err := HashPassword(password)
	if err != nil {
		return nil, err
	}
	now := f.now().UTC().Truncate(time.Second)
	set := NewSet()
	// As in Milvus, root holds no role: it passes every check by being
	// root (unless rootShouldBindRole, when it needs a binding like anyone).
	set.PutUser(&User{Name: RootUser, PasswordHash: hash, Created: now, Updated: now})
	data, err := encodeFile(set)
	if err != nil {
		return nil, err
	}
	created, err := writeFile(f.path, data, false)
	if err != nil {
		return nil, err
	}
	if !created {
		return readCapped(f.path)
	}
	f.log.Warn("created credential file with the default root password; change root's password now",
		"path", f.path, "user", RootUser)
	return data, nil
}

// Check reports whether the credential file can still be read. The proxy
// keeps serving its last good state without it, but a restart would find
// no file (and create a fresh one with root's default password), and no
// change can be saved: a readiness check shows it.
func (f *FileStore) Check() error {
	file, err := os.Open(f.path)
	if err != nil {
		return fmt.Errorf("credential file %s cannot be read: %w", f.path, err)
	}
	return file.Close()
}

// Path returns the credential file's path.
func (f *FileStore) Path() string { return f.path }

// Digest returns the hex SHA-256 of the file content the current Set came from.
func (f *FileStore) Digest() string { return f.cur.Load().digest }

// Current implements Store.
func (f *FileStore) Current() *Set { return f.cur.Load().set }

// Update implements Store. It holds an advisory lock (flock) on a file
// beside the credential file from its read to its write, so the proxy and
// every `authproxy user`/`apikey` command serialize their changes: mutate
// always applies to what is on disk then, and no change is lost.
func (f *FileStore) Update(ctx context.Context, mutate func(*Set) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	unlock, err := lockFile(f.path)
	if err != nil {
		return err
	}
	defer unlock()

	base := f.cur.Load()
	data, err := readCapped(f.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Deleted behind our back: the memory copy is the best state left;
		// writing recreates the file.
	case err != nil:
		return fmt.Errorf("update credentials %s: read: %w", f.path, err)
	case digest(data) != base.digest:
		set, err := parseFile(data)
		if err != nil {
			return fmt.Errorf("update credentials %s: file changed on disk and is invalid, fix it first: %w", f.path, err)
		}
		base = &fileState{set: set, digest: digest(data)}
	}

	next := base.set.Clone()
	if err := mutate(next); err != nil {
		return err
	}
	if err := next.validate(); err != nil {
		return fmt.Errorf("update credentials %s: %w", f.path, err)
	}
	out, err := encodeFile(next)
	if err != nil {
		return err
	}
	if _, err := writeFile(writeTarget(f.path), out, true); err != nil {
		return err
	}
	f.cur.Store(&fileState{set: next, digest: digest(out)})
	return nil
}

// lockFile takes the exclusive advisory lock that serializes writers of the
// credential file at path, across processes. The lock file, ".<name>.lock"
// in the same directory, is empty and never removed: removing it would let
// two writers lock two different files.
func lockFile(path string) (unlock func(), err error) {
	dir, base := filepath.Split(path)
	lf, err := os.OpenFile(filepath.Join(dir, "."+base+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, writeError(path, fmt.Errorf("open the lock file: %w", err))
	}
	for {
		err = syscall.Flock(int(lf.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		lf.Close()
		return nil, fmt.Errorf("update credentials %s: lock: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
		lf.Close()
	}, nil
}

// writeTarget is where a write goes: through symlinks to the file they
// name, so a Kubernetes-style layout (credentials.yaml -> ..data/..., with
// ..data swapped by the kubelet) keeps its links and later swaps are
// still seen.
func writeTarget(path string) string {
	if target, err := filepath.EvalSymlinks(path); err == nil {
		return target
	}
	return path
}

// Reload implements Store. A file whose digest equals the current one (such
// as our own last write) is not parsed again and reports changed=false.
func (f *FileStore) Reload(context.Context) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()

	data, err := readCapped(f.path)
	if err != nil {
		return false, fmt.Errorf("reload credentials %s: %w", f.path, err)
	}
	d := digest(data)
	if d == f.cur.Load().digest {
		return false, nil
	}
	set, err := parseFile(data)
	if err != nil {
		return false, fmt.Errorf("reload credentials %s: %w", f.path, err)
	}
	f.cur.Store(&fileState{set: set, digest: d})
	return true, nil
}

func digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// writeFile writes data to path atomically: a reader or a crash sees the old
// content or the new, never a mix. It writes a temp file in the same
// directory, fsyncs it, then renames it over path (replace) or hard-links it
// to path (!replace, which fails if path exists and then reports
// created=false), and fsyncs the directory.
func writeFile(path string, data []byte, replace bool) (created bool, err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return false, writeError(path, err)
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil || !replace {
			os.Remove(tmpName)
		}
	}()
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, writeError(path, err)
	}
	if replace {
		err = os.Rename(tmpName, path)
	} else if err = os.Link(tmpName, path); errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, writeError(path, err)
	}
	// Some filesystems cannot fsync a directory (EINVAL); the rename is done
	// and visible either way.
	if err := syncDir(dir); err != nil && !errors.Is(err, syscall.EINVAL) {
		return false, writeError(path, err)
	}
	return true, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// writeError says why a write failed; refusals by the filesystem wrap
// ErrReadOnly so callers can answer "read-only" rather than "internal error".
func writeError(path string, err error) error {
	if errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("write credentials %s: %w: %w", path, ErrReadOnly, err)
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("write credentials %s: disk full: %w", path, err)
	}
	return fmt.Errorf("write credentials %s: %w", path, err)
}
