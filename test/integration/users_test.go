package integration

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/authproxy/authproxy/test/harness"
)

// rewriteConfig replaces old with new in the proxy's config file (a plain
// write, as an operator's editor would do).
func rewriteConfig(t *testing.T, p *harness.Proxy, old, new string) {
	t.Helper()
	data, err := os.ReadFile(p.Config)
	must(t, err)
	if !strings.Contains(string(data), old) {
		t.Fatalf("config has no %q:\n%s", old, data)
	}
	must(t, os.WriteFile(p.Config, []byte(strings.Replace(string(data), old, new, 1)), 0o600))
}

func wantRefused(t *testing.T, what string, err error, reason string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), reason) {
		t.Errorf("%s: got %v, want an error containing %q", what, err, reason)
	}
}

// The seed document (milvus-authenticate-user-access), top to bottom, with
// the Milvus Go SDK through the proxy; the users live in the proxy's file.
func TestSeedUserWalk(t *testing.T) {
	fake, p := startPair(t, harness.Options{})
	ctx := testCtx(t, 90*time.Second)

	// Connect with the default root user.
	root := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "root", Password: "Milvus"})

	// Create a new user and describe it.
	harness.Password("user_1", "P@ssw0rd")
	must(t, root.CreateUser(ctx, milvusclient.NewCreateUserOption("user_1", "P@ssw0rd")))
	u, err := root.DescribeUser(ctx, milvusclient.NewDescribeUserOption("user_1"))
	must(t, err)
	if u.UserName != "user_1" || len(u.Roles) != 0 {
		t.Fatalf("describe_user = %+v, want user_1 with no roles", u)
	}

	// Connect as the new user.
	user1 := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "user_1", Password: "P@ssw0rd"})
	_, err = user1.ListCollections(ctx, milvusclient.NewListCollectionOption())
	must(t, err)

	// Update the password: the old one then fails, the new one works.
	harness.Password("user_1", "P@ssw0rd123")
	must(t, user1.UpdatePassword(ctx, milvusclient.NewUpdatePasswordOption("user_1", "P@ssw0rd", "P@ssw0rd123")))
	_, err = sdkConnect(ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "user_1", Password: "P@ssw0rd"})
	wantRefused(t, "old password after update", err, msgPassword)
	_, err = user1.ListCollections(ctx, milvusclient.NewListCollectionOption())
	wantRefused(t, "the old password's open connection after update", err, msgPassword)
	user1 = sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "user_1", Password: "P@ssw0rd123"})
	_, err = user1.ListCollections(ctx, milvusclient.NewListCollectionOption())
	must(t, err)

	// Without superUsers, root must give user_1's old password.
	harness.Password("user_1", "Reset-by-root")
	err = root.UpdatePassword(ctx, milvusclient.NewUpdatePasswordOption("user_1", "wrong-old-password", "Reset-by-root"))
	wantRefused(t, "root with a wrong old password, no superUsers", err, "old password not correct for user_1")

	// With superUsers "root, foo" (changed live in the config file), root
	// resets the password giving a wrong old one.
	rewriteConfig(t, p, `superUsers: ""`, `superUsers: "root, foo"`)
	eventually(t, 5*time.Second, "superUsers reloaded", func() error {
		return root.UpdatePassword(ctx, milvusclient.NewUpdatePasswordOption("user_1", "wrong-old-password", "Reset-by-root"))
	})
	user1 = sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "user_1", Password: "Reset-by-root"})

	// A non-admin user cannot create users.
	err = user1.CreateUser(ctx, milvusclient.NewCreateUserOption("user_2", "P@ssw0rd"))
	if status.Code(err) != codes.PermissionDenied && !strings.Contains(fmt.Sprint(err), "PermissionDenied") {
		t.Errorf("non-admin create_user: %v, want PERMISSION_DENIED", err)
	}
	wantRefused(t, "non-admin create_user", err, "PrivilegeCreateOwnership: permission deny to user_1")

	// Drop the user; its next call fails.
	must(t, root.DropUser(ctx, milvusclient.NewDropUserOption("user_1")))
	_, err = sdkConnect(ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "user_1", Password: "Reset-by-root"})
	wantRefused(t, "dropped user", err, msgPassword)

	// List all users.
	users, err := root.ListUsers(ctx, milvusclient.NewListUserOption())
	must(t, err)
	if !slices.Equal(users, []string{"root"}) {
		t.Fatalf("list_users = %v, want [root]", users)
	}

	// The limitations, each refused with a message naming the rule.
	for _, c := range []struct{ name, password, reason string }{
		{"", "P@ssw0rd", "username must be not empty"},
		{strings.Repeat("u", 33), "P@ssw0rd", "the length of username must be less than 32"},
		{"1user", "P@ssw0rd", "the first character must be a letter"},
		{"user-2", "P@ssw0rd", "username must contain only numbers, letters and underscores"},
		{"user_2", "short", "invalid password length: invalid parameter[5 out of range 6 <= value <= 256]"},
		{"user_2", strings.Repeat("p", 257), "invalid password length: invalid parameter[257 out of range 6 <= value <= 256]"},
	} {
		err := root.CreateUser(ctx, milvusclient.NewCreateUserOption(c.name, c.password))
		wantRefused(t, fmt.Sprintf("create_user(%q, %d-character password)", c.name, len(c.password)), err, c.reason)
	}
	// 32 characters and 256-character passwords are within the limits.
	harness.Password(strings.Repeat("u", 32), strings.Repeat("p", 256))
	must(t, root.CreateUser(ctx, milvusclient.NewCreateUserOption(strings.Repeat("u", 32), strings.Repeat("p", 256))))

	// Creating an existing user fails; root cannot be dropped.
	wantRefused(t, "create an existing user", root.CreateUser(ctx, milvusclient.NewCreateUserOption("root", "P@ssw0rd")), "user already exists: root")
	wantRefused(t, "drop root", root.DropUser(ctx, milvusclient.NewDropUserOption("root")), "root user cannot be deleted")

	// Roles: admin can be granted; custom roles are refused clearly.
	harness.Password("ops", "P@ssw0rd")
	must(t, root.CreateUser(ctx, milvusclient.NewCreateUserOption("ops", "P@ssw0rd")))
	must(t, root.GrantRole(ctx, milvusclient.NewGrantRoleOption("ops", "admin")))
	u, err = root.DescribeUser(ctx, milvusclient.NewDescribeUserOption("ops"))
	must(t, err)
	if !slices.Equal(u.Roles, []string{"admin"}) {
		t.Fatalf("ops roles %v", u.Roles)
	}
	ops := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "ops", Password: "P@ssw0rd"})
	harness.Password("made_by_ops", "P@ssw0rd")
	must(t, ops.CreateUser(ctx, milvusclient.NewCreateUserOption("made_by_ops", "P@ssw0rd")))
	wantRefused(t, "grant a role that does not exist", root.GrantRole(ctx, milvusclient.NewGrantRoleOption("ops", "reader")), "not found the role")

	// Custom roles are the proxy's own, not forwarded.
	st, err := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil)).CreateRole(withToken(ctx, "root:Milvus"),
		&milvuspb.CreateRoleRequest{Entity: &milvuspb.RoleEntity{Name: "reader"}})
	if err != nil || st.GetCode() != 0 {
		t.Errorf("CreateRole: %v %v", st, err)
	}
	must(t, root.GrantRole(ctx, milvusclient.NewGrantRoleOption("ops", "reader")))

	// The backend never saw a credential or role RPC.
	for _, m := range []string{"CreateCredential", "UpdateCredential", "DeleteCredential", "ListCredUsers", "SelectUser", "OperateUserRole", "CreateRole"} {
		if n := len(fake.Recorder().CallsTo(m)); n != 0 {
			t.Errorf("backend saw %d %s calls", n, m)
		}
	}
}

// Changes survive a restart; list_users shows only the proxy's users.
func TestUsersPersistAcrossRestart(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	ctx := testCtx(t, 60*time.Second)
	root := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "root", Password: "Milvus"})
	harness.Password("keeper", "P@ssw0rd")
	harness.Password("root", "N3w-root-pw")
	must(t, root.CreateUser(ctx, milvusclient.NewCreateUserOption("keeper", "P@ssw0rd")))
	must(t, root.UpdatePassword(ctx, milvusclient.NewUpdatePasswordOption("root", "Milvus", "N3w-root-pw")))

	p.Restart()
	_, err := sdkConnect(ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "root", Password: "Milvus"})
	wantRefused(t, "root's old password after restart", err, msgPassword)
	root = sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "root", Password: "N3w-root-pw"})
	users, err := root.ListUsers(ctx, milvusclient.NewListUserOption())
	must(t, err)
	if !slices.Equal(users, []string{"keeper", "root"}) {
		t.Fatalf("after restart list_users = %v", users)
	}
	if fi, err := os.Stat(p.CredFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credential file mode after writes: %v %v", fi, err)
	}
}

// 20 clients creating 10 users each at once: exactly 200 new users.
func TestConcurrentCreates(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	ctx := testCtx(t, 120*time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for c := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client, err := sdkConnect(ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "root", Password: "Milvus"})
			if err != nil {
				errs <- err
				return
			}
			defer client.Close(context.Background())
			for i := range 10 {
				if err := client.CreateUser(ctx, milvusclient.NewCreateUserOption(fmt.Sprintf("c%02d_u%02d", c, i), "P@ssw0rd")); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	out := cli(t, p, "", "user", "list")
	if n := strings.Count(out, "\n") - 1; n != 201 {
		t.Fatalf("the file holds %d users, want 200 new + root", n)
	}
}

// kill -9 while users are being written leaves a complete file: the old
// or the new version, never a broken one.
func TestKillDuringWrites(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	ctx := testCtx(t, 60*time.Second)
	for round := range 3 {
		// Raw gRPC, not the SDK: the SDK retries UNAVAILABLE for seconds.
		milvus := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
		created := make(chan int, 1000)
		go func() {
			for i := 0; ; i++ {
				st, err := milvus.CreateCredential(withToken(ctx, "root:Milvus"), &milvuspb.CreateCredentialRequest{
					Username: fmt.Sprintf("r%d_u%03d", round, i), Password: base64.StdEncoding.EncodeToString([]byte("P@ssw0rd"))})
				if err != nil || st.GetCode() != 0 {
					close(created)
					return
				}
				created <- i
			}
		}()
		// Kill after a few acknowledged writes, while more are under way.
		for range 5 + round*3 {
			<-created
		}
		p.Kill()
		acked := 0
		for range created {
			acked++
		}
		out := cli(t, p, "", "user", "list") // fails the test if the file does not parse
		if !strings.Contains(out, fmt.Sprintf("r%d_u%03d", round, 4+round*3)) {
			t.Fatalf("round %d: an acknowledged user is missing after kill -9:\n%s", round, out)
		}
		p.Restart()
	}
}
