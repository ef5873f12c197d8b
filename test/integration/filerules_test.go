package integration

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"

	"github.com/authproxy/authproxy/test/harness"
)

// The credentials readiness check goes red while the credential file cannot
// be read (the proxy still serves its last good users, but could save no
// change and a restart would bootstrap a fresh root:Milvus), and green again
// once the file is back.
func TestReadinessFailsWhileCredentialFileIsGone(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	ctx := testCtx(t, 30*time.Second)
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	eventually(t, 5*time.Second, "ready", func() error {
		if code, body := p.AdminStatus("/readyz"); code != 200 {
			return fmt.Errorf("/readyz %d:\n%s", code, body)
		}
		return nil
	})

	aside := p.CredFile + ".aside"
	must(t, os.Rename(p.CredFile, aside))
	code, body := p.AdminStatus("/readyz")
	if code != 503 || !strings.Contains(body, `"credentials"`) || !strings.Contains(body, "cannot be read") {
		t.Fatalf("credential file gone: /readyz %d, want 503 naming the credentials check:\n%s", code, body)
	}
	// The last good users keep working meanwhile.
	must(t, getVersion(ctx, m, "root:Milvus"))

	must(t, os.Rename(aside, p.CredFile))
	eventually(t, 5*time.Second, "ready again", func() error {
		if code, body := p.AdminStatus("/readyz"); code != 200 {
			return fmt.Errorf("/readyz %d:\n%s", code, body)
		}
		return nil
	})
}

// clientAuth none with a clientCAFile would look like mutual TLS and check
// nothing. Config validation and the TLS loader apply one rule: the start and
// a live reload refuse it with the same message, naming the config key.
func TestClientAuthNoneWithCAFileRefused(t *testing.T) {
	dir := t.TempDir()
	k := newPKI(t, filepath.Join(dir, "tls"), "root")
	bad := tlsSection(k.dir, "none", "") + fmt.Sprintf("  clientAuth: none\n  clientCAFile: %q\n", filepath.Join(k.dir, "ca.pem"))
	const want = `tls.clientAuth: client auth "none" with client CA file`

	// At start.
	path := filepath.Join(dir, "start.yaml")
	must(t, os.WriteFile(path, []byte(fmt.Sprintf("listen: %q\nbackend:\n  address: \"127.0.0.1:1\"\ncredentials:\n  file: %q\nadmin:\n  listen: %q\n%s",
		harness.FreeAddr(t), filepath.Join(dir, "start-credentials.yaml"), harness.FreeAddr(t), bad)), 0o600))
	cmd := exec.Command(harness.Binary(t), "serve", "--config", path)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("proxy started or exited 0: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), want) {
		t.Errorf("start refusal %q does not say %q", out, want)
	}
	// Refused by validation, before anything is opened or created.
	if _, err := os.Stat(filepath.Join(dir, "start-credentials.yaml")); err == nil {
		t.Error("the refused start created a credential file")
	}

	// At a reload of a running TLS proxy: refused, the old TLS stays.
	_, p := startPair(t, harness.Options{Dir: dir, Extra: tlsSection(k.dir, "none", "")})
	refusals := strings.Count(p.Logs(), "config reload refused")
	rewriteConfig(t, p, tlsSection(k.dir, "none", ""), bad)
	eventually(t, 5*time.Second, "config reload refused", func() error {
		if strings.Count(p.Logs(), "config reload refused") <= refusals {
			return fmt.Errorf("no refusal logged yet")
		}
		return nil
	})
	line := lastLogLine(p.Logs(), "config reload refused")
	// The log escapes the quotes of the message.
	if escaped := strconv.Quote(want); !strings.Contains(line, escaped[1:len(escaped)-1]) {
		t.Errorf("reload refusal %q does not say %q", line, want)
	}
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, k.clientTLS(false)))
	if err := getVersion(testCtx(t, 30*time.Second), m, "root:Milvus"); err != nil {
		t.Fatalf("one-way TLS stopped working after the refused reload: %v", err)
	}
}
