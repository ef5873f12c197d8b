package integration

import (
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/authproxy/authproxy/test/harness"
)

// h2specCases is how many cases h2spec 2.2.1 runs against a server.
const h2specCases = 145

// The frame relay is the HTTP/2 server clients face: h2spec (built from
// its module, a tool of the test module) passes every case on the client
// port, plaintext and over TLS. Its requests are not gRPC, so the relay
// hands them to REST behind it; what h2spec checks (framing, stream
// states, flow control, header blocks) is the relay's.
func TestH2specPassesOnTheFrameRelay(t *testing.T) {
	summary := regexp.MustCompile(`(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed`)
	framesOverBoth(t, func(t *testing.T, dir, extra string, k *pki) {
		var tlsArgs []string
		if k != nil {
			tlsArgs = []string{"-t", "-k"}
		}
		_, p := startPair(t, harness.Options{Dir: dir, Extra: extra})
		host, port, err := net.SplitHostPort(p.Addr)
		must(t, err)
		ctx := testCtx(t, 3*time.Minute)
		args := append([]string{"tool", "h2spec", "-h", host, "-p", port, "-o", "3"}, tlsArgs...)
		out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
		m := summary.FindSubmatch(out)
		if m == nil {
			t.Fatalf("h2spec printed no summary (%v):\n%s", err, out)
		}
		total, _ := strconv.Atoi(string(m[1]))
		passed, _ := strconv.Atoi(string(m[2]))
		t.Logf("h2spec: %s", m[0])
		if err != nil || total < h2specCases || passed != total {
			t.Fatalf("h2spec: %s (exit %v), want all of at least %d cases passed:\n%s", m[0], err, h2specCases, out)
		}
	})
}

// framesOverBoth runs f as the subtests "plaintext" and "tls", each with
// a fresh dir and the config of a proxy on the frame relay (extra); over
// TLS, k holds the server certificate the config names (nil otherwise).
func framesOverBoth(t *testing.T, f func(t *testing.T, dir, extra string, k *pki)) {
	for _, overTLS := range []bool{false, true} {
		name := "plaintext"
		if overTLS {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			extra := "forwarding: frames\n"
			var k *pki
			if overTLS {
				k = newPKI(t, filepath.Join(dir, "tls"), "root")
				extra += tlsSection(k.dir, "none", "")
			}
			f(t, dir, extra, k)
		})
	}
}
