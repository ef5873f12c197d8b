package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"

	"github.com/authproxy/authproxy/test/harness"
)

// A config reload that points credentials.file at a path that does not
// exist (a typo, a volume not mounted yet) must not bootstrap a fresh store
// where root:Milvus works and every real user is refused: the change is
// refused and the old store stays.
func TestReloadToMissingCredentialPathKeepsOldStore(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	ctx := testCtx(t, 30*time.Second)
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))

	harness.Password("alice", "Alice-pw-1")
	cli(t, p, "Alice-pw-1\n", "user", "add", "alice", "--password-stdin")
	eventually(t, 3*time.Second, "alice accepted", func() error { return getVersion(ctx, m, "alice:Alice-pw-1") })
	harness.Password("root", "Root-pw-2")
	cli(t, p, "Root-pw-2\n", "user", "passwd", "root", "--password-stdin")
	eventually(t, 3*time.Second, "root's new password accepted", func() error { return getVersion(ctx, m, "root:Root-pw-2") })

	missing := filepath.Join(p.Dir, "credentails.yaml") // a typo, in a directory that exists
	refusals := strings.Count(p.Logs(), "config reload refused")
	rewriteConfig(t, p, "file: "+strconv.Quote(p.CredFile), "file: "+strconv.Quote(missing))
	eventually(t, 5*time.Second, "config reload refused", func() error {
		if strings.Count(p.Logs(), "config reload refused") <= refusals {
			return fmt.Errorf("no refusal logged yet")
		}
		return nil
	})
	if !strings.Contains(p.Logs(), "does not exist") {
		t.Error("the refusal does not say the file does not exist")
	}
	if _, err := os.Stat(missing); err == nil {
		t.Fatal("a credential file was created at the new path")
	}
	must(t, getVersion(ctx, m, "alice:Alice-pw-1"))
	must(t, getVersion(ctx, m, "root:Root-pw-2"))
	if err := getVersion(ctx, m, "root:Milvus"); err == nil {
		t.Fatal("root:Milvus works: a fresh store replaced the real one")
	}
}
