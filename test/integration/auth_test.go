package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/authproxy/authproxy/test/harness"
)

const (
	msgMissing  = "missing authorization in header"
	msgFormat   = "invalid token format"
	msgPassword = "auth check failure, please check username and password are correct"
	msgAPIKey   = "auth check failure, please check api key is correct"
)

// cli runs an authproxy subcommand against the proxy's credential file.
func cli(t *testing.T, p *harness.Proxy, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(harness.Binary(t), append(args, "--credentials", p.CredFile)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("authproxy %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// eventually retries f until it succeeds or limit passes.
func eventually(t *testing.T, limit time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, limit, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The SDK works with root/Milvus on a fresh credential file and with an API
// key made by `authproxy apikey create`.
func TestSDKWithPasswordAndAPIKey(t *testing.T) {
	fake, p := startPair(t, harness.Options{})
	if fi, err := os.Stat(p.CredFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("bootstrap credential file: %v %v", fi, err)
	}
	if !strings.Contains(p.Logs(), "change root's password") {
		t.Fatalf("no warning about the default root password:\n%s", p.Logs())
	}
	ctx := testCtx(t, 60*time.Second)
	root := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "root", Password: "Milvus"})
	_, err := root.ListCollections(ctx, milvusclient.NewListCollectionOption())
	must(t, err)
	createVectors(t, ctx, root, "by_password", 8)
	insertAndSearch(t, ctx, root, "by_password")

	key := strings.TrimSpace(cli(t, p, "", "apikey", "create", "ci", "--user", "root"))
	harness.APIKey(key)
	if strings.Contains(key, ":") || len(key) < 40 {
		t.Fatalf("odd API key %q", key)
	}
	var byKey *milvusclient.Client
	eventually(t, 2*time.Second, "the new API key works", func() error {
		var err error
		byKey, err = sdkConnect(ctx, &milvusclient.ClientConfig{Address: p.Addr, APIKey: key})
		return err
	})
	t.Cleanup(func() { _ = byKey.Close(context.Background()) })
	_, err = byKey.ListCollections(ctx, milvusclient.NewListCollectionOption())
	must(t, err)
	createVectors(t, ctx, byKey, "by_key", 8)
	insertAndSearch(t, ctx, byKey, "by_key")
	for _, c := range fake.Recorder().CallsTo("Insert") {
		if u := c.Metadata.Get("x-authproxy-user"); len(u) != 1 || u[0] != "root" {
			t.Fatalf("backend saw identity %v for an API-key call", u)
		}
	}
}

// Every failure is UNAUTHENTICATED with Milvus's message, and the backend
// never sees the call.
func TestAuthFailures(t *testing.T) {
	fake, p := startPair(t, harness.Options{})
	conn := dial(t, p.Addr, nil)
	milvus := milvuspb.NewMilvusServiceClient(conn)
	base := testCtx(t, 30*time.Second)
	harness.Password("root", "wrong-password")

	cases := map[string]struct {
		ctx  context.Context
		want string
	}{
		"wrong password": {withToken(base, "root:wrong-password"), msgPassword},
		"unknown user":   {withToken(base, "nobody:Milvus1"), msgPassword},
		"wrong api key":  {withToken(base, "ap_not-a-real-key-at-all-0123456789"), msgAPIKey},
		"missing token":  {base, msgMissing},
		"non-base64":     {metadata.AppendToOutgoingContext(base, "authorization", "%%% not base64"), msgFormat},
	}
	for name, c := range cases {
		for method, call := range map[string]func(context.Context) error{
			"Connect": func(ctx context.Context) error {
				_, err := milvus.Connect(ctx, &milvuspb.ConnectRequest{})
				return err
			},
			"GetVersion": func(ctx context.Context) error {
				_, err := milvus.GetVersion(ctx, &milvuspb.GetVersionRequest{})
				return err
			},
			"ShowCollections": func(ctx context.Context) error {
				_, err := milvus.ShowCollections(ctx, &milvuspb.ShowCollectionsRequest{})
				return err
			},
			"CheckHealth": func(ctx context.Context) error {
				_, err := milvus.CheckHealth(ctx, &milvuspb.CheckHealthRequest{})
				return err
			},
			"grpc.health.v1 Check": func(ctx context.Context) error {
				_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
				return err
			},
			"bidi stream": func(ctx context.Context) error {
				stream, err := testgrpc.NewTestServiceClient(conn).FullDuplexCall(ctx)
				if err != nil {
					return err
				}
				_ = stream.Send(&testgrpc.StreamingOutputCallRequest{})
				_, err = stream.Recv()
				return err
			},
			"CreateCredential": func(ctx context.Context) error {
				_, err := milvus.CreateCredential(ctx, &milvuspb.CreateCredentialRequest{Username: "x1", Password: "eDEyMzQ1Ng=="})
				return err
			},
		} {
			st := status.Convert(call(c.ctx))
			if st.Code() != codes.Unauthenticated || st.Message() != c.want {
				t.Errorf("%s, %s: %v, want UNAUTHENTICATED %q", name, method, st, c.want)
			}
		}
	}
	// The SDK surfaces the same message.
	_, err := sdkConnect(base, &milvusclient.ClientConfig{Address: p.Addr, Username: "root", Password: "wrong-password"})
	if err == nil || !strings.Contains(err.Error(), msgPassword) {
		t.Fatalf("SDK with a wrong password: %v", err)
	}
	if calls := fake.Recorder().Calls(); len(calls) != 0 {
		t.Fatalf("the backend saw %d calls of failed authentications, first %s", len(calls), calls[0].Method)
	}
}

// The backend never sees the credential or sourceid, and sees the identity
// header with the right user even if the client sent one of its own.
func TestIdentityToBackend(t *testing.T) {
	fake, p := startPair(t, harness.Options{})
	milvus := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	ctx := metadata.AppendToOutgoingContext(withToken(testCtx(t, 10*time.Second), "root:Milvus"),
		"sourceid", "QEBtaWx2dXMtbWVtYmVyQEA=", "x-authproxy-user", "admin", "dbname", "db1")
	_, err := milvus.GetVersion(ctx, &milvuspb.GetVersionRequest{})
	must(t, err)
	md := fake.Recorder().CallsTo("GetVersion")[0].Metadata
	if len(md.Get("authorization")) != 0 || len(md.Get("sourceid")) != 0 {
		t.Fatalf("credential or sourceid reached the backend: %v", md)
	}
	if u := md.Get("x-authproxy-user"); len(u) != 1 || u[0] != "root" {
		t.Fatalf("identity header %v, want [root]", u)
	}
	if db := md.Get("dbname"); len(db) != 1 || db[0] != "db1" {
		t.Fatalf("dbname %v", db)
	}
}

// All 256 characters of a password count.
func TestLongPassword(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	long := strings.Repeat("0123456789abcdef", 16)
	harness.Password("long_user", long)
	cli(t, p, long+"\n", "user", "add", "long_user", "--password-stdin")
	milvus := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	base := testCtx(t, 20*time.Second)
	eventually(t, 2*time.Second, "256-character password accepted", func() error {
		_, err := milvus.GetVersion(withToken(base, "long_user:"+long), &milvuspb.GetVersionRequest{})
		return err
	})
	other := []byte(long)
	other[199] = 'X'
	harness.Password("long_user", string(other))
	_, err := milvus.GetVersion(withToken(base, "long_user:"+string(other)), &milvuspb.GetVersionRequest{})
	if st := status.Convert(err); st.Code() != codes.Unauthenticated || st.Message() != msgPassword {
		t.Fatalf("password differing in its 200th character: %v", err)
	}
}

// 200 concurrent wrong-password calls do not hold up a caller whose token
// is cached: no more than 2 hashes run at once, the excess of one client's
// queue is refused at once as Unavailable, and the cached caller's slowest
// call stays under 300 ms.
func TestColdFloodDoesNotStarveCachedCaller(t *testing.T) {
	_, p := startPair(t, harness.Options{Extra: "auth:\n  maxConcurrentVerifications: 2\n  bruteForce:\n    enabled: false\n"})
	conn := dial(t, p.Addr, nil)
	milvus := milvuspb.NewMilvusServiceClient(conn)
	base := testCtx(t, 120*time.Second)
	good := withToken(base, "root:Milvus")
	_, err := milvus.GetVersion(good, &milvuspb.GetVersionRequest{})
	must(t, err)

	harness.Password("root", "flood-password")
	bad := withToken(base, "root:flood-password")
	var wg sync.WaitGroup
	var mu sync.Mutex
	codesSeen := map[codes.Code]int{}
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := milvus.GetVersion(bad, &milvuspb.GetVersionRequest{})
			mu.Lock()
			codesSeen[status.Code(err)]++
			mu.Unlock()
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	var lat []time.Duration
	for loop := true; loop; {
		select {
		case <-done:
			loop = false
		default:
			start := time.Now()
			_, err := milvus.GetVersion(good, &milvuspb.GetVersionRequest{})
			must(t, err)
			lat = append(lat, time.Since(start))
			time.Sleep(5 * time.Millisecond)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	slowest := lat[len(lat)-1]
	hashes := metricValue(t, p, "authproxy_password_hash_verifications_total")
	t.Logf("flood of 200 wrong passwords: %v; %v hashes, at most %v at once; cached caller: %d calls, p50 %s, slowest %s",
		codesSeen, hashes, metricValue(t, p, "authproxy_password_hash_verifications_in_flight_peak"), len(lat), lat[len(lat)/2], slowest)
	if codesSeen[codes.Unauthenticated]+codesSeen[codes.Unavailable] != 200 || codesSeen[codes.Unauthenticated] == 0 {
		t.Fatalf("flood answers: %v, want Unauthenticated (hashed) and Unavailable (queue full) only", codesSeen)
	}
	if got := metricValue(t, p, "authproxy_password_hash_verifications_in_flight_peak"); got > 2 {
		t.Fatalf("%v hashes at once, bound 2", got)
	}
	if slowest > 300*time.Millisecond {
		t.Fatalf("cached caller's slowest call %s during the flood, bound 300ms", slowest)
	}
}

// The offline user commands, htpasswd import included.
func TestUserCommands(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	harness.Password("alice", "alice-pw-1")
	cli(t, p, "alice-pw-1\n", "user", "add", "alice", "--role", "admin", "--password-stdin")
	if out := cli(t, p, "", "user", "list"); !strings.Contains(out, "alice") || !strings.Contains(out, "admin") {
		t.Fatalf("user list: %s", out)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("bcrypt-pw-1"), bcrypt.MinCost)
	must(t, err)
	harness.Password("bob", "bcrypt-pw-1")
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	must(t, os.WriteFile(htpasswd, []byte(fmt.Sprintf("# nginx\nbob:%s\n", hash)), 0o600))
	if out := cli(t, p, "", "user", "import", htpasswd); !strings.Contains(out, "imported 1 users") {
		t.Fatalf("import: %s", out)
	}
	milvus := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	base := testCtx(t, 20*time.Second)
	for user, pw := range map[string]string{"alice": "alice-pw-1", "bob": "bcrypt-pw-1"} {
		eventually(t, 2*time.Second, user+" can connect", func() error {
			_, err := milvus.GetVersion(withToken(base, user+":"+pw), &milvuspb.GetVersionRequest{})
			return err
		})
	}
	harness.Password("alice", "alice-pw-2")
	cli(t, p, "alice-pw-2\n", "user", "passwd", "alice", "--password-stdin")
	eventually(t, 2*time.Second, "alice's old password refused", func() error {
		_, err := milvus.GetVersion(withToken(base, "alice:alice-pw-1"), &milvuspb.GetVersionRequest{})
		if status.Code(err) != codes.Unauthenticated {
			return fmt.Errorf("still accepted: %v", err)
		}
		return nil
	})
	cli(t, p, "", "user", "del", "bob")
	eventually(t, 2*time.Second, "bob refused after del", func() error {
		_, err := milvus.GetVersion(withToken(base, "bob:bcrypt-pw-1"), &milvuspb.GetVersionRequest{})
		if status.Code(err) != codes.Unauthenticated {
			return fmt.Errorf("still accepted: %v", err)
		}
		return nil
	})
	// Bad input is refused with a message naming the rule.
	cmd := exec.Command(harness.Binary(t), "user", "add", "1bad", "--password-stdin", "--credentials", p.CredFile)
	cmd.Stdin = strings.NewReader("whatever1\n")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "the first character must be a letter") {
		t.Fatalf("bad user name accepted: %v %s", err, out)
	}
}
