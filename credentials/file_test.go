package credentials

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func testLogger() (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return slog.New(slog.NewTextHandler(&buf, nil)), &buf
}

func openTest(t *testing.T, path string) *FileStore {
	t.Helper()
	logger, _ := testLogger()
	s, err := OpenFile(path, FileOptions{DefaultRootPassword: "rootpass1", Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func addUser(name string) func(*Set) error {
	return func(s *Set) error {
		s.PutUser(&User{Name: name, PasswordHash: testArgon})
		return nil
	}
}

func userNames(s *Set) []string {
	var names []string
	for _, u := range s.Users() {
		names = append(names, u.Name)
	}
	return names
}

// appendUser edits the file by hand, as an operator would.
func appendUser(t *testing.T, path, name string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "  - name: %s\n    passwordHash: %q\n", name, testBcrypt); err != nil {
		t.Fatal(err)
	}
}

func TestOpenFileBootstrap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials.yaml")
	logger, logs := testLogger()
	now := time.Date(2026, 11, 22, 5, 0, 0, 123, time.UTC)
	s, err := OpenFile(path, FileOptions{DefaultRootPassword: "S3cret-Root", Logger: logger, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stat: %v mode %v, want 0600", err, fi.Mode())
	}
	root, ok := s.Current().User(RootUser)
	if !ok || len(root.Roles) != 0 || !root.Created.Equal(now.Truncate(time.Second)) {
		t.Fatalf("root = %+v", root)
	}
	if !strings.HasPrefix(root.PasswordHash, "$argon2id$v=19$m=19456,t=2,p=1$") || !VerifyPassword(root.PasswordHash, "S3cret-Root") {
		t.Fatal("root's hash is not a production argon2id hash of the default password")
	}
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), "S3cret-Root") || s.Digest() != digest(data) {
		t.Fatal("file holds the plaintext password or Digest() is wrong")
	}
	out := logs.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "change root's password") || strings.Contains(out, "S3cret-Root") {
		t.Fatalf("bootstrap log = %q, want a warning without the password", out)
	}
}

func TestOpenFileDefaultRootPassword(t *testing.T) {
	cheapHashing(t)
	s := openTestWith(t, filepath.Join(t.TempDir(), "c.yaml"), "")
	root, _ := s.Current().User(RootUser)
	if !VerifyPassword(root.PasswordHash, "Milvus") {
		t.Fatal("default root password is not Milvus")
	}
}

func openTestWith(t *testing.T, path, rootPassword string) *FileStore {
	t.Helper()
	logger, _ := testLogger()
	s, err := OpenFile(path, FileOptions{DefaultRootPassword: rootPassword, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOpenFileKeepsExistingRoot(t *testing.T) {
	cheapHashing(t)
	path := filepath.Join(t.TempDir(), "c.yaml")
	h, _ := HashPassword("original1")
	content := "version: 1\nusers:\n  - name: root\n    passwordHash: " + h + "\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	logger, logs := testLogger()
	s, err := OpenFile(path, FileOptions{DefaultRootPassword: "replacement", Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	root, _ := s.Current().User(RootUser)
	if !VerifyPassword(root.PasswordHash, "original1") {
		t.Fatal("existing root was overwritten")
	}
	if data, _ := os.ReadFile(path); string(data) != content || logs.Len() != 0 {
		t.Fatalf("open changed the file or logged %q", logs)
	}
}

func TestOpenFileErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenFile(filepath.Join(dir, "missing", "c.yaml"), FileOptions{}); err == nil {
		t.Fatal("OpenFile created a file in a missing directory")
	}
	path := filepath.Join(dir, "bad.yaml")
	os.WriteFile(path, []byte("version: 1\nusers:\n  - name: root\n    passwordHash: x\n    colour: blue\n"), 0o600)
	_, err := OpenFile(path, FileOptions{})
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "line 5") {
		t.Fatalf("OpenFile(malformed) = %v, want file and line", err)
	}
	if _, err := OpenFile(filepath.Join(dir, "x.yaml"), FileOptions{DefaultRootPassword: "short"}); err == nil ||
		!strings.Contains(err.Error(), "invalid password length") {
		t.Fatalf("OpenFile with a 5-byte root password = %v", err)
	}
}

func TestUpdatePersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	cheapHashing(t)
	s := openTest(t, path)
	key, _ := NewAPIKey()
	err := s.Update(context.Background(), func(set *Set) error {
		set.PutUser(&User{Name: "alice", PasswordHash: testArgon, Roles: []string{RolePublic}})
		return set.PutAPIKey(&APIKey{Name: "ci", User: "alice", Digest: APIKeyDigest(key)})
	})
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode after update %v", fi.Mode())
	}
	again := openTest(t, path)
	if !slices.Equal(userNames(again.Current()), []string{"alice", "root"}) {
		t.Fatalf("reopened users = %v", userNames(again.Current()))
	}
	if k, ok := again.Current().APIKeyByDigest(APIKeyDigest(key)); !ok || k.User != "alice" {
		t.Fatal("api key not persisted")
	}
	if again.Digest() != s.Digest() {
		t.Fatal("digest of the written file differs from the store's")
	}
}

func TestUpdateFailureChangesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	cheapHashing(t)
	s := openTest(t, path)
	before, beforeData := s.Current(), mustRead(t, path)
	boom := errors.New("boom")
	err := s.Update(context.Background(), func(set *Set) error {
		set.PutUser(&User{Name: "alice", PasswordHash: testArgon})
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want mutate's error", err)
	}
	err = s.Update(context.Background(), addUser("9bad"))
	if err == nil || !strings.Contains(err.Error(), "first character must be a letter") {
		t.Fatalf("Update with an invalid name = %v", err)
	}
	if s.Current() != before || !bytes.Equal(mustRead(t, path), beforeData) {
		t.Fatal("failed Update changed memory or disk")
	}
	if _, ok := before.User("alice"); ok {
		t.Fatal("mutate modified the published Set")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestConcurrentUpdates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	cheapHashing(t)
	s := openTest(t, path)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for g := range 20 {
		wg.Go(func() {
			for i := range 10 {
				errs <- s.Update(context.Background(), addUser(fmt.Sprintf("g%02du%02d", g, i)))
				_ = len(s.Current().Users()) // concurrent reader
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	onDisk := openTest(t, path).Current()
	if n := len(onDisk.Users()); n != 201 {
		t.Fatalf("%d users on disk, want 200 and root", n)
	}
}

func TestExternalEditBetweenUpdatesIsKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	cheapHashing(t)
	s := openTest(t, path)
	if err := s.Update(context.Background(), addUser("alice")); err != nil {
		t.Fatal(err)
	}
	appendUser(t, path, "edited")
	if err := s.Update(context.Background(), addUser("bob")); err != nil {
		t.Fatal(err)
	}
	want := []string{"alice", "bob", "edited", "root"}
	if got := userNames(openTest(t, path).Current()); !slices.Equal(got, want) {
		t.Fatalf("on disk %v, want %v", got, want)
	}
	if got := userNames(s.Current()); !slices.Equal(got, want) {
		t.Fatalf("in memory %v, want %v", got, want)
	}

	// Another process's store on the same file: neither loses the other's users.
	other := openTest(t, path)
	if err := other.Update(context.Background(), addUser("carol")); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(context.Background(), addUser("dave")); err != nil {
		t.Fatal(err)
	}
	if got := userNames(s.Current()); !slices.Contains(got, "carol") || !slices.Contains(got, "dave") {
		t.Fatalf("users %v, want carol and dave", got)
	}
}

func TestReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	cheapHashing(t)
	s := openTest(t, path)
	if changed, err := s.Reload(context.Background()); changed || err != nil {
		t.Fatalf("Reload of an unchanged file = %v, %v", changed, err)
	}
	if err := s.Update(context.Background(), addUser("alice")); err != nil {
		t.Fatal(err)
	}
	if changed, err := s.Reload(context.Background()); changed || err != nil {
		t.Fatalf("Reload after our own write = %v, %v; want false, nil", changed, err)
	}
	appendUser(t, path, "edited")
	if changed, err := s.Reload(context.Background()); !changed || err != nil {
		t.Fatalf("Reload after an external edit = %v, %v", changed, err)
	}
	if _, ok := s.Current().User("edited"); !ok {
		t.Fatal("Reload did not publish the edit")
	}
}

func TestReloadCorruptKeepsOldSet(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	cheapHashing(t)
	s := openTest(t, path)
	before, beforeDigest := s.Current(), s.Digest()
	lines := strings.Count(string(mustRead(t, path)), "\n")
	appendUser(t, path, "root") // duplicate of the bootstrap root
	changed, err := s.Reload(context.Background())
	want := fmt.Sprintf(`duplicate user "root" at line %d`, lines+1)
	if changed || err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Reload = %v, %v; want an error naming %s and %q", changed, err, path, want)
	}
	if s.Current() != before || s.Digest() != beforeDigest {
		t.Fatal("a failed Reload replaced the Set")
	}
	err = s.Update(context.Background(), addUser("alice"))
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Update over an invalid file = %v, want refusal naming the problem", err)
	}
	if s.Current() != before {
		t.Fatal("refused Update changed memory")
	}
}

// readOnlyScenario makes the directory of a credential file unwritable and
// checks that Update fails with ErrReadOnly and changes nothing. It needs a
// non-root user: root ignores directory permissions.
func readOnlyScenario(dir string) error {
	hashParams = argon2Params{memory: 64, time: 1, threads: 1, saltLen: 16, keyLen: 32}
	path := filepath.Join(dir, "c.yaml")
	s, err := OpenFile(path, FileOptions{DefaultRootPassword: "rootpass1", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o500); err != nil {
		return err
	}
	defer os.Chmod(dir, 0o700)
	before, beforeData := s.Current(), mustReadErr(path)
	err = s.Update(context.Background(), addUser("alice"))
	if !errors.Is(err, ErrReadOnly) || !errors.Is(err, syscall.EACCES) || !strings.Contains(err.Error(), "read-only") {
		return fmt.Errorf("Update in a read-only directory = %v, want ErrReadOnly", err)
	}
	if s.Current() != before || !bytes.Equal(mustReadErr(path), beforeData) {
		return errors.New("failed Update changed memory or disk")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		return fmt.Errorf("directory holds %d entries, want only the credential file", len(entries))
	}
	return nil
}

func mustReadErr(path string) []byte {
	data, _ := os.ReadFile(path)
	return data
}

func TestUpdateReadOnlyDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		if err := readOnlyScenario(t.TempDir()); err != nil {
			t.Fatal(err)
		}
		return
	}
	// As root, run the scenario in a copy of this test binary as user nobody.
	const nobody = 65534
	base, err := os.MkdirTemp("", "credentials-ro-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "credentials.test")
	if err := os.WriteFile(bin, mustRead(t, self), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "store")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{os.Chmod(base, 0o755), os.Chown(dir, nobody, nobody)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), childRoleEnv+"=readonly", childPathEnv+"="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("read-only child: %v: %s", err, out)
	}
}

func TestWriteFileFailureRemovesTemp(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "c.yaml")
	// A non-empty directory at the target makes the rename fail, even as root.
	if err := os.MkdirAll(filepath.Join(target, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := writeFile(target, []byte("version: 1\n"), true); err == nil || !strings.Contains(err.Error(), "write credentials "+target) {
		t.Fatalf("writeFile over a directory = %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temp file left behind: %d entries", len(entries))
	}
}

// crashWriterChild adds users u00001, u00002, ... to the file at path, one
// Update each, and prints "ok N" after each returns, until it is killed.
func crashWriterChild(path string) {
	hashParams = argon2Params{memory: 64, time: 1, threads: 1, saltLen: 16, keyLen: 32}
	s, err := OpenFile(path, FileOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	for n := len(s.Current().Users()); ; n++ {
		if err := s.Update(context.Background(), addUser(fmt.Sprintf("u%05d", n))); err != nil {
			fmt.Println("update:", err)
			os.Exit(1)
		}
		fmt.Println("ok", n)
	}
}

// TestCrashSafety kills a writing process at random moments and checks that
// the file always parses and holds every acknowledged write, plus at most
// the one in flight.
func TestCrashSafety(t *testing.T) {
	cheapHashing(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	openTest(t, path)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	acked := 0 // users beyond root that a child reported written
	for iter := range 20 {
		cmd := exec.Command(self)
		cmd.Env = append(os.Environ(), childRoleEnv+"=writer", childPathEnv+"="+path)
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(20+rand.IntN(250)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		out, _ := io.ReadAll(stdout)
		cmd.Wait()
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "ok "))
			if err != nil {
				t.Fatalf("child: %s", out)
			}
			acked = max(acked, n)
		}
		set, err := parseFile(mustRead(t, path))
		if err != nil {
			t.Fatalf("iteration %d: file does not parse after SIGKILL: %v", iter, err)
		}
		names := slices.DeleteFunc(userNames(set), func(n string) bool { return n == RootUser })
		n := len(names)
		if n != acked && n != acked+1 {
			t.Fatalf("iteration %d: %d users on disk, %d acknowledged", iter, n, acked)
		}
		for i, name := range names {
			if name != fmt.Sprintf("u%05d", i+1) {
				t.Fatalf("iteration %d: user %d is %q: not a complete version", iter, i, name)
			}
		}
		acked = n
	}
	if acked == 0 {
		t.Fatal("the writer never completed an update")
	}
	t.Logf("%d versions written across 20 kills", acked)
}

// Temp files a killed writer left behind are removed at open once they are
// old; a fresh one (a writer at work right now) is left alone.
func TestOpenFileRemovesStaleTemps(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "credentials.yaml")
	openTest(t, path)
	stale := filepath.Join(dir, ".credentials.yaml.tmp-111")
	fresh := filepath.Join(dir, ".credentials.yaml.tmp-222")
	other := filepath.Join(dir, ".other.yaml.tmp-333")
	for _, p := range []string{stale, fresh, other} {
		if err := os.WriteFile(p, []byte("users: []\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Minute)
	for _, p := range []string{stale, other} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	openTest(t, path)
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale temp file kept: %v", err)
	}
	for _, p := range []string{fresh, other} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}
}

// A runaway credential file is refused before it is parsed, at start and on
// reload, and the last good set stays in force.
func TestOversizedFileRefused(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, bytes.Repeat([]byte("#"), MaxFileBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	logger, _ := testLogger()
	if _, err := OpenFile(big, FileOptions{Logger: logger}); err == nil || !strings.Contains(err.Error(), "larger than 4194304 bytes") || !strings.Contains(err.Error(), big) {
		t.Fatalf("OpenFile of an oversized file: %v", err)
	}

	path := filepath.Join(dir, "c.yaml")
	cheapHashing(t)
	s := openTest(t, path)
	before := s.Current()
	if err := os.WriteFile(path, bytes.Repeat([]byte("#"), MaxFileBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if changed, err := s.Reload(context.Background()); changed || err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("Reload of an oversized file = %v, %v", changed, err)
	}
	if s.Current() != before {
		t.Fatal("a refused reload replaced the set")
	}
}

// MustExist never creates a file: a reload naming a wrong path must not
// bring up a fresh root:Milvus store.
func TestMustExistRefusesMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.yaml")
	logger, _ := testLogger()
	_, err := OpenFile(path, FileOptions{Logger: logger, MustExist: true})
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), path) {
		t.Fatalf("OpenFile(MustExist) of a missing file: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the file was created: %v", err)
	}
}
