package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/authproxy/authproxy/test/harness"
)

// The proxy's own methods (CreateCredential and the rest) authenticate
// before they read a body: 3 unauthenticated and 3 wrong-password 100 MiB
// calls leave peak memory far below their size, and an authenticated call
// is capped at what a user-management request needs.
func TestOwnMethodBodiesAreNotReadBeforeAuthentication(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	ctx := testCtx(t, 120*time.Second)
	big := &milvuspb.CreateCredentialRequest{Username: "flood", Password: strings.Repeat("A", 100<<20)}
	harness.Password("root", "wrong-password")

	p.ResetPeakRSS(t)
	before := p.RSS(t)
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := ctx
			if i%2 == 1 {
				c = withToken(ctx, "root:wrong-password")
			}
			_, err := m.CreateCredential(c, big)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("unauthenticated 100 MiB CreateCredential: %v, want Unauthenticated", err)
		}
	}
	growth := p.PeakRSS(t) - before
	t.Logf("6 unauthenticated 100 MiB CreateCredential calls: peak RSS +%d MiB (bound 128 MiB; was +890 MiB for 3)", growth>>20)
	if growth > 128<<20 {
		t.Fatalf("peak RSS grew by %d MiB for refused calls, bound 128 MiB", growth>>20)
	}

	// Authenticated, a request larger than any user-management call needs
	// is refused.
	_, err := m.CreateCredential(withToken(ctx, "root:Milvus"), &milvuspb.CreateCredentialRequest{Username: "big", Password: strings.Repeat("A", 100<<10)})
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "65536 bytes") {
		t.Fatalf("authenticated 100 KiB CreateCredential: %v, want ResourceExhausted naming the 64 KiB cap", err)
	}
}

// Failed logins claiming names of megabytes: neither the limiter nor the
// log keeps them. 40 names of 4 MiB once retained +188 MiB and wrote
// +160 MiB of log.
func TestHugeClaimedNamesAreNotKept(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	ctx := testCtx(t, 120*time.Second)
	logBefore := len(p.Logs())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var accepted int
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("%02d", i) + strings.Repeat("n", 4<<20)
			err := getVersion(ctx, m, name+":wrong-password")
			if err == nil {
				mu.Lock()
				accepted++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if accepted > 0 {
		t.Fatalf("%d logins with made-up 4 MiB names accepted", accepted)
	}
	logGrowth := len(p.Logs()) - logBefore
	// The refused names are gone once the requests are: after the idle
	// release of hashing memory, RSS is back near where a fresh proxy is.
	var rss int64
	eventually(t, 10*time.Second, "memory released", func() error {
		if rss = p.RSS(t); rss > 96<<20 {
			return fmt.Errorf("RSS %d MiB", rss>>20)
		}
		return nil
	})
	t.Logf("40 failed logins with 4 MiB names: log +%d bytes, RSS after %d MiB", logGrowth, rss>>20)
	if logGrowth > 64<<10 {
		t.Fatalf("the log grew by %d bytes for 40 refusals: names are logged unbounded", logGrowth)
	}
}

// 1,000 refusals of every kind write at most 60 log lines; the lines and
// their summaries account for exactly 1,000, as do the metrics.
func TestFailureLogIsRateLimitedAndExact(t *testing.T) {
	_, p := startPair(t, harness.Options{Extra: "log:\n  format: json\n"})
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	ctx := testCtx(t, 120*time.Second)
	kinds := []func(i int) context.Context{
		func(int) context.Context { return ctx },                                                           // missing
		func(int) context.Context { return metadata.AppendToOutgoingContext(ctx, "authorization", "%%%") }, // malformed
		func(i int) context.Context { return withToken(ctx, fmt.Sprintf("root:wrong-%d", i)) },             // wrong password
		func(i int) context.Context { return withToken(ctx, fmt.Sprintf("ghost_%d:pw-%d", i%37, i)) },      // unknown users
		func(i int) context.Context { return withToken(ctx, fmt.Sprintf("no-colon-api-key-%d", i)) },       // bad API key
	}
	for i := range 1000 {
		harness.Password("x", fmt.Sprintf("wrong-%d", i))
		harness.Password("x", fmt.Sprintf("pw-%d", i))
	}
	var wg sync.WaitGroup
	work := make(chan int)
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				_, err := m.GetVersion(kinds[i%len(kinds)](i), &milvuspb.GetVersionRequest{})
				if err == nil {
					t.Errorf("call %d was accepted", i)
				}
			}
		}()
	}
	for i := range 1000 {
		work <- i
	}
	close(work)
	wg.Wait()

	failures := 0.0
	for _, reason := range []string{"missing", "invalid_format", "bad_password", "unknown_user", "bad_api_key", "locked_out", "busy"} {
		failures += metricValue(t, p, fmt.Sprintf(`authproxy_auth_total{reason=%q,result="failure"}`, reason))
	}
	if failures != 1000 {
		t.Fatalf("metrics count %v failures, want exactly 1000", failures)
	}
	p.Stop() // flushes the pending summary
	lines, accounted := 0, 0
	for _, line := range strings.Split(strings.TrimSpace(p.Logs()), "\n") {
		var rec struct {
			Msg   string `json:"msg"`
			Count int    `json:"count"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil || !strings.HasPrefix(rec.Msg, "authentication fail") {
			continue
		}
		lines++
		if rec.Msg == "authentication failed" {
			accounted++
		} else {
			accounted += rec.Count
		}
	}
	t.Logf("1000 refusals: %d log lines accounting for %d", lines, accounted)
	if lines > 60 {
		t.Fatalf("1000 refusals wrote %d log lines, bound 60", lines)
	}
	if accounted != 1000 {
		t.Fatalf("the log accounts for %d refusals, want exactly 1000", accounted)
	}
}
