package config

import (
	"runtime"
	"strings"
	"testing"
)

// FuzzConfigFile: any config file is read, or refused with an error that
// names the line or the key, never a bare parser error; reading it
// allocates a bounded amount (an alias bomb is refused, not expanded).
func FuzzConfigFile(f *testing.F) {
	for _, seed := range []string{
		"listen: \"0.0.0.0:19530\"\nbackend:\n  address: 127.0.0.1:19540\n",
		"forwarding: frames\ngrpc:\n  maxRecvMsgSize: 8388608\n",
		"common:\n  security:\n    superUsers: [root, foo]\n",
		"listen: 1\nlisten: 2\n", "nope: 1\n", "---\n---\nlisten: x\n", "a: &a [*a]\n",
		"identities:\n  oidc:\n    issuers:\n      - issuer: https://x/\n        audiences: [m]\n        usernameClaim: email\n",
		"a: &a [x,x,x,x]\nb: &b [*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b]\n", "\t", "",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var err error
		allocated := allocatedBy(func() {
			var cfg *Config
			if cfg, err = Parse(data); err == nil {
				err = cfg.Validate()
			}
		})
		if limit := uint64(64<<20 + 4096*len(data)); allocated > limit {
			t.Fatalf("%d bytes of config allocated %d bytes", len(data), allocated)
		}
		if err != nil && !namesTheProblem(err.Error()) {
			t.Fatalf("config %q: the error %q names no line or key", data, err)
		}
	})
}

// namesTheProblem: a line number, or a key with its reason ("key: ...").
func namesTheProblem(msg string) bool {
	key, reason, ok := strings.Cut(msg, ": ")
	return strings.Contains(msg, "line ") || ok && key != "" && reason != "" && !strings.ContainsAny(key, " \n")
}

func allocatedBy(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}
