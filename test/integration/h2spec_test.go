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

// h2spec (built from its module, a tool of the test module) passes every
// case on the client port, plaintext and over TLS, on the core of the run
// (the frame relay, or the grpc core with AUTHPROXY_FORWARDING=grpc).
// Its requests are not gRPC, so they end at REST. On the frame relay what
// h2spec checks (framing, stream states, flow control, header blocks) is
// the relay's; on the grpc core the port's sniffer answers everything
// before the first request (SETTINGS and PING at once, protocol errors
// with GOAWAY) and Go's HTTP/2 server the rest.
//
// h2spec sends no token. On the frame relay authentication stays on: the
// relay reads every frame h2spec sends whatever REST answers. On the grpc
// core it is off: there REST answers each request 401 at once, and Go's
// HTTP/2 server may then end the stream before it reads the frames h2spec
// sends next (a content-length that DATA contradicts, a stream window
// overflow), which RFC 9113 §8.1 allows but h2spec does not expect (11
// failures in 20 runs of each of those 3 cases).
func TestH2specPassesOnTheClientPort(t *testing.T) {
	summary := regexp.MustCompile(`(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed`)
	overBoth(t, "", func(t *testing.T, dir, extra string, k *pki) {
		var tlsArgs []string
		if k != nil {
			tlsArgs = []string{"-t", "-k"}
		}
		_, p := startPair(t, harness.Options{Dir: dir, Extra: extra, AuthOff: harness.Core() == "grpc"})
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

// framesOverBoth is overBoth on the frame relay.
func framesOverBoth(t *testing.T, f func(t *testing.T, dir, extra string, k *pki)) {
	overBoth(t, "forwarding: frames\n", f)
}

// overBoth runs f as the subtests "plaintext" and "tls", each with a fresh
// dir and the config of a proxy (extra: core, the run's if empty, and TLS);
// over TLS, k holds the server certificate the config names (nil otherwise).
func overBoth(t *testing.T, core string, f func(t *testing.T, dir, extra string, k *pki)) {
	for _, overTLS := range []bool{false, true} {
		name := "plaintext"
		if overTLS {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			extra := core
			var k *pki
			if overTLS {
				k = newPKI(t, filepath.Join(dir, "tls"), "root")
				extra += tlsSection(k.dir, "none", "")
			}
			f(t, dir, extra, k)
		})
	}
}
