package config

import (
	"strings"
	"testing"
)

func TestConsolePlaintextOnlyOnLoopback(t *testing.T) {
	for _, c := range []struct {
		yaml string
		want string // "" valid
	}{
		{"console: {listen: \"127.0.0.1:9092\"}", ""},
		{"console: {listen: \"[::1]:9092\"}", ""},
		{"console: {listen: \"localhost:9092\"}", ""},
		{"console: {listen: \"0.0.0.0:9092\"}", `console.listen: "0.0.0.0:9092" is not a loopback address and the proxy has no tls section`},
		{"console: {listen: \":9092\"}", `console.listen: ":9092" is not a loopback address`},
		{"console: {listen: \"10.0.0.5:9092\"}\ntls: {certFile: c.pem, keyFile: c.key}", ""},
		{"console: {listen: \"127.0.0.1\"}", `console.listen: "127.0.0.1" is not host:port`},
		{"console: {listen: \"127.0.0.1:9092\", idleTimeout: 0s}", "console.idleTimeout: must be a positive duration"},
		{"console: {listen: \"127.0.0.1:9092\", oidc: {issuer: \"https://sso/\", clientID: c, redirectURL: \"http://127.0.0.1:9092/oidc/callback\"}}",
			`console.oidc.issuer: "https://sso/" is not one of identities.oidc.issuers`},
		{"identities: {oidc: {issuers: [{issuer: \"https://sso/\", audiences: [milvus]}]}}\nconsole: {listen: \"127.0.0.1:9092\", oidc: {issuer: \"https://sso/\", clientID: c, redirectURL: \"http://127.0.0.1:9092/oidc/callback\"}}",
			`console.oidc.clientID: "c" must be one of the audiences of https://sso/`},
		{"identities: {oidc: {issuers: [{issuer: \"https://sso/\", audiences: [c]}]}}\nconsole: {listen: \"127.0.0.1:9092\", oidc: {issuer: \"https://sso/\", clientID: c, redirectURL: \"http://127.0.0.1:9092/oidc/callback\"}}", ""},
	} {
		cfg, err := Parse([]byte(c.yaml))
		if err != nil {
			t.Fatalf("%s: %v", c.yaml, err)
		}
		err = cfg.Validate()
		switch {
		case c.want == "" && err != nil && strings.Contains(err.Error(), "console"):
			t.Errorf("%s: %v", c.yaml, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want %q", c.yaml, err, c.want)
		}
	}
	if d := Default().Console; d.Listen != "" {
		t.Errorf("the console is on by default: %q", d.Listen)
	}
}
