package integration

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/authproxy/authproxy/test/harness"
)

// A :path that is not exactly /service/method is refused before anything
// else, on both cores, with grpc-go's own status: Milvus 2.5.24 (grpc-go
// 1.65) strips a leading "/" only when present, so
// "milvus.proto.milvus.MilvusService/DropCollection" is DropCollection to
// it, and a proxy that classed it as another service let any user call it.
func TestMalformedPathsAreRefused(t *testing.T) {
	fake, p := startPair(t, harness.Options{})
	ctx := testCtx(t, 60*time.Second)
	root := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "root", Password: "Milvus"})
	createVectors(t, ctx, root, "books", 8)
	harness.Password("alice", "Alice-pw-1")
	must(t, root.CreateUser(ctx, milvusclient.NewCreateUserOption("alice", "Alice-pw-1")))

	conn := dial(t, p.Addr, nil)
	asAlice := withToken(ctx, "alice:Alice-pw-1")
	drop, _ := proto.Marshal(&milvuspb.DropCollectionRequest{CollectionName: "books"})
	create, _ := proto.Marshal(&milvuspb.CreateCredentialRequest{Username: "mallory", Password: "bWFsbG9yeS1wdy0x"})
	invoke := func(path string, msg []byte) error {
		var reply []byte
		return conn.Invoke(asAlice, path, &msg, &reply, grpc.ForceCodecV2(rawCodec{}))
	}
	const svc = "milvus.proto.milvus.MilvusService"
	for _, path := range []string{
		svc + "/DropCollection",
		"//" + svc + "/DropCollection",
		"/" + svc + "/DropCollection/",
		"/" + svc + "//DropCollection",
		"/" + svc + "/",
		"/" + svc,
		"/DropCollection",
	} {
		wantStatus(t, "path "+path, invoke(path, drop), codes.Unimplemented, fmt.Sprintf("malformed method name: %q", path))
	}
	// A method the proxy answers itself, without the "/": never forwarded.
	path := svc + "/CreateCredential"
	wantStatus(t, "path "+path, invoke(path, create), codes.Unimplemented, fmt.Sprintf("malformed method name: %q", path))

	// The well-formed path: decided as DropCollection.
	wantDenied(t, "the well-formed path", invoke("/"+svc+"/DropCollection", drop), deny("PrivilegeDropCollection", "alice", "default"))
	for _, m := range []string{"DropCollection", "CreateCredential"} {
		if n := len(fake.Recorder().CallsTo(m)); n != 0 {
			t.Errorf("the backend saw %d %s calls, want none", n, m)
		}
	}
	has, err := root.HasCollection(ctx, milvusclient.NewHasCollectionOption("books"))
	if err != nil || !has {
		t.Errorf("books after the attempts: %v %v", has, err)
	}
}

// A path without the leading "/" never reaches a backend that routes it as
// Milvus 2.5.24 does: the backend here records every :path it receives
// (the fake, on grpc-go 1.85, would refuse the path itself and hide a
// proxy that forwards it).
func TestPathWithoutSlashNeverReachesTheBackend(t *testing.T) {
	backend := startPathRecorder(t)
	p := harness.Start(t, harness.Options{Backend: backend.addr})
	conn := dial(t, p.Addr, nil)
	ctx := withToken(testCtx(t, 30*time.Second), "root:Milvus")
	msg := []byte{}
	for _, path := range []string{
		"milvus.proto.milvus.MilvusService/DropCollection",
		"milvus.proto.milvus.MilvusService/CreateCredential",
		"grpc.health.v1.Health/Check",
	} {
		var reply []byte
		err := conn.Invoke(ctx, path, &msg, &reply, grpc.ForceCodecV2(rawCodec{}))
		wantStatus(t, "path "+path, err, codes.Unimplemented, fmt.Sprintf("malformed method name: %q", path))
	}
	// The recorder does answer a well-formed path.
	var reply []byte
	err := conn.Invoke(ctx, "/milvus.proto.milvus.MilvusService/GetVersion", &msg, &reply, grpc.ForceCodecV2(rawCodec{}))
	wantStatus(t, "a well-formed path", err, codes.Unimplemented, "recorded /milvus.proto.milvus.MilvusService/GetVersion")
	if got := backend.seen(); len(got) != 1 {
		t.Errorf("the backend received %q, want the well-formed path only", got)
	}
}

// pathRecorder is an HTTP/2 backend that answers every gRPC call with
// Unimplemented "recorded <path>" and remembers the paths.
type pathRecorder struct {
	addr  string
	mu    sync.Mutex
	paths []string
}

func startPathRecorder(t *testing.T) *pathRecorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	r := &pathRecorder{addr: ln.Addr().String()}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: h2c.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.paths = append(r.paths, req.RequestURI)
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Grpc-Status", "12")
		w.Header().Set("Grpc-Message", "recorded "+strings.ReplaceAll(req.RequestURI, "%", "%25"))
		w.WriteHeader(http.StatusOK)
	}), &http2.Server{})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return r
}

func (r *pathRecorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.paths...)
}
