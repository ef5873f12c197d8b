package integration

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/authproxy/authproxy/test/harness"
)

// dialFrom opens a raw gRPC connection whose source address is localIP
// (any of 127.0.0.0/8 on Linux), so one test can play two clients.
func dialFrom(t *testing.T, addr, localIP string) milvuspb.MilvusServiceClient {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return d.DialContext(ctx, "tcp", a) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return milvuspb.NewMilvusServiceClient(conn)
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// The lockout must not help an attacker. Once (root, attacker's address)
// is locked, root's right password, although cached, is refused from that
// address, and a refusal takes as long as a hash; root's clients on other
// addresses keep working, and the owner's success does not reset the
// attacker's count.
func TestLockoutRefusesTheCachedPasswordFromTheLockedAddressOnly(t *testing.T) {
	_, p := startPair(t, harness.Options{Extra: "auth:\n  bruteForce:\n    enabled: true\n    threshold: 5\n    backoff: 1m\n    maxBackoff: 1m\n    forgive: 10m\n    tracked: 1000\n"})
	ctx := testCtx(t, 60*time.Second)
	attacker, owner := dialFrom(t, p.Addr, "127.0.0.66"), dialFrom(t, p.Addr, "127.0.0.1")
	must(t, getVersion(ctx, attacker, "root:Milvus")) // cached from now on
	must(t, getVersion(ctx, owner, "root:Milvus"))

	var wrong []time.Duration
	for i := range 5 {
		guess := fmt.Sprintf("root:guess-%d", i)
		harness.Password("root", guess[5:])
		start := time.Now()
		if err := refused(ctx, attacker, guess); err != nil {
			t.Fatal(err)
		}
		wrong = append(wrong, time.Since(start))
		// The owner's success between guesses resets nothing of the attacker's.
		must(t, getVersion(ctx, owner, "root:Milvus"))
	}
	var locked []time.Duration
	for range 20 {
		start := time.Now()
		if err := refused(ctx, attacker, "root:Milvus"); err != nil {
			t.Fatalf("cached right password from the locked address: %v", err)
		}
		locked = append(locked, time.Since(start))
	}
	must(t, getVersion(ctx, owner, "root:Milvus"))
	must(t, getVersion(ctx, dialFrom(t, p.Addr, "127.0.0.2"), "root:Milvus"))

	t.Logf("wrong password (hashed): median %v; locked refusal: median %v", median(wrong), median(locked))
	// A locked refusal waits out the running average of a hash; half of a
	// hash's median is a margin for a noisy machine, and still 100 times
	// slower than the 16,000 refusals a second this once allowed.
	if median(locked) < median(wrong)/2 {
		t.Fatalf("a locked refusal (median %v) is cheaper than a hashed guess (median %v)", median(locked), median(wrong))
	}
	if got := metricValue(t, p, `authproxy_auth_lockouts_total{kind="user_address"}`); got < 1 {
		t.Fatalf("lockouts counted: %v", got)
	}
	if got := metricValue(t, p, `authproxy_auth_total{reason="locked_out",result="failure"}`); got != 20 {
		t.Fatalf("locked-out refusals counted: %v, want 20", got)
	}
}

// 200 concurrent UpdateCredential calls with wrong old passwords: at most
// the pool's size of hashes at once, a lockout, and then the right old
// password is refused from that address too, while it works from another.
func TestUpdateCredentialOldPasswordIsBoundedAndLocked(t *testing.T) {
	_, p := startPair(t, harness.Options{Extra: "auth:\n  maxConcurrentVerifications: 2\n  bruteForce:\n    enabled: true\n    threshold: 10\n    backoff: 1m\n    maxBackoff: 1m\n    forgive: 10m\n    tracked: 1000\n"})
	addUser(t, p, "victim", "Victim-pw-1")
	ctx := testCtx(t, 120*time.Second)
	attacker := dialFrom(t, p.Addr, "127.0.0.66")
	asVictim := withToken(ctx, "victim:Victim-pw-1")
	_, err := attacker.GetVersion(asVictim, &milvuspb.GetVersionRequest{}) // cached: the calls below are authenticated
	must(t, err)
	p.ResetPeakRSS(t)
	rssBefore := p.RSS(t)

	var wg sync.WaitGroup
	var mu sync.Mutex
	outcomes := map[string]int{}
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := attacker.UpdateCredential(asVictim, &milvuspb.UpdateCredentialRequest{
				Username: "victim", OldPassword: b64(fmt.Sprintf("wrong-%03d", i)), NewPassword: b64("Taken-over-1"),
			})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				outcomes["error: "+err.Error()]++
			default:
				outcomes[st.GetReason()]++
			}
		}()
	}
	wg.Wait()
	const refusal = "old password not correct for victim: not authenticated"
	if outcomes[refusal] != 200 {
		t.Fatalf("200 wrong old passwords: %v", outcomes)
	}
	peakHashes := metricValue(t, p, "authproxy_password_hash_verifications_in_flight_peak")
	hashes := metricValue(t, p, "authproxy_password_hash_verifications_total")
	growth := p.PeakRSS(t) - rssBefore
	t.Logf("200 wrong old passwords: %v hashes, at most %v at once; peak RSS +%d MiB", hashes, peakHashes, growth>>20)
	if peakHashes > 2 {
		t.Fatalf("%v hashes ran at once, pool size 2", peakHashes)
	}
	if hashes > 20 {
		t.Fatalf("%v hashes for 200 wrong old passwords: the lockout did not stop them", hashes)
	}
	if growth > 128<<20 {
		t.Fatalf("peak RSS grew by %d MiB, bound 128 MiB", growth>>20)
	}
	if got := metricValue(t, p, `authproxy_auth_lockouts_total{kind="user_address"}`); got < 1 {
		t.Fatalf("no lockout: %v", got)
	}

	// Locked: nothing for victim succeeds from that address any more, not
	// even the call's own cached login, let alone the right old password...
	_, err = attacker.UpdateCredential(asVictim, &milvuspb.UpdateCredentialRequest{
		Username: "victim", OldPassword: b64("Victim-pw-1"), NewPassword: b64("Taken-over-1"),
	})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("right old password from the locked address: %v, want Unauthenticated", err)
	}
	// ...and accepted from another.
	owner := dialFrom(t, p.Addr, "127.0.0.1")
	harness.Password("victim", "Victim-pw-2")
	st, err := owner.UpdateCredential(withToken(ctx, "victim:Victim-pw-1"), &milvuspb.UpdateCredentialRequest{
		Username: "victim", OldPassword: b64("Victim-pw-1"), NewPassword: b64("Victim-pw-2"),
	})
	must(t, err)
	if st.GetCode() != 0 {
		t.Fatalf("the owner's change from another address: %v", st)
	}
}

// floodGuess is the i-th wrong-password login of a flood: root's, or for
// odd i a name that does not exist (a spray).
func floodGuess(i int) string {
	if i%2 == 1 {
		return fmt.Sprintf("sprayed_%d:flood-guess", i)
	}
	return "root:flood-guess"
}

// A first login completes within 3 s while 400 concurrent wrong passwords
// flood the proxy from another address, and a cached caller stays fast.
func TestFirstLoginUnderAWrongPasswordFlood(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	addUser(t, p, "alice", "Alice-pw-1")
	ctx := testCtx(t, 120*time.Second)
	flooder, alice, cached := dialFrom(t, p.Addr, "127.0.0.66"), dialFrom(t, p.Addr, "127.0.0.1"), dialFrom(t, p.Addr, "127.0.0.3")
	must(t, getVersion(ctx, cached, "root:Milvus"))

	harness.Password("root", "flood-guess")
	var wg sync.WaitGroup
	var mu sync.Mutex
	unexpected := map[string]int{}
	for i := range 400 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := getVersion(ctx, flooder, floodGuess(i))
			if c := status.Code(err); c != codes.Unauthenticated && c != codes.Unavailable {
				mu.Lock()
				unexpected[err.Error()]++
				mu.Unlock()
			}
		}()
	}
	time.Sleep(50 * time.Millisecond) // let the flood queue up first
	start := time.Now()
	must(t, getVersion(ctx, alice, "alice:Alice-pw-1"))
	firstLogin := time.Since(start)
	var lat []time.Duration
	for range 20 {
		s := time.Now()
		must(t, getVersion(ctx, cached, "root:Milvus"))
		lat = append(lat, time.Since(s))
	}
	wg.Wait()
	t.Logf("first login under a 400-way flood: %v; cached caller meanwhile: median %v", firstLogin, median(lat))
	if len(unexpected) > 0 {
		t.Fatalf("flood calls answered otherwise than Unauthenticated or Unavailable: %v", unexpected)
	}
	if firstLogin > 3*time.Second {
		t.Fatalf("first login took %v under the flood, bound 3s", firstLogin)
	}
	if m := median(lat); m > 100*time.Millisecond {
		t.Fatalf("cached caller's median %v during the flood, bound 100ms", m)
	}
}

// An imported bcrypt hash verifies ten times faster than argon2id; its
// wrong passwords must not answer faster than an unknown name's, or the
// timing tells which names exist.
func TestBcryptUserIsNoTimingOracle(t *testing.T) {
	_, p := startPair(t, harness.Options{Extra: "auth:\n  bruteForce:\n    enabled: false\n"})
	harness.Password("imported", "Imported-pw-1")
	htpasswd := writeHtpasswd(t, "imported", "Imported-pw-1")
	afterReload(t, p, func() { cli(t, p, "", "user", "import", htpasswd) })
	ctx := testCtx(t, 120*time.Second)
	m := dialFrom(t, p.Addr, "127.0.0.1")
	must(t, getVersion(ctx, m, "imported:Imported-pw-1"))

	timeOf := func(token string) time.Duration {
		start := time.Now()
		if err := refused(ctx, m, token); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	var bcryptUser, unknown []time.Duration
	for i := range 15 {
		harness.Password("x", fmt.Sprintf("wrong-%d", i))
		bcryptUser = append(bcryptUser, timeOf(fmt.Sprintf("imported:wrong-%d", i)))
		unknown = append(unknown, timeOf(fmt.Sprintf("no_such_user_%d:wrong-%d", i, i)))
	}
	t.Logf("wrong password: bcrypt user median %v, unknown name median %v", median(bcryptUser), median(unknown))
	if median(bcryptUser) < median(unknown)*6/10 {
		t.Fatalf("a bcrypt user's wrong password (median %v) answers much faster than an unknown name (median %v)", median(bcryptUser), median(unknown))
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// writeHtpasswd writes an htpasswd file with one bcrypt user at
// htpasswd -B's default cost (5).
func writeHtpasswd(t *testing.T, user, password string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), 5)
	must(t, err)
	path := filepath.Join(t.TempDir(), "htpasswd")
	must(t, os.WriteFile(path, []byte(user+":"+string(hash)+"\n"), 0o600))
	return path
}

// addUser adds a user with the CLI and waits until the proxy has reloaded
// the file, without logging in (which would cache the password).
func addUser(t *testing.T, p *harness.Proxy, name, password string) {
	t.Helper()
	harness.Password(name, password)
	afterReload(t, p, func() { cli(t, p, password+"\n", "user", "add", name, "--password-stdin") })
}

func afterReload(t *testing.T, p *harness.Proxy, change func()) {
	t.Helper()
	const reloads = `authproxy_reloads_total{file="credentials",result="success"}`
	before := metricValue(t, p, reloads)
	change()
	eventually(t, 10*time.Second, "credential file reloaded", func() error {
		if metricValue(t, p, reloads) == before {
			return fmt.Errorf("no reload yet")
		}
		return nil
	})
}

// percentile is the p-th percentile (0-100) of d.
func percentile(d []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, len(s)*p/100)]
}

// Cached callers do not wait behind the hashing pool: with
// maxConcurrentVerifications 4 (more than a 2-processor machine can give),
// 400 concurrent wrong-password logins from another address keep every
// hash slot busy and the queues full, and a caller whose password is cached
// is timed before and during the flood, three rounds. The lockout is off,
// so the flood hashes for as long as it runs (as one spread over many
// addresses would). Bounds: the proxy warns at start; the hashes running at
// once leave the fast path a processor (GOMAXPROCS-1, at least 1); a full
// queue's refusal waits, so the flood's calls stay far below the 16,000 a
// second instant refusals allowed; and the cached caller's median stays
// within 25 ms of its baseline (it was 139 ms). The latencies themselves
// are figures for the report: the machine is shared.
func TestCachedCallersUnderAHashFlood(t *testing.T) {
	_, p := startPair(t, harness.Options{Extra: "auth:\n  maxConcurrentVerifications: 4\n  bruteForce:\n    enabled: false\n"})
	ctx := testCtx(t, 120*time.Second)
	if procs := runtime.GOMAXPROCS(0); procs <= 4 && !strings.Contains(p.Logs(), "auth.maxConcurrentVerifications would leave no processor") {
		t.Errorf("no warning at start about 4 hash slots on %d processors", procs)
	}
	flooder, cached := dialFrom(t, p.Addr, "127.0.0.66"), dialFrom(t, p.Addr, "127.0.0.3")
	must(t, getVersion(ctx, cached, "root:Milvus"))
	harness.Password("root", "flood-guess")
	timeCalls := func(n int) []time.Duration {
		lat := make([]time.Duration, 0, n)
		for range n {
			start := time.Now()
			must(t, getVersion(ctx, cached, "root:Milvus"))
			lat = append(lat, time.Since(start))
			time.Sleep(2 * time.Millisecond)
		}
		return lat
	}
	const rounds, calls = 3, 150
	var base50, base99, flood50, flood99 []time.Duration
	var attempts atomic.Int64
	var flooding time.Duration
	hashes0 := metricValue(t, p, "authproxy_password_hash_verifications_total")
	for round := range rounds {
		base := timeCalls(calls)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		start := time.Now()
		for i := range 400 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					err := getVersion(cctx, flooder, floodGuess(i))
					cancel()
					attempts.Add(1)
					if c := status.Code(err); c != codes.Unauthenticated && c != codes.Unavailable {
						t.Errorf("a flood call: %v, want Unauthenticated or Unavailable", err)
						return
					}
				}
			}()
		}
		time.Sleep(500 * time.Millisecond) // every slot busy, the queues full
		during := timeCalls(calls)
		close(stop)
		wg.Wait()
		flooding += time.Since(start)
		t.Logf("round %d: cached caller p50 %v p99 %v before the flood, p50 %v p99 %v during it", round+1,
			percentile(base, 50), percentile(base, 99), percentile(during, 50), percentile(during, 99))
		base50, base99 = append(base50, percentile(base, 50)), append(base99, percentile(base, 99))
		flood50, flood99 = append(flood50, percentile(during, 50)), append(flood99, percentile(during, 99))
	}
	hashes := metricValue(t, p, "authproxy_password_hash_verifications_total") - hashes0
	peak := metricValue(t, p, "authproxy_password_hash_verifications_in_flight_peak")
	rate := float64(attempts.Load()) / flooding.Seconds()
	t.Logf("cached caller, medians of %d rounds: p50 %v -> %v, p99 %v -> %v; the flood: %d wrong-password calls in %v (%.0f a second), %v hashes, at most %v at once",
		rounds, median(base50), median(flood50), median(base99), median(flood99), attempts.Load(), flooding.Round(100*time.Millisecond), rate, hashes, peak)
	if slots := max(1, runtime.GOMAXPROCS(0)-1); hashes == 0 || peak > float64(min(4, slots)) {
		t.Errorf("%v hashes, at most %v at once; want some, at most %d (GOMAXPROCS-1)", hashes, peak, min(4, slots))
	}
	if rate > 2000 {
		t.Errorf("the flood made %.0f calls a second: refusals for a full queue are answered at once", rate)
	}
	if d := median(flood50) - median(base50); d > 25*time.Millisecond {
		t.Errorf("the cached caller's median went from %v to %v under the flood, bound +25 ms", median(base50), median(flood50))
	}
}
