//go:build container

// The Milvus Go SDK checks that test/container/run.sh
// runs against the authproxy image. The build tag keeps them out of the plain
// `go test ./...`: they need the containers the script starts, and when the
// script runs them a missing address is a failure, not a skip.
package container

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/milvus-io/milvus/client/v2/milvusclient"
)

func addr(t *testing.T) string {
	a := os.Getenv("AUTHPROXY_ADDR")
	if a == "" {
		t.Fatal("AUTHPROXY_ADDR is not set: run these through test/container/run.sh")
	}
	return a
}

// root:Milvus through the published port is accepted and forwarded; a wrong
// password is refused by the proxy.
func TestSDKThroughProxy(t *testing.T) {
	a := addr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := milvusclient.New(ctx, &milvusclient.ClientConfig{Address: a, Username: "root", Password: "Milvus"})
	if err != nil {
		t.Fatalf("connect as root:Milvus to %s: %v", a, err)
	}
	defer c.Close(ctx)
	if _, err := c.ListCollections(ctx, milvusclient.NewListCollectionOption()); err != nil {
		t.Fatalf("ListCollections as root through %s: %v", a, err)
	}
	users, err := c.ListUsers(ctx, milvusclient.NewListUserOption())
	if err != nil {
		t.Fatalf("ListUsers as root: %v", err)
	}
	found := false
	for _, u := range users {
		found = found || u == "root"
	}
	if !found {
		t.Fatalf("ListUsers = %v, want root among them", users)
	}

	bad, err := milvusclient.New(ctx, &milvusclient.ClientConfig{Address: a, Username: "root", Password: "wrong"})
	if err == nil {
		_, err = bad.ListCollections(ctx, milvusclient.NewListCollectionOption())
		bad.Close(ctx)
	}
	if err == nil {
		t.Fatal("root with a wrong password was accepted")
	}
}

// The backend's own port, when the script says it must not be reachable from
// outside the pod, refuses a connection.
func TestBackendNotReachable(t *testing.T) {
	b := os.Getenv("BACKEND_ADDR")
	if b == "" {
		t.Fatal("BACKEND_ADDR is not set: run these through test/container/run.sh")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := milvusclient.New(ctx, &milvusclient.ClientConfig{Address: b})
	if err == nil {
		_, err = c.ListCollections(ctx, milvusclient.NewListCollectionOption())
		c.Close(ctx)
	}
	if err == nil {
		t.Fatalf("the backend at %s answered from outside the pod", b)
	}
}
