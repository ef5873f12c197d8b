package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultsAreValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	if c.GRPC.MaxRecvMsgSize != 268435456 || c.GRPC.MaxSendMsgSize != 536870912 {
		t.Fatalf("message limits %d/%d, want Milvus's 256 MiB/512 MiB", c.GRPC.MaxRecvMsgSize, c.GRPC.MaxSendMsgSize)
	}
}

func TestParseFullShape(t *testing.T) {
	c, err := Parse([]byte(`
listen: "0.0.0.0:19530"
backend:
  address: "127.0.0.1:19540"
common:
  security:
    authorizationEnabled: false
    superUsers: "root, foo"
    defaultRootPassword: "Milvus"
credentials:
  file: "./credentials.yaml"
cache:
  size: 5
  ttl: 1m
grpc:
  maxRecvMsgSize: 268435456
  maxSendMsgSize: 536870912
admin:
  listen: ""
log:
  level: debug
  format: json
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Common.Security.AuthorizationEnabled {
		t.Error("authorizationEnabled not read")
	}
	if got := []string(c.Common.Security.SuperUsers); len(got) != 2 || got[0] != "root" || got[1] != "foo" {
		t.Errorf("superUsers = %q", got)
	}
	if c.Cache.TTL != time.Minute || c.Cache.Size != 5 || c.Admin.Listen != "" || c.Log.Format != "json" {
		t.Errorf("values not read: %+v", c)
	}
}

func TestSuperUsersAsList(t *testing.T) {
	c, err := Parse([]byte("common:\n  security:\n    superUsers: [root, foo]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Common.Security.SuperUsers.Contains("foo") || c.Common.Security.SuperUsers.Contains("bar") {
		t.Errorf("superUsers = %q", c.Common.Security.SuperUsers)
	}
}

func TestUnknownKeyNamesKeyAndLine(t *testing.T) {
	_, err := Parse([]byte("listen: \"127.0.0.1:1\"\nbackend:\n  adress: \"x:1\"\n"))
	if err == nil {
		t.Fatal("unknown key accepted")
	}
	if !strings.Contains(err.Error(), `unknown key "adress"`) || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("error does not name key and line: %v", err)
	}
}

func TestBadValuesNamed(t *testing.T) {
	cases := map[string]string{
		"listen: nonsense\n":                         "listen:",
		"cache:\n  size: 0\n":                        "cache.size",
		"log:\n  level: loud\n":                      "log.level",
		"grpc:\n  maxRecvMsgSize: 10\n":              "grpc.maxRecvMsgSize",
		"tls:\n  certFile: a\n  clientAuth: maybe\n": "tls.clientAuth",
		// certs' rule, the one the TLS loader applies: a CA file with
		// clientAuth none would look like mutual TLS and be ignored.
		"tls:\n  certFile: a\n  keyFile: b\n  clientAuth: none\n  clientCAFile: ca.pem\n":                                        "tls.clientAuth: client auth \"none\" with client CA file ca.pem",
		"tls:\n  certFile: a\n  keyFile: b\n  clientAuth: require\n":                                                             "needs a client CA file",
		"auth:\n  identityHeader: \"X-User\"\n":                                                                                  "auth.identityHeader",
		"backend:\n  rest: \"ftp://x\"\n":                                                                                        "backend.rest",
		"auth:\n  identityHeader: authorization\n":                                                                               "auth.identityHeader: \"authorization\" is reserved",
		"auth:\n  identityHeader: sourceid\n":                                                                                    "auth.identityHeader: \"sourceid\" is reserved",
		"auth:\n  identityHeader: dbname\n":                                                                                      "auth.identityHeader: \"dbname\" is reserved",
		"auth:\n  identityHeader: content-type\n":                                                                                "auth.identityHeader: \"content-type\" is reserved",
		"auth:\n  identityHeader: grpc-user\n":                                                                                   "auth.identityHeader: \"grpc-user\" is reserved",
		"identities:\n  ldap:\n    url: ldap://dc:389\n    bindDN: \"uid={user}\"\n":                                             "would send passwords in clear",
		"identities:\n  ldap:\n    url: ldaps://dc:636\n    bindDN: uid=x\n":                                                     "identities.ldap.bindDN",
		"identities:\n  ldap:\n    url: ldaps://dc\n    bindDN: \"{user}\"\n    groupAttribute: memberOf\n":                      "needs userSearch",
		"identities:\n  oidc:\n    issuers: []\n":                                                                                "at least one issuer",
		"identities:\n  oidc:\n    issuers:\n      - issuer: http://idp.example\n        audiences: [a]\n":                       "want an https:// URL",
		"identities:\n  oidc:\n    issuers:\n      - issuer: https://idp\n":                                                      "audiences",
		"identities:\n  oidc:\n    issuers:\n      - issuer: https://idp\n        audiences: [a]\n        algorithms: [HS256]\n": "\"HS256\" is not allowed",
		"identities:\n  oidc:\n    issuers:\n      - issuer: https://idp\n        audiences: [a]\n        algorithms: [none]\n":  "\"none\" is not allowed",
		"identities:\n  oidc:\n    issuers:\n      - issuer: https://idp\n        audiences: [a]\n        usernameClaim: name\n": "usernameClaim",
		"identities:\n  oidc:\n    issuers:\n      - issuer: https://idp\n        audiences: [a]\n        groups: {g: [r]}\n":    "groupsClaim",
	}
	for in, want := range cases {
		c, err := Parse([]byte(in))
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v does not name %q", in, err, want)
		}
	}
	if _, err := Parse([]byte("cache:\n  ttl: soon\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad duration: %v", err)
	}
}

func TestLoadNamesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "authproxy.yaml")
	if err := os.WriteFile(p, []byte("bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("error does not name the file: %v", err)
	}
}

func TestSecondDocumentRefused(t *testing.T) {
	_, err := Parse([]byte("listen: \"127.0.0.1:1\"\n---\ncommon:\n  security:\n    authorizationEnabled: false\n"))
	if err == nil || !strings.Contains(err.Error(), "second YAML document") || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("a second document must be refused with its line, got %v", err)
	}
	// A lone document with a leading or trailing separator is still one document.
	for _, one := range []string{"---\nlisten: \"127.0.0.1:1\"\n", "listen: \"127.0.0.1:1\"\n---\n", "listen: \"127.0.0.1:1\"\n...\n"} {
		if _, err := Parse([]byte(one)); err != nil {
			t.Errorf("%q is one document: %v", one, err)
		}
	}
}

// Root's first password from a file (a mounted Secret) wins over
// defaultRootPassword; an unreadable or empty file is an error naming the key.
func TestRootPasswordFromFile(t *testing.T) {
	s := Default().Common.Security
	if p, err := s.RootPassword(); err != nil || p != "Milvus" {
		t.Fatalf("default: %q %v", p, err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "password")
	if err := os.WriteFile(file, []byte("Root-from-secret-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.DefaultRootPasswordFile = file
	if p, err := s.RootPassword(); err != nil || p != "Root-from-secret-1" {
		t.Fatalf("from %s: %q %v", file, p, err)
	}
	for _, bad := range []string{filepath.Join(dir, "missing"), filepath.Join(dir, "empty")} {
		_ = os.WriteFile(filepath.Join(dir, "empty"), []byte("\n"), 0o600)
		s.DefaultRootPasswordFile = bad
		if _, err := s.RootPassword(); err == nil || !strings.Contains(err.Error(), "common.security.defaultRootPasswordFile") {
			t.Fatalf("%s: %v", bad, err)
		}
	}
}
