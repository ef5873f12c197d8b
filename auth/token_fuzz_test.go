package auth

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// FuzzTokenParsers: the gRPC token (base64 of user:password or an API
// key), the REST Authorization header (Bearer, Basic) and the JWT shape
// test never panic; a refusal is a Failure with Milvus's message and a
// reason; an accepted token splits on its first ':' exactly.
func FuzzTokenParsers(f *testing.F) {
	b64 := base64.StdEncoding.EncodeToString
	for _, seed := range []string{
		b64([]byte("root:Milvus")), b64([]byte("alice:pa:ss")), b64([]byte("ap_key")), "not base64!", "",
		"Bearer root:Milvus", "Basic " + b64([]byte("alice:pw")), "Basic " + b64([]byte("nocolon")), "Bearer ", "Digest x",
		"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln", "eyJ..", "eyJ.a.b.c",
	} {
		f.Add(seed)
	}
	named := func(t *testing.T, what string, err error) {
		var fl *Failure
		if !errors.As(err, &fl) || fl.Message == "" || fl.Reason == "" {
			t.Fatalf("%s: %#v does not say what is wrong", what, err)
		}
	}
	f.Fuzz(func(t *testing.T, value string) {
		c, err := ParseToken(value)
		if err != nil {
			named(t, "ParseToken", err)
		} else {
			raw, _ := base64.StdEncoding.DecodeString(value)
			user, password, pair := strings.Cut(string(raw), ":")
			want := Credential{APIKey: string(raw)}
			if pair {
				want = Credential{User: user, Password: password}
			}
			if c != want {
				t.Fatalf("ParseToken(%q) = %+v", value, c)
			}
		}
		if _, err := ParseHTTPAuthorization(value); err != nil {
			named(t, "ParseHTTPAuthorization", err)
		}
		if LooksLikeJWT(value) && (strings.Count(value, ".") != 2 || strings.ContainsAny(value, ":+/= ")) {
			t.Fatalf("LooksLikeJWT(%q): not a compact JWS", value)
		}
	})
}
