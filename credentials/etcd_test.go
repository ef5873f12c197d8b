package credentials

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
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
