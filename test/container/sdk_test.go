//go:build container

// The Milvus Go SDK checks that test/container/run.sh
// runs against the authproxy image. The build tag keeps them out of the plain
// `go test ./...`: they need the containers the script starts, and when the
// script runs them a missing address is a failure, not a skip.
//
// Environment: AUTHPROXY_ADDR (host:port of the proxy), and for TLS
// AUTHPROXY_CA (PEM file of the CA) with AUTHPROXY_SERVER_NAME.
package container

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

func env(t *testing.T, name string) string {
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run these through test/container/run.sh", name)
	}
	return v
}

// config is the SDK's configuration for user:password at AUTHPROXY_ADDR,
// over TLS when AUTHPROXY_CA is set.
func config(t *testing.T, user, password string) *milvusclient.ClientConfig {
	cfg := &milvusclient.ClientConfig{Address: env(t, "AUTHPROXY_ADDR"), Username: user, Password: password}
	if ca := os.Getenv("AUTHPROXY_CA"); ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			t.Fatalf("no certificate in %s", ca)
		}
		tlsCfg := &tls.Config{RootCAs: pool, ServerName: env(t, "AUTHPROXY_SERVER_NAME"), MinVersion: tls.VersionTLS12}
		cfg.DialOptions = append([]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg))}, milvusclient.DefaultGrpcOpts...)
	}
	return cfg
}

// accepted checks that user:password lists collections and users through the proxy.
func accepted(ctx context.Context, t *testing.T, user, password string) {
	t.Helper()
	c, err := milvusclient.New(ctx, config(t, user, password))
	if err != nil {
		t.Fatalf("connect as %s to %s: %v", user, os.Getenv("AUTHPROXY_ADDR"), err)
	}
	defer c.Close(ctx)
	if _, err := c.ListCollections(ctx, milvusclient.NewListCollectionOption()); err != nil {
		t.Fatalf("ListCollections as %s: %v", user, err)
	}
	users, err := c.ListUsers(ctx, milvusclient.NewListUserOption())
	if err != nil {
		t.Fatalf("ListUsers as %s: %v", user, err)
	}
	found := false
	for _, u := range users {
		found = found || u == "root"
	}
	if !found {
		t.Fatalf("ListUsers = %v, want root among them", users)
	}
}

// refused checks that a client with user:password (none when user is empty)
// cannot list collections.
func refused(ctx context.Context, t *testing.T, user, password string) {
	t.Helper()
	c, err := milvusclient.New(ctx, config(t, user, password))
	if err == nil {
		_, err = c.ListCollections(ctx, milvusclient.NewListCollectionOption())
		c.Close(ctx)
	}
	if err == nil {
		t.Fatalf("%q with password %q was accepted", user, password)
	}
	t.Logf("%q refused: %v", user, err)
}

// root:Milvus through the published port is accepted and forwarded; a wrong
// password and a call without credentials are refused by the proxy.
func TestSDKThroughProxy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	accepted(ctx, t, "root", "Milvus")
	refused(ctx, t, "root", "wrong")
	refused(ctx, t, "", "")
}

// After `authproxy user passwd root`: AUTHPROXY_PASSWORD is accepted,
// AUTHPROXY_OLD_PASSWORD refused.
func TestSDKChangedPassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	accepted(ctx, t, "root", env(t, "AUTHPROXY_PASSWORD"))
	refused(ctx, t, "root", env(t, "AUTHPROXY_OLD_PASSWORD"))
	refused(ctx, t, "", "")
}

// With the credentials from a read-only Secret, creating a user through the
// Milvus API is refused (the store is read-only) while root still works.
func TestSDKReadOnlyStore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pw := env(t, "AUTHPROXY_PASSWORD")
	accepted(ctx, t, "root", pw)
	c, err := milvusclient.New(ctx, config(t, "root", pw))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	err = c.CreateUser(ctx, milvusclient.NewCreateUserOption("user_1", "P@ssw0rd"))
	if err == nil {
		t.Fatal("CreateUser succeeded on a read-only credential store")
	}
	t.Logf("CreateUser refused: %v", err)
}

// The backend's own port, where the script says it must not be reachable,
// refuses a connection.
func TestBackendNotReachable(t *testing.T) {
	b := env(t, "BACKEND_ADDR")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := milvusclient.New(ctx, &milvusclient.ClientConfig{Address: b})
	if err == nil {
		_, err = c.ListCollections(ctx, milvusclient.NewListCollectionOption())
		c.Close(ctx)
	}
	if err == nil {
		t.Fatalf("the backend at %s answered", b)
	}
}

// The Helm chart on etcd: root (AUTHPROXY_PASSWORD, the chart's generated
// Secret) creates chart_user, or, with CHART_USER_EXISTS=1 (after the pod
// was played again), finds it already there: the user lives in etcd, not
// in the pod. chart_user (CHART_USER_PASSWORD) then authenticates.
func TestSDKUserOnEtcd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	root, err := milvusclient.New(ctx, config(t, "root", env(t, "AUTHPROXY_PASSWORD")))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close(ctx)
	users, err := root.ListUsers(ctx, milvusclient.NewListUserOption())
	if err != nil {
		t.Fatal(err)
	}
	exists := slices.Contains(users, "chart_user")
	pw := env(t, "CHART_USER_PASSWORD")
	switch {
	case os.Getenv("CHART_USER_EXISTS") == "1" && !exists:
		t.Fatalf("chart_user is gone after the pod was played again: users %v", users)
	case os.Getenv("CHART_USER_EXISTS") != "1" && exists:
		t.Fatalf("chart_user exists before it was created: users %v", users)
	case !exists:
		if err := root.CreateUser(ctx, milvusclient.NewCreateUserOption("chart_user", pw)); err != nil {
			t.Fatalf("CreateUser chart_user: %v", err)
		}
	}
	c, err := milvusclient.New(ctx, config(t, "chart_user", pw))
	if err != nil {
		t.Fatalf("connect as chart_user: %v", err)
	}
	defer c.Close(ctx)
	if _, err := c.GetServerVersion(ctx, milvusclient.NewGetServerVersionOption()); err != nil {
		t.Fatalf("GetVersion as chart_user: %v", err)
	}
	refused(ctx, t, "chart_user", pw+"-wrong")
}
