package credentials

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// A deadline that passes on the etcd member first is a timeout, to be
// tried on another member, not an answer: etcd 3.4 says it as Unknown
// "context deadline exceeded" (a leader kill once refused a write so).
func TestExpiredOnTheServerIsATimeout(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{status.Error(codes.Unknown, context.DeadlineExceeded.Error()), true},
		{status.Error(codes.DeadlineExceeded, "etcdserver: request timed out"), true},
		{status.Error(codes.Unknown, "etcdserver: something else"), false},
		{status.Error(codes.PermissionDenied, "etcdserver: permission denied"), false},
		{errors.New("context deadline exceeded"), false},
	} {
		if got := expiredOnTheServer(c.err); got != c.want {
			t.Errorf("expiredOnTheServer(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// Each attempt picks its member anew: a member whose connection is lost
// comes last, after one that merely timed out with its connection up, and
// one not avoided comes first. The order it starts from stays: the member
// after the last one tried.
func TestNextAttemptLeavesALostMemberForLast(t *testing.T) {
	srv := grpc.NewServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := closed.Addr().String()
	closed.Close() // nothing listens there now: connections are refused

	member := func(name, addr string, want connectivity.State) *etcdMember {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.Connect()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for st := conn.GetState(); st != want; st = conn.GetState() {
			if !conn.WaitForStateChange(ctx, st) {
				t.Fatalf("%s: connection %v, want %v", addr, st, want)
			}
		}
		return &etcdMember{endpoint: name, conn: conn}
	}
	a := member("a", ln.Addr().String(), connectivity.Ready)
	b := member("b", deadAddr, connectivity.TransientFailure)
	c := member("c", ln.Addr().String(), connectivity.Ready)
	s := &EtcdStore{members: []*etcdMember{a, b, c}}
	s.preferred.Store(1) // b answered last, then its member died

	avoid := func(m *etcdMember) { m.avoidUntil.Store(time.Now().Add(time.Minute).UnixNano()) }
	for _, step := range []struct {
		what  string
		last  *etcdMember
		avoid *etcdMember
		want  *etcdMember
	}{
		{"first attempt, from the preferred member, which is lost", nil, nil, c},
		{"after c, which timed out", c, c, a},
		{"after a, which timed out too: c, connected, before lost b", a, a, c},
	} {
		if step.avoid != nil {
			avoid(step.avoid)
		}
		if got := s.next(step.last); got != step.want {
			t.Errorf("%s: next is %s, want %s", step.what, got.endpoint, step.want.endpoint)
		}
	}
}
