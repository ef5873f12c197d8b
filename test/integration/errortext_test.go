package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus/client/v2/milvusclient"

	"github.com/authproxy/authproxy/test/harness"
)

// When the credential file cannot be written, clients learn that nothing
// changed, never the file's path or the OS error; the proxy's log has both.
func TestStoreFailuresShowNoPathToClients(t *testing.T) {
	fake := startFake(t)
	credDir := filepath.Join(t.TempDir(), "private-creds")
	must(t, os.Mkdir(credDir, 0o700))
	p := harness.Start(t, harness.Options{Backend: fake.Addr(), CredFile: filepath.Join(credDir, "credentials.yaml")})
	ctx := testCtx(t, 30*time.Second)
	root := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "root", Password: "Milvus"})

	// The directory disappears (a volume unmounted, say): every write fails
	// with an OS error that names it.
	must(t, os.RemoveAll(credDir))

	harness.Password("grpc_user", "P@ssw0rd")
	grpcErr := root.CreateUser(ctx, milvusclient.NewCreateUserOption("grpc_user", "P@ssw0rd"))
	if grpcErr == nil {
		t.Fatal("CreateUser succeeded without a credential directory")
	}
	harness.Password("rest_user", "P@ssw0rd")
	r := curl(t, "http://"+p.Addr+"/v2/vectordb/users/create", "Bearer root:Milvus", `{"userName":"rest_user","password":"P@ssw0rd"}`)
	code, _, restMsg := envelope(t, r)
	if code == 0 {
		t.Fatalf("REST create succeeded without a credential directory: %s", r.body)
	}
	for side, msg := range map[string]string{"gRPC": grpcErr.Error(), "REST": restMsg} {
		for _, leak := range []string{credDir, "private-creds", "no such file", "credentials.yaml"} {
			if strings.Contains(msg, leak) {
				t.Errorf("%s error shows %q to the client: %s", side, leak, msg)
			}
		}
		if !strings.Contains(msg, "nothing was changed") {
			t.Errorf("%s error does not say the change was not made: %s", side, msg)
		}
	}
	if !p.WaitLog("private-creds", 5*time.Second) {
		t.Error("the proxy's log does not name the failing path")
	}
	// Old users keep working from the last good state.
	if _, err := root.ListUsers(ctx, milvusclient.NewListUserOption()); err != nil {
		t.Fatalf("root after the failed writes: %v", err)
	}
}
