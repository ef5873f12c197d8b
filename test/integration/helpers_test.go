package integration

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/milvus-io/milvus/client/v2/entity"
	"github.com/milvus-io/milvus/client/v2/index"
	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/authproxy/authproxy/test/fakemilvus"
	"github.com/authproxy/authproxy/test/harness"
)

func startFake(t testing.TB) *fakemilvus.Server {
	t.Helper()
	s := fakemilvus.New(fakemilvus.Options{})
	if _, err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// startPair starts a fake backend and a proxy in front of it.
func startPair(t testing.TB, o harness.Options) (*fakemilvus.Server, *harness.Proxy) {
	t.Helper()
	fake := startFake(t)
	o.Backend = fake.Addr()
	return fake, harness.Start(t, o)
}

// startRESTPair is startPair with the fake's REST port as the proxy's
// backend.rest.
func startRESTPair(t *testing.T, o harness.Options) (*fakemilvus.Server, *harness.Proxy) {
	t.Helper()
	fake := startFake(t)
	restAddr, err := fake.StartREST("127.0.0.1:0")
	must(t, err)
	o.Backend, o.BackendREST = fake.Addr(), "http://"+restAddr
	return fake, harness.Start(t, o)
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// sdkClient connects the Milvus Go SDK; it fails the test if Connect fails.
func sdkClient(t testing.TB, ctx context.Context, cfg *milvusclient.ClientConfig) *milvusclient.Client {
	t.Helper()
	c, err := sdkConnect(ctx, cfg)
	if err != nil {
		t.Fatalf("SDK connect to %s: %v", cfg.Address, err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func sdkConnect(ctx context.Context, cfg *milvusclient.ClientConfig) (*milvusclient.Client, error) {
	if cfg.Username != "" {
		harness.Password(cfg.Username, cfg.Password)
	}
	if cfg.APIKey != "" {
		harness.APIKey(cfg.APIKey)
	}
	return milvusclient.New(ctx, cfg)
}

// dial opens a raw gRPC connection (plaintext unless tlsCfg is set).
func dial(t testing.TB, addr string, tlsCfg *tls.Config) *grpc.ClientConn {
	t.Helper()
	creds := insecure.NewCredentials()
	if tlsCfg != nil {
		creds = credentials.NewTLS(tlsCfg)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(512<<20), grpc.MaxCallSendMsgSize(512<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// withToken adds the authorization metadata as Milvus SDKs send it. A
// token with an empty password ("alice:") holds no secret: registered, it
// would flag every log line that names the user before a colon.
func withToken(ctx context.Context, token string) context.Context {
	if _, password, ok := strings.Cut(token, ":"); !ok || password != "" {
		harness.Secret(token)
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", base64.StdEncoding.EncodeToString([]byte(token)))
}

// createVectors creates a collection with an int64 key "id" and a float
// vector "vec" of dim, indexed and loaded.
func createVectors(t *testing.T, ctx context.Context, c *milvusclient.Client, name string, dim int) {
	t.Helper()
	schema := entity.NewSchema().
		WithField(entity.NewField().WithName("id").WithDataType(entity.FieldTypeInt64).WithIsPrimaryKey(true)).
		WithField(entity.NewField().WithName("vec").WithDataType(entity.FieldTypeFloatVector).WithDim(int64(dim)))
	must(t, c.CreateCollection(ctx, milvusclient.NewCreateCollectionOption(name, schema).
		WithIndexOptions(milvusclient.NewCreateIndexOption(name, "vec", index.NewFlatIndex(entity.L2)))))
	task, err := c.LoadCollection(ctx, milvusclient.NewLoadCollectionOption(name))
	must(t, err)
	must(t, task.Await(ctx))
}

// vectors returns n rows whose vector i is (i, i, ..., i).
func vectors(n, dim int) ([]int64, [][]float32) {
	ids, vecs := make([]int64, n), make([][]float32, n)
	for i := range n {
		ids[i] = int64(i)
		vecs[i] = make([]float32, dim)
		for j := range vecs[i] {
			vecs[i][j] = float32(i)
		}
	}
	return ids, vecs
}

func constVec(v float32, dim int) entity.FloatVector {
	out := make(entity.FloatVector, dim)
	for i := range out {
		out[i] = v
	}
	return out
}

// insertAndSearch inserts n rows and checks that the nearest neighbour of
// row 7's vector is row 7: the backend's own answer, through the proxy.
func insertAndSearch(t *testing.T, ctx context.Context, c *milvusclient.Client, name string) {
	t.Helper()
	const dim = 8
	ids, vecs := vectors(20, dim)
	res, err := c.Insert(ctx, milvusclient.NewColumnBasedInsertOption(name).
		WithInt64Column("id", ids).WithFloatVectorColumn("vec", dim, vecs))
	must(t, err)
	if res.InsertCount != 20 {
		t.Fatalf("inserted %d rows, want 20", res.InsertCount)
	}
	rs, err := c.Search(ctx, milvusclient.NewSearchOption(name, 3, []entity.Vector{constVec(7, dim)}).WithANNSField("vec"))
	must(t, err)
	if len(rs) != 1 || rs[0].ResultCount == 0 {
		t.Fatalf("search returned %+v", rs)
	}
	if id, _ := rs[0].IDs.GetAsInt64(0); id != 7 {
		t.Fatalf("nearest id %d, want 7", id)
	}
}

// startLoad runs call without pause in workers goroutines until stop is
// called; stop waits for them and reports the calls made, the failures and
// the first failure. Each worker's index is passed, for per-worker state.
func startLoad(workers int, call func(worker int) error) (stop func() (calls, failures int64, first error)) {
	var n, failed atomic.Int64
	var firstErr atomic.Value
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				n.Add(1)
				if err := call(w); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	return func() (int64, int64, error) {
		close(done)
		wg.Wait()
		err, _ := firstErr.Load().(error)
		return n.Load(), failed.Load(), err
	}
}

// refusedAtStart runs the proxy on the config at path (in dir) and
// returns what it said, failing the test unless it exited non-zero.
func refusedAtStart(t *testing.T, dir, path string) string {
	t.Helper()
	cmd := exec.Command(harness.Binary(t), "serve", "--config", path)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("%s: proxy started or exited 0: %v\n%s", path, err, out)
	}
	return string(out)
}
