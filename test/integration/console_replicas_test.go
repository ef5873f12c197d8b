package integration

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/authproxy/authproxy/test/harness"
)

// replicaRow is one row of the "now" page's replica table.
type replicaRow struct {
	Name       string `json:"name"`
	Registered string `json:"registered"`
	Self       bool   `json:"self"`
}

// replicaRows reloads the "now" page and reads its replica table.
func (b *browser) replicaRows() []replicaRow {
	b.t.Helper()
	b.open("/now")
	rows, err := run(b, chromedp.Evaluate[[]replicaRow](`[...document.querySelectorAll("#replicas tr")].slice(1).map(r => ({
		name: r.cells[0].firstChild.textContent.trim(), registered: r.cells[1] ? r.cells[1].textContent : "",
		self: r.classList.contains("self")}))`))
	if err != nil {
		b.t.Fatalf("the replica table: %v", err)
	}
	return rows
}

// TestConsoleListsReplicas: three replicas on one etcd; the console of
// the first lists all three (itself marked, each with when it
// registered); one killed (no revoke: its lease must expire), the page
// lists the other two within the lease time.
func TestConsoleListsReplicas(t *testing.T) {
	etcd := harness.StartEtcd(t)
	fake := startFake(t)
	store := fmt.Sprintf("credentials:\n  store: etcd\n  etcd:\n    endpoints: [%q]\n    prefix: /authproxy-console/\n", etcd.URL)
	consoleAddr := harness.FreeAddr(t)
	var ps []*harness.Proxy
	for i := range 3 {
		extra := ""
		if i == 0 {
			extra = fmt.Sprintf("console:\n  listen: %q\n", consoleAddr)
		}
		ps = append(ps, harness.Start(t, harness.Options{Backend: fake.Addr(), Credentials: store, Extra: extra}))
	}
	// root's password is the word "Milvus", which logs may hold as a
	// word; its token forms must never appear.
	harness.Secret("root:Milvus")
	harness.Secret(base64.StdEncoding.EncodeToString([]byte("root:Milvus")))
	b := startBrowser(t, "http://"+consoleAddr)
	b.signIn("root", "Milvus")
	if who := b.text("#whoami"); !strings.HasPrefix(who, "root") {
		t.Fatalf("signed in as %q", who)
	}

	var rows []replicaRow
	within(t, 15*time.Second, "the console lists three replicas", func() error {
		if rows = b.replicaRows(); len(rows) != 3 {
			return fmt.Errorf("%d rows: %+v", len(rows), rows)
		}
		return nil
	})
	self := 0
	for _, r := range rows {
		if r.Name == "" || r.Registered == "unknown" || !strings.HasSuffix(r.Registered, "Z") {
			t.Errorf("a replica row without name or registration time: %+v", r)
		}
		if r.Self {
			self++
		}
	}
	if self != 1 {
		t.Fatalf("%d rows marked as this replica, want 1: %+v", self, rows)
	}
	b.shot("now-replicas")

	// SIGKILL: the replica cannot revoke its lease; etcd expires it
	// (replicaTTL, 5 s) and the registry's watch sees the key go.
	ps[2].Kill()
	before := rows
	took := within(t, 20*time.Second, "the console lists the two replicas left", func() error {
		if rows = b.replicaRows(); len(rows) != 2 {
			return fmt.Errorf("%d rows: %+v", len(rows), rows)
		}
		return nil
	})
	for _, r := range rows {
		if !slices.Contains(before, r) {
			t.Fatalf("after the kill, %+v was not listed before: %+v", r, before)
		}
	}
	if !slices.ContainsFunc(rows, func(r replicaRow) bool { return r.Self }) {
		t.Fatalf("the replica serving the console is gone from its list: %+v", rows)
	}
	b.shot("now-replicas-after-kill")
	t.Logf("a killed replica left the console's list %.1fs after SIGKILL (lease 5 s)", took.Seconds())
}
