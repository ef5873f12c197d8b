package credentials

import (
	"runtime"
	"strings"
	"testing"
)

// FuzzCredentialFile: any credential file is read, or refused with an
// error that names the line, the entry or the field, never a bare parser
// error; reading it allocates a bounded amount; what it reads encodes and
// reads back the same.
func FuzzCredentialFile(f *testing.F) {
	for _, seed := range []string{
		"version: 1\nusers:\n  - name: root\n    passwordHash: \"" + testArgon + "\"\n",
		"version: 2\nusers:\n  - name: alice\n    passwordHash: \"" + testBcrypt + "\"\n    roles: [reader]\nroles: [reader]\n" +
			"grants:\n  - {role: reader, object: Collection, name: books, db: default, privilege: Search}\n",
		"version: 1\napiKeys:\n  - name: ci\n    user: root\n    digest: \"" + testDigest + "\"\n",
		"version: 3\n", "users: [1]\n", "version: 1\n---\nversion: 1\n", "a: &a [*a]\n", "", "\x00",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		set, err := parseFile(data)
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > uint64(64<<20+4096*len(data)) {
			t.Fatalf("%d bytes of credential file allocated %d bytes", len(data), n)
		}
		if err != nil {
			msg := err.Error()
			if !strings.Contains(msg, "line ") && !strings.Contains(msg, ": ") {
				t.Fatalf("file %q: the error %q names nothing", data, msg)
			}
			return
		}
		out, err := encodeFile(set)
		if err != nil {
			t.Fatalf("file %q read, but not written back: %v", data, err)
		}
		if _, err := parseFile(out); err != nil {
			t.Fatalf("file %q read and written as %q, which does not read back: %v", data, out, err)
		}
	})
}
