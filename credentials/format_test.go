package credentials

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// Fixed hashes so parse tests need no hashing.
const (
	testArgon  = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"
	testBcrypt = "$2a$04$0123456789012345678901uGk8FRFIR8k8vMnyXlKNAmbuRqeMyfW"
	testDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

func TestFormatRoundTrip(t *testing.T) {
	ts := time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)
	s := NewSet()
	s.PutUser(&User{Name: "root", PasswordHash: testArgon, Roles: []string{RoleAdmin}, Created: ts, Updated: ts})
	s.PutUser(&User{Name: "alice", PasswordHash: testBcrypt, Created: ts, Updated: ts.Add(time.Hour)})
	s.PutUser(&User{Name: "bob", PasswordHash: testArgon, Roles: []string{RolePublic, RoleAdmin}})
	if err := s.PutAPIKey(&APIKey{Name: "ci", User: "alice", Digest: testDigest, Created: ts}); err != nil {
		t.Fatal(err)
	}
	data, err := encodeFile(s)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, want := range []string{
		fileHeader + "version: 2\nusers:\n  - name: alice\n",
		"    passwordHash: \"" + testArgon + "\"\n    roles: [admin]\n    created: 2026-11-22T05:00:00Z\n",
		"apiKeys:\n  - name: ci\n    user: alice\n    digest: \"" + testDigest + "\"\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("encoded file lacks %q:\n%s", want, text)
		}
	}
	got, err := parseFile(data)
	if err != nil {
		t.Fatalf("parse encoded file: %v\n%s", err, text)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip differs:\n got %+v\nwant %+v", got.Users(), s.Users())
	}
	again, _ := encodeFile(got)
	if string(again) != text {
		t.Fatal("encoding is not deterministic")
	}
}

func TestParseEmptyUsers(t *testing.T) {
	for _, in := range []string{"version: 1\n", "version: 1\nusers: []\n", "# c\nversion: 1\nusers:\napiKeys: []\n"} {
		s, err := parseFile([]byte(in))
		if err != nil || len(s.Users()) != 0 {
			t.Errorf("parseFile(%q) = %v, %v", in, s, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	user := func(name, hash string) string {
		return "  - name: " + name + "\n    passwordHash: \"" + hash + "\"\n"
	}
	cases := []struct{ name, in, want string }{
		{"empty", "", "empty file"},
		{"bad yaml", "version: 1\nusers:\n  - name: [\n", "line 3"},
		{"tab", "version: 1\n\tusers: []\n", "line 2"},
		{"wrong version", "\nversion: 3\n", "line 2: version must be 1 or 2"},
		{"roles in version 1", "version: 1\nroles:\n  - name: reader\n", "line 1: roles, grants, privilegeGroups and rowPolicies need version 2"},
		{"missing version", "users: []\n", "line 1: version must be 1"},
		{"unknown top field", "version: 1\nextra: 1\n", "line 2: field extra not found at top level"},
		{"unknown user field", "version: 1\nusers:\n" + user("root", testArgon) + "    password: hunter22\n",
			"line 5: field password not found in a users entry"},
		{"bad type", "version: 1\nusers:\n" + user("root", testArgon) + "    created: yesterday\n", "line 5: want an RFC 3339 time"},
		{"duplicate user", "version: 1\nusers:\n" + user("root", testArgon) + user("bob", testArgon) + user("root", testBcrypt),
			`duplicate user "root" at line 7 (first defined at line 3)`},
		{"hash format", "version: 1\nusers:\n" + user("root", testArgon) + user("bob", "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="),
			`user "bob" at line 5: unrecognised password hash format (want $argon2id$ or bcrypt $2a$/$2b$/$2y$)`},
		{"bad argon params", "version: 1\nusers:\n" + user("root", strings.Replace(testArgon, "t=1", "t=0", 1)),
			`user "root" at line 3: argon2id parameters out of range`},
		{"user name", "version: 1\nusers:\n" + user("9lives", testArgon),
			`user "9lives" at line 3: invalid user name 9lives, the first character must be a letter`},
		{"role", "version: 1\nusers:\n" + user("root", testArgon) + "    roles: [admin, superuser]\n",
			`user "root" at line 3: unknown role "superuser"`},
		{"key user", "version: 1\nusers:\n" + user("root", testArgon) +
			"apiKeys:\n  - name: ci\n    user: ghost\n    digest: \"" + testDigest + "\"\n",
			`api key "ci" at line 6: user "ghost" does not exist`},
		{"key digest", "version: 1\nusers:\n" + user("root", testArgon) +
			"apiKeys:\n  - name: ci\n    user: root\n    digest: \"sha1:abc\"\n",
			`api key "ci" at line 6: digest must be "sha256:"`},
		{"key name dup", "version: 1\nusers:\n" + user("root", testArgon) +
			"apiKeys:\n  - {name: ci, user: root, digest: \"" + testDigest + "\"}\n  - {name: ci, user: root, digest: \"" +
			strings.Replace(testDigest, "0123", "4567", 1) + "\"}\n",
			`duplicate api key "ci" at line 7 (first defined at line 6)`},
		{"key digest dup", "version: 1\nusers:\n" + user("root", testArgon) +
			"apiKeys:\n  - {name: ci, user: root, digest: \"" + testDigest + "\"}\n  - {name: cd, user: root, digest: \"" +
			testDigest + "\"}\n",
			`api key "ci" at line 6: same digest as api key "cd"`},
		{"policy action", "version: 2\nusers:\n" + user("root", testArgon) +
			"rowPolicies:\n  - {db: default, collection: docs, name: p1, actions: [Select], roles: [public], usingExpr: \"true\"}\n",
			`row policy "p1 on default.docs" at line 6: unknown row policy action "Select"`},
		{"policy role", "version: 2\nusers:\n" + user("root", testArgon) +
			"rowPolicies:\n  - {db: default, collection: docs, name: p1, actions: [Query], roles: [ghosts], usingExpr: \"true\"}\n",
			`row policy "p1 on default.docs" at line 6: unknown role "ghosts"`},
		{"policy without its expression", "version: 2\nusers:\n" + user("root", testArgon) +
			"rowPolicies:\n  - {db: default, collection: docs, name: p1, actions: [Insert], roles: [public], usingExpr: \"true\"}\n",
			`row policy "p1 on default.docs" at line 6: check_expr must not be empty for actions Insert`},
		{"tag key", "version: 2\nusers:\n" + user("root", testArgon) + "    tags: {\"a'b\": x}\n",
			`user "root" at line 3: tag key "a'b": only letters`},
		{"two documents", "version: 1\n---\nversion: 1\n", "line 2: only one YAML document"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseFile([]byte(c.in))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want error containing %q", err, c.want)
			}
			for _, secret := range []string{testArgon, "W6ph5Mm5", "hunter22", testDigest[10:]} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error %q leaks a secret or hash", err)
				}
			}
		})
	}
}
