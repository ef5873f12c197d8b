package credentials

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestParseHtpasswd(t *testing.T) {
	b, _ := bcrypt.GenerateFromPassword([]byte("secret1"), bcrypt.MinCost)
	in := "# users\n\nalice:" + string(b) + "\r\n  \nbob:$2y$" + string(b[4:]) + "\n"
	users, err := ParseHtpasswd(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 2 || users[0].Name != "alice" || users[1].Name != "bob" || !VerifyPassword(users[1].Hash, "secret1") {
		t.Fatalf("got %+v", users)
	}

	cases := []struct{ in, want string }{
		{"alice:$apr1$xyz$abcdefghijklmnopqrstuv\n", "line 1: user \"alice\": Apache MD5 ($apr1$)"},
		{"# c\nbob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n", "line 2: user \"bob\": SHA-1 ({SHA})"},
		{"\ncarol:abJnggxhB/yWI\n", "line 2: user \"carol\": DES crypt"},
		{"dave:plain\n", "line 1: user \"dave\": unknown or plain-text"},
		{"nocolon\n", "line 1: want name:hash"},
		{"1bad:" + string(b) + "\n", "line 1: invalid user name 1bad"},
		{"x:" + string(b) + "\nx:" + string(b) + "\n", "line 2: duplicate user \"x\" (first defined at line 1)"},
		{"eve:$2a$04$tooshort\n", "line 1: user \"eve\": malformed bcrypt hash"},
	}
	for _, c := range cases {
		_, err := ParseHtpasswd(strings.NewReader(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseHtpasswd(%q) = %v, want error containing %q", c.in, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "W6ph5Mm5") {
			t.Errorf("error leaks the hash: %v", err)
		}
	}
}
