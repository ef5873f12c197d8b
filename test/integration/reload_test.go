package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/authproxy/authproxy/credentials"
	"github.com/authproxy/authproxy/test/harness"
)

// credFile renders a credential file with the given users (name -> hash).
func credFile(users map[string]string) []byte {
	var b strings.Builder
	b.WriteString("version: 1\nusers:\n")
	for name, hash := range users {
		role := ""
		if name == "root" {
			role = "\n    roles: [admin]"
		}
		fmt.Fprintf(&b, "  - name: %s\n    passwordHash: %q%s\n", name, hash, role)
	}
	return []byte(b.String())
}

func hashOf(t *testing.T, password string) string {
	t.Helper()
	h, err := credentials.HashPassword(password)
	must(t, err)
	harness.Secret(h)
	return h
}

// writeByRename writes data next to path and renames it over path, as
// editors save.
func writeByRename(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".swp"
	must(t, os.WriteFile(tmp, data, 0o600))
	must(t, os.Rename(tmp, path))
}

func getVersion(ctx context.Context, m milvuspb.MilvusServiceClient, token string) error {
	_, err := m.GetVersion(withToken(ctx, token), &milvuspb.GetVersionRequest{})
	return err
}

func refused(ctx context.Context, m milvuspb.MilvusServiceClient, token string) error {
	if err := getVersion(ctx, m, token); status.Code(err) != codes.Unauthenticated {
		return fmt.Errorf("not refused: %v", err)
	}
	return nil
}

// External edits of the credential file, by plain write, by rename and by a
// Kubernetes ..data swap, take effect within two seconds.
func TestCredentialFileEditedExternally(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	ctx := testCtx(t, 60*time.Second)
	rootHash := hashOf(t, "Milvus")
	must(t, getVersion(ctx, m, "root:Milvus")) // cached from now on

	harness.Password("alice", "alice-pw-1")
	aliceHash := hashOf(t, "alice-pw-1")
	must(t, os.WriteFile(p.CredFile, credFile(map[string]string{"root": rootHash, "alice": aliceHash}), 0o600))
	eventually(t, 2*time.Second, "user added by a plain write", func() error { return getVersion(ctx, m, "alice:alice-pw-1") })

	harness.Password("bob", "bob-pw-1")
	bobHash := hashOf(t, "bob-pw-1")
	writeByRename(t, p.CredFile, credFile(map[string]string{"root": rootHash, "alice": aliceHash, "bob": bobHash}))
	eventually(t, 2*time.Second, "user added by rename-on-save", func() error { return getVersion(ctx, m, "bob:bob-pw-1") })

	// Removed: the next call fails.
	writeByRename(t, p.CredFile, credFile(map[string]string{"root": rootHash, "bob": bobHash}))
	eventually(t, 2*time.Second, "removed user refused", func() error { return refused(ctx, m, "alice:alice-pw-1") })

	// root's password changed outside: the cached old one stops working.
	harness.Password("root", "Changed-outside")
	writeByRename(t, p.CredFile, credFile(map[string]string{"root": hashOf(t, "Changed-outside"), "bob": bobHash}))
	eventually(t, 2*time.Second, "cached old password refused", func() error { return refused(ctx, m, "root:Milvus") })
	must(t, getVersion(ctx, m, "root:Changed-outside"))
}

// The credential file in a Kubernetes Secret volume: updates arrive as a
// ..data symlink swap.
func TestCredentialSecretDataSwap(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	rootHash := hashOf(t, "Milvus")
	swapData(t, secret, "..v1", credFile(map[string]string{"root": rootHash}))
	_, p := startPair(t, harness.Options{Dir: dir, CredFile: filepath.Join(secret, "credentials.yaml")})
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	ctx := testCtx(t, 30*time.Second)
	must(t, getVersion(ctx, m, "root:Milvus"))

	harness.Password("carol", "carol-pw-1")
	swapData(t, secret, "..v2", credFile(map[string]string{"root": rootHash, "carol": hashOf(t, "carol-pw-1")}))
	must(t, os.RemoveAll(filepath.Join(secret, "..v1")))
	eventually(t, 2*time.Second, "user added by a ..data swap", func() error { return getVersion(ctx, m, "carol:carol-pw-1") })
}

// A corrupt file is refused; the old users keep working; the failure shows
// in the log (with the line), the metric and the readiness detail.
func TestCorruptCredentialFileKeepsLastGood(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	ctx := testCtx(t, 30*time.Second)
	rootHash := hashOf(t, "Milvus")
	cases := map[string]struct{ content, want string }{
		"bad yaml":            {"version: 1\nusers:\n  - name: [root\n", "line"},
		"unknown hash format": {"version: 1\nusers:\n  - name: root\n    passwordHash: \"{SHA}abcdef\"\n", "at line 3: unrecognised password hash format"},
		"duplicated user":     {string(credFile(map[string]string{"root": rootHash})) + "  - name: root\n    passwordHash: \"" + rootHash + "\"\n", `at line 6 (first defined at line 3)`},
		"oversized file":      {strings.Repeat("#", 4<<20+1), "larger than 4194304 bytes"},
	}
	for name, c := range cases {
		failures := metricValue(t, p, `authproxy_reloads_total{file="credentials",result="failure"}`)
		logs := strings.Count(p.Logs(), "credential reload refused")
		writeByRename(t, p.CredFile, []byte(c.content))
		// The proxy counts the failure, then logs it; its log reaches
		// the harness through a pipe: both are waited for.
		eventually(t, 10*time.Second, name+" refused and logged", func() error {
			if metricValue(t, p, `authproxy_reloads_total{file="credentials",result="failure"}`) <= failures {
				return fmt.Errorf("failure not counted")
			}
			last := lastLogLine(p.Logs(), "credential reload refused")
			if strings.Count(p.Logs(), "credential reload refused") <= logs || !strings.Contains(last, c.want) {
				return fmt.Errorf("log line %q does not say %q", last, c.want)
			}
			return nil
		})
		if _, ready := p.AdminStatus("/readyz"); !strings.Contains(ready, "credentials") || !strings.Contains(ready, `"ok": false`) {
			t.Errorf("%s: readiness detail does not show the failed reload:\n%s", name, ready)
		}
		must(t, getVersion(ctx, m, "root:Milvus"))
	}
}

// A client calls without pause while the credential file is rewritten 50
// times (alternating plain writes and renames): no call that should
// succeed fails.
func TestCredentialReloadUnderLoad(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	ctx := testCtx(t, 120*time.Second)
	rootHash := hashOf(t, "Milvus")
	harness.Password("steady", "steady-pw-1")
	steadyHash := hashOf(t, "steady-pw-1")
	users := map[string]string{"root": rootHash, "steady": steadyHash}
	writeByRename(t, p.CredFile, credFile(users))
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	eventually(t, 2*time.Second, "steady user loaded", func() error { return getVersion(ctx, m, "steady:steady-pw-1") })

	tokens := []string{"root:Milvus", "steady:steady-pw-1"}
	stopLoad := startLoad(len(tokens), func(w int) error { return getVersion(ctx, m, tokens[w]) })
	for i := range 50 {
		users[fmt.Sprintf("extra_%02d", i)] = steadyHash
		if i%2 == 0 {
			must(t, os.WriteFile(p.CredFile, credFile(users), 0o600))
		} else {
			writeByRename(t, p.CredFile, credFile(users))
		}
		time.Sleep(40 * time.Millisecond)
	}
	eventually(t, 2*time.Second, "the last user loaded", func() error { return getVersion(ctx, m, "extra_49:steady-pw-1") })
	calls, failures, first := stopLoad()
	t.Logf("%d calls during 50 rewrites, %d failed", calls, failures)
	if failures != 0 || calls < 100 {
		t.Fatalf("%d of %d calls failed; first: %v", failures, calls, first)
	}
}

// A user created through the API while the file is edited outside: both
// changes survive (the write applies to the fresh file).
func TestRPCWriteDoesNotLoseExternalEdit(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	ctx := testCtx(t, 30*time.Second)
	data, err := os.ReadFile(p.CredFile)
	must(t, err)
	harness.Password("outside", "outside-pw")
	edited := string(data) + fmt.Sprintf("  - name: outside\n    passwordHash: %q\n", hashOf(t, "outside-pw"))
	// No wait: the RPC may well run before the watcher has reloaded.
	must(t, os.WriteFile(p.CredFile, []byte(edited), 0o600))
	st, err := m.CreateCredential(withToken(ctx, "root:Milvus"), &milvuspb.CreateCredentialRequest{Username: "inside", Password: "UEBzc3cwcmQ="})
	must(t, err)
	if st.GetCode() != 0 {
		t.Fatalf("create: %v", st)
	}
	out := cli(t, p, "", "user", "list")
	if !strings.Contains(out, "outside") || !strings.Contains(out, "inside") {
		t.Fatalf("a change was lost:\n%s", out)
	}
}

// authorizationEnabled and superUsers change live; a bad edit is refused
// with its line; a restart-only key is reported; SIGHUP reloads too.
func TestConfigReload(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	ctx := testCtx(t, 30*time.Second)
	if err := getVersion(ctx, m, "root:wrong-password"); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("auth on: %v", err)
	}
	noToken := func() error { _, err := m.GetVersion(ctx, &milvuspb.GetVersionRequest{}); return err }

	rewriteConfig(t, p, "authorizationEnabled: true", "authorizationEnabled: false")
	eventually(t, 3*time.Second, "authorizationEnabled: false applied", noToken)
	rewriteConfig(t, p, "authorizationEnabled: false", "authorizationEnabled: true")
	eventually(t, 3*time.Second, "authorizationEnabled: true applied", func() error {
		if status.Code(noToken()) != codes.Unauthenticated {
			return fmt.Errorf("call without token still served")
		}
		return nil
	})

	// A bad edit: refused with key and line, counted; the proxy goes on.
	failures := metricValue(t, p, `authproxy_reloads_total{file="config",result="failure"}`)
	rewriteConfig(t, p, "authorizationEnabled: true", "authorizationEnabled: true\n    bogusKey: 1")
	if !p.WaitLog(`unknown key \"bogusKey\"`, 3*time.Second) {
		t.Fatalf("bad config edit not logged with its key:\n%s", p.Logs())
	}
	if !strings.Contains(p.Logs(), "line ") || metricValue(t, p, `authproxy_reloads_total{file="config",result="failure"}`) <= failures {
		t.Fatal("bad config edit: no line number or not counted")
	}
	if status.Code(noToken()) != codes.Unauthenticated {
		t.Fatal("the last good config is not kept")
	}
	rewriteConfig(t, p, "\n    bogusKey: 1", "")

	// A key that needs a restart is reported, not silently ignored.
	rewriteConfig(t, p, fmt.Sprintf("listen: %q", p.Addr), `listen: "127.0.0.1:1"`)
	if !p.WaitLog("needs a restart", 3*time.Second) || !strings.Contains(p.Logs(), "key=listen") {
		t.Fatalf("restart-only change not reported:\n%s", p.Logs())
	}

	// SIGHUP reloads the files.
	before := metricValue(t, p, `authproxy_reloads_total{file="credentials",result="unchanged"}`)
	p.Signal(syscall.SIGHUP)
	eventually(t, 3*time.Second, "SIGHUP reload", func() error {
		if metricValue(t, p, `authproxy_reloads_total{file="credentials",result="unchanged"}`) <= before {
			return fmt.Errorf("no reload counted")
		}
		return nil
	})
}

// The identity header and the credential file path change live.
func TestConfigReloadIdentityHeaderAndCredentialPath(t *testing.T) {
	fake, p := startPair(t, harness.Options{})
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	ctx := testCtx(t, 30*time.Second)
	rewriteConfig(t, p, "shutdown:", "auth:\n  identityHeader: \"x-caller\"\nshutdown:")
	eventually(t, 3*time.Second, "new identity header", func() error {
		fake.Recorder().Reset()
		must(t, getVersion(ctx, m, "root:Milvus"))
		md := fake.Recorder().CallsTo("GetVersion")[0].Metadata
		if u := md.Get("x-caller"); len(u) != 1 || u[0] != "root" || len(md.Get("x-authproxy-user")) != 0 {
			return fmt.Errorf("backend metadata %v", md)
		}
		return nil
	})

	other := filepath.Join(t.TempDir(), "other.yaml")
	harness.Password("elsewhere", "elsewhere-pw")
	must(t, os.WriteFile(other, credFile(map[string]string{"root": hashOf(t, "Milvus"), "elsewhere": hashOf(t, "elsewhere-pw")}), 0o600))
	rewriteConfig(t, p, fmt.Sprintf("file: %q", p.CredFile), fmt.Sprintf("file: %q", other))
	eventually(t, 3*time.Second, "the new credential file in use", func() error { return getVersion(ctx, m, "elsewhere:elsewhere-pw") })
	// And it is watched: an edit of the new file applies too.
	harness.Password("later", "later-pw-1")
	writeByRename(t, other, credFile(map[string]string{"root": hashOf(t, "Milvus"), "later": hashOf(t, "later-pw-1")}))
	eventually(t, 2*time.Second, "edit of the new credential file", func() error { return getVersion(ctx, m, "later:later-pw-1") })
}

// An API write to a credential file behind a ..data symlink writes through
// to the linked file: the links stay, and a later ..data swap is still
// picked up. Before, the write replaced the link with a regular file and
// every later swap was ignored.
func TestAPIWriteKeepsTheDataSymlinks(t *testing.T) {
	dir := t.TempDir()
	vol := filepath.Join(dir, "vol")
	rootHash := hashOf(t, "Milvus")
	swapData(t, vol, "..v1", credFile(map[string]string{"root": rootHash}))
	_, p := startPair(t, harness.Options{Dir: dir, CredFile: filepath.Join(vol, "credentials.yaml")})
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	ctx := testCtx(t, 30*time.Second)

	st, err := m.CreateCredential(withToken(ctx, "root:Milvus"), &milvuspb.CreateCredentialRequest{Username: "dave", Password: b64("dave-pw-1")})
	harness.Password("dave", "dave-pw-1")
	if err != nil || st.GetCode() != 0 {
		t.Fatalf("create dave: %v %v", st, err)
	}
	if fi, err := os.Lstat(filepath.Join(vol, "credentials.yaml")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the API write replaced the symlink (%v)", err)
	}
	data, _ := os.ReadFile(filepath.Join(vol, "..v1", "credentials.yaml"))
	if !strings.Contains(string(data), "name: dave") {
		t.Fatalf("the linked file lacks dave:\n%s", data)
	}

	harness.Password("carol", "carol-pw-1")
	swapData(t, vol, "..v2", credFile(map[string]string{"root": rootHash, "carol": hashOf(t, "carol-pw-1")}))
	eventually(t, 3*time.Second, "user added by a ..data swap after an API write", func() error { return getVersion(ctx, m, "carol:carol-pw-1") })
}

// swapData lays out credentials.yaml in vol as the kubelet does for a
// Secret: the file in the version directory, ..data pointing at it
// (swapped atomically when it exists), credentials.yaml -> ..data/.
func swapData(t *testing.T, vol, version string, content []byte) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Join(vol, version), 0o700))
	must(t, os.WriteFile(filepath.Join(vol, version, "credentials.yaml"), content, 0o600))
	must(t, os.Symlink(version, filepath.Join(vol, "..data_tmp")))
	must(t, os.Rename(filepath.Join(vol, "..data_tmp"), filepath.Join(vol, "..data")))
	if _, err := os.Lstat(filepath.Join(vol, "credentials.yaml")); err != nil {
		must(t, os.Symlink("..data/credentials.yaml", filepath.Join(vol, "credentials.yaml")))
	}
}
