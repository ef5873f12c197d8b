package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus/client/v2/milvusclient"

	"github.com/authproxy/authproxy/credentials"
	"github.com/authproxy/authproxy/test/harness"
)

// `authproxy store copy` moves a single replica's file to etcd and back
// with every user (tags included), API key, role, grant and row policy;
// copying again changes nothing; and replicas on etcd serve the copied
// users and grants.
func TestStoreCopyRoundTrip(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	ctx := testCtx(t, 60*time.Second)
	root := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "root", Password: "Milvus"})
	harness.Password("alice", "Alice-pw-1")
	must(t, root.CreateUser(ctx, milvusclient.NewCreateUserOption("alice", "Alice-pw-1")))
	must(t, root.CreateRole(ctx, milvusclient.NewCreateRoleOption("reader")))
	must(t, root.GrantPrivilege(ctx, milvusclient.NewGrantPrivilegeOption("reader", "Collection", "Search", "books")))
	must(t, root.GrantPrivilegeV2(ctx, milvusclient.NewGrantPrivilegeV2Option("reader", "CollectionReadOnly", "films")))
	must(t, root.GrantRole(ctx, milvusclient.NewGrantRoleOption("alice", "reader")))
	key := strings.TrimSpace(cli(t, p, "", "apikey", "create", "ci", "--user", "alice"))
	harness.APIKey(key)
	cli(t, p, "", "policy", "create", "tenant_rows", "--collection", "books", "--action", "query", "--action", "insert",
		"--role", "reader", "--using", "tenant == $current_user_tags['tenant']", "--check", "tenant == $current_user_tags['tenant']")
	cli(t, p, "", "user", "tags", "add", "alice", "tenant=acme")
	p.Stop()

	etcd := harness.StartEtcd(t)
	cfg := filepath.Join(t.TempDir(), "copy.yaml")
	must(t, os.WriteFile(cfg, []byte(fmt.Sprintf("credentials:\n  store: etcd\n  etcd:\n    endpoints: [%q]\n", etcd.URL)), 0o600))
	copyStore := func(from, to string) string {
		t.Helper()
		out, err := exec.Command(harness.Binary(t), "store", "copy", "--config", cfg, "--from", from, "--to", to).CombinedOutput()
		if err != nil {
			t.Fatalf("store copy --from %s --to %s: %v\n%s", from, to, err, out)
		}
		return string(out)
	}
	out := copyStore(p.CredFile, "etcd")
	if !strings.Contains(out, "copied 2 users, 1 API keys, 1 roles, 2 grants, 0 privilege groups, 1 row policies") {
		t.Fatalf("copy to etcd: %s", out)
	}
	copyStore(p.CredFile, "etcd") // again: nothing changes
	back := filepath.Join(t.TempDir(), "back.yaml")
	copyStore("etcd", back)

	load := func(path string) *credentials.Set {
		fs, err := credentials.OpenFile(path, credentials.FileOptions{MustExist: true})
		must(t, err)
		return fs.Current()
	}
	orig, round := load(p.CredFile), load(back)
	for what, pair := range map[string][2]any{
		"users":  {orig.Users(), round.Users()},
		"keys":   {orig.APIKeys(), round.APIKeys()},
		"roles":  {orig.Roles(), round.Roles()},
		"grants": {orig.Grants(), round.Grants()},
		// Row security is backed up and restored with the rest.
		"row policies": {orig.AllRowPolicies(), round.AllRowPolicies()},
	} {
		if !reflect.DeepEqual(pair[0], pair[1]) {
			t.Errorf("%s differ after file -> etcd -> file:\n%+v\n%+v", what, pair[0], pair[1])
		}
	}

	// A replica on etcd serves what was copied.
	fake := startFake(t)
	onEtcd := harness.Start(t, harness.Options{Backend: fake.Addr(),
		Credentials: fmt.Sprintf("credentials:\n  store: etcd\n  etcd:\n    endpoints: [%q]\n", etcd.URL)})
	alice := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: onEtcd.Addr, Username: "alice", Password: "Alice-pw-1"})
	err := alice.DropCollection(ctx, milvusclient.NewDropCollectionOption("books"))
	wantDenied(t, "alice's drop on the etcd replica", err, deny("PrivilegeDropCollection", "alice", "default"))
	must(t, getVersion(ctx, milvusclientRaw(t, onEtcd.Addr), key))
}

func milvusclientRaw(t *testing.T, addr string) milvuspb.MilvusServiceClient {
	t.Helper()
	return milvuspb.NewMilvusServiceClient(dial(t, addr, nil))
}
