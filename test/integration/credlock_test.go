package integration

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"

	"github.com/authproxy/authproxy/test/harness"
)

// The proxy and the CLI write one credential file at the same time: 16 CLI
// `user add`, 16 `apikey create` and 16 CreateCredential through the proxy
// run together, and nothing is lost; a key revoked meanwhile stays revoked.
// Before the file lock, 4-5 of 16 were lost and revoked keys came back.
func TestProxyAndCLIWritersLoseNothing(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	ctx := testCtx(t, 120*time.Second)
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	asRoot := withToken(ctx, "root:Milvus")
	revoked := strings.TrimSpace(cli(t, p, "", "apikey", "create", "doomed"))
	harness.APIKey(revoked)

	var wg sync.WaitGroup
	run := func(f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	for i := range 16 {
		run(func() {
			harness.Password(fmt.Sprintf("cli_%02d", i), "P@ssw0rd")
			cli(t, p, "P@ssw0rd\n", "user", "add", fmt.Sprintf("cli_%02d", i), "--password-stdin")
		})
		run(func() {
			harness.APIKey(strings.TrimSpace(cli(t, p, "", "apikey", "create", fmt.Sprintf("key_%02d", i))))
		})
		run(func() {
			st, err := m.CreateCredential(asRoot, &milvuspb.CreateCredentialRequest{Username: fmt.Sprintf("grpc_%02d", i), Password: b64("P@ssw0rd")})
			if err != nil || st.GetCode() != 0 {
				t.Errorf("CreateCredential grpc_%02d: %v %v", i, st, err)
			}
		})
	}
	run(func() { cli(t, p, "", "apikey", "revoke", "doomed") })
	wg.Wait()

	users := cli(t, p, "", "user", "list")
	keys := cli(t, p, "", "apikey", "list")
	lost := 0
	for i := range 16 {
		for _, want := range []struct{ list, name string }{
			{users, fmt.Sprintf("cli_%02d", i)}, {users, fmt.Sprintf("grpc_%02d", i)}, {keys, fmt.Sprintf("key_%02d", i)},
		} {
			if !strings.Contains(want.list, want.name) {
				lost++
				t.Errorf("%s was lost", want.name)
			}
		}
	}
	if strings.Contains(keys, "doomed") {
		t.Error("the revoked key came back")
	}
	t.Logf("48 concurrent writes from the proxy and the CLI: %d lost", lost)
	// The proxy, after its reload, refuses the revoked key and knows every user.
	eventually(t, 10*time.Second, "revoked key refused", func() error {
		if err := getVersion(ctx, m, revoked); err == nil {
			return fmt.Errorf("the revoked key still authenticates")
		}
		return nil
	})
	eventually(t, 10*time.Second, "every user known to the proxy", func() error {
		listed, err := m.ListCredUsers(asRoot, &milvuspb.ListCredUsersRequest{})
		if n := len(listed.GetUsernames()); err != nil || n != 33 {
			return fmt.Errorf("the proxy lists %d users (%v), want 33 (root and 32 new)", n, err)
		}
		return nil
	})
}
