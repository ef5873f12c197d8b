package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
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

// After real traffic, /metrics has each family with the right values.
func TestMetricsAfterTraffic(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	ctx := testCtx(t, 30*time.Second)
	for range 5 {
		must(t, getVersion(ctx, m, "root:Milvus"))
	}
	harness.Password("root", "not-the-password")
	_ = getVersion(ctx, m, "root:not-the-password")
	_, _ = m.GetVersion(ctx, &milvuspb.GetVersionRequest{})
	st, err := m.CreateCredential(withToken(ctx, "root:Milvus"), &milvuspb.CreateCredentialRequest{Username: "metered", Password: "UEBzc3cwcmQ="})
	must(t, err)
	if st.GetCode() != 0 {
		t.Fatal(st)
	}

	// 5 calls as root (1 cold, 4 cached), 1 wrong password (cold), 1 without
	// token, 1 CreateCredential as root (cached).
	const gv = `method="/milvus.proto.milvus.MilvusService/GetVersion"`
	for series, want := range map[string]float64{
		`authproxy_grpc_calls_total{code="OK",` + gv + `}`:                   5,
		`authproxy_grpc_calls_total{code="Unauthenticated",` + gv + `}`:      2,
		`authproxy_grpc_call_duration_seconds_count{` + gv + `}`:             7,
		`authproxy_auth_total{reason="password",result="success"}`:           1,
		`authproxy_auth_total{reason="cached",result="success"}`:             5,
		`authproxy_auth_total{reason="bad_password",result="failure"}`:       1,
		`authproxy_auth_total{reason="missing",result="failure"}`:            1,
		`authproxy_auth_cache_hits_total`:                                    5,
		`authproxy_auth_cache_misses_total`:                                  2,
		`authproxy_auth_cache_entries`:                                       1,
		`authproxy_password_hash_verifications_total`:                        2,
		`authproxy_password_hash_verifications_in_flight`:                    0,
		`authproxy_backend_up`:                                               1,
		`authproxy_user_operations_total{op="create_user",result="success"}`: 1,
		`authproxy_auth_lockouts_total{kind="user_address"}`:                 0,
	} {
		if got := metricValue(t, p, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	metrics := p.Metrics()
	for _, family := range []string{"authproxy_reloads_total", "authproxy_tls_certificate_expiry_timestamp_seconds", "authproxy_auth_lockouts_total", "go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(metrics, "# TYPE "+family+" ") {
			t.Errorf("metric family %s missing", family)
		}
	}
}

// /readyz turns 503 when the backend stops and 200 when it returns;
// `authproxy healthcheck` follows.
func TestReadinessFollowsBackend(t *testing.T) {
	fake, p := startPair(t, harness.Options{})
	healthcheck := func(path string) error {
		return exec.Command(harness.Binary(t), "healthcheck", "--admin", p.AdminAddr, "--path", path).Run()
	}
	eventually(t, 5*time.Second, "ready", func() error {
		if code, body := p.AdminStatus("/readyz"); code != 200 {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	must(t, healthcheck("/readyz"))
	fake.Stop()
	eventually(t, 5*time.Second, "unready without the backend", func() error {
		if code, body := p.AdminStatus("/readyz"); code != 503 || !strings.Contains(body, fake.Addr()) {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	if healthcheck("/readyz") == nil {
		t.Error("healthcheck --path /readyz exited 0 with the backend down")
	}
	must(t, healthcheck("/healthz")) // alive all the same
	must(t, fake.Restart())
	eventually(t, 10*time.Second, "ready again", func() error {
		if code, body := p.AdminStatus("/readyz"); code != 200 {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	var detail struct {
		Ready  bool
		Checks map[string]struct{ OK bool }
	}
	_, body := p.AdminStatus("/readyz")
	must(t, json.Unmarshal([]byte(body), &detail))
	if !detail.Ready || !detail.Checks["backend"].OK || !detail.Checks["credentials"].OK {
		t.Fatalf("readiness detail: %s", body)
	}
}

// 1,000 wrong passwords for one user from one address are mostly refused
// without hashing; the right password works after the backoff; other users
// are not affected; the log and a metric say it was a lockout.
func TestBruteForceLockout(t *testing.T) {
	_, p := startPair(t, harness.Options{Extra: "auth:\n  bruteForce:\n    enabled: true\n    threshold: 5\n    backoff: 200ms\n    maxBackoff: 2s\n    forgive: 1m\n    tracked: 1000\n"})
	harness.Password("other", "other-pw-1")
	cli(t, p, "other-pw-1\n", "user", "add", "other", "--password-stdin")
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	ctx := testCtx(t, 60*time.Second)
	hashesBefore := metricValue(t, p, "authproxy_password_hash_verifications_total")

	harness.Password("root", "guess-0000")
	var wg sync.WaitGroup
	var mu sync.Mutex
	unexpected := 0
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 125 {
				err := getVersion(ctx, m, fmt.Sprintf("root:guess-%d%03d", w, i))
				if st := status.Convert(err); st.Code() != codes.Unauthenticated || st.Message() != msgPassword {
					mu.Lock()
					unexpected++
					mu.Unlock()
				}
			}
		}()
	}
	// Meanwhile another user logs in for the first time, from the same address.
	eventually(t, 5*time.Second, "another user during the attack", func() error { return getVersion(ctx, m, "other:other-pw-1") })
	wg.Wait()
	// During the lockout even the right password is refused, without
	// hashing (checked first, while the lockout holds)... The lockout in
	// force when the attack ended may be about to end (it once ended
	// between the two, in CI), so the check follows a fresh one: the first
	// wrong guess hashed again, once that lockout is over, locks the pair
	// for maxBackoff (the failures are far past the threshold).
	hashesAfterAttack := metricValue(t, p, "authproxy_password_hash_verifications_total")
	eventually(t, 10*time.Second, "a wrong guess hashed again after the lockout", func() error {
		_ = getVersion(ctx, m, "root:guess-after")
		if metricValue(t, p, "authproxy_password_hash_verifications_total") == hashesAfterAttack {
			return errors.New("refused without hashing: still locked")
		}
		return nil
	})
	if err := refused(ctx, m, "root:Milvus"); err != nil {
		t.Fatalf("right password during the lockout: %v", err)
	}
	if unexpected != 0 {
		t.Fatalf("%d refusals did not carry Milvus's message (a lockout must not be an oracle)", unexpected)
	}
	hashes := metricValue(t, p, "authproxy_password_hash_verifications_total") - hashesBefore
	t.Logf("1000 wrong passwords cost %v hashes", hashes)
	if hashes > 100 {
		t.Fatalf("1000 wrong passwords cost %v hashes: not mostly refused without hashing", hashes)
	}
	if metricValue(t, p, `authproxy_auth_total{reason="locked_out",result="failure"}`) < 800 || metricValue(t, p, `authproxy_auth_lockouts_total{kind="user_address"}`) < 1 {
		t.Fatal("lockouts not counted")
	}
	if !strings.Contains(p.Logs(), "reason=locked_out") {
		t.Fatal("no log line says it was a lockout")
	}
	// ...and after the backoff it works again (refused attempts do not
	// extend a lockout, so polling with the right password is fair).
	eventually(t, 10*time.Second, "the right password after the backoff", func() error { return getVersion(ctx, m, "root:Milvus") })
	must(t, getVersion(ctx, m, "other:other-pw-1"))
}

// JSON logs with an access line per call (off by default) and an audit
// line per user change.
func TestAccessAndAuditLogs(t *testing.T) {
	_, p := startPair(t, harness.Options{Extra: "log:\n  format: json\n  accessLog: true\n"})
	ctx := testCtx(t, 30*time.Second)
	c := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "root", Password: "Milvus"})
	harness.Password("audited", "P@ssw0rd")
	must(t, c.CreateUser(ctx, milvusclient.NewCreateUserOption("audited", "P@ssw0rd")))
	_, err := c.ListCollections(ctx, milvusclient.NewListCollectionOption())
	must(t, err)

	var access, audit int
	eventually(t, 2*time.Second, "log lines", func() error {
		access, audit = 0, 0
		for _, line := range strings.Split(strings.TrimSpace(p.Logs()), "\n") {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				return fmt.Errorf("not a JSON log line: %q", line)
			}
			switch rec["msg"] {
			case "call":
				if rec["method"] == "/milvus.proto.milvus.MilvusService/ShowCollections" && rec["user"] == "root" && rec["code"] == "OK" && rec["peer"] != "" {
					access++
				}
			case "audit: user changed":
				if rec["op"] == "create_user" && rec["by"] == "root" && rec["target"] == "audited" && rec["result"] == "success" {
					audit++
				}
			}
		}
		if access == 0 || audit != 1 {
			return fmt.Errorf("access lines %d, audit lines %d", access, audit)
		}
		return nil
	})
}
