package rest

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/authproxy/authproxy/credentials"
)

const unauthenticated = `{"code":1800,"message":"user hasn't authenticated"}`

func TestUsersEndpoints(t *testing.T) {
	e := newEnv(t, nil, nil)
	steps := []struct {
		path, body, want string
	}{
		{"create", `{"userName":"alice","password":"alice-pw1"}`, `{"code":0,"data":{}}`},
		{"list", `{}`, `{"code":0,"data":["alice","root"]}`},
		{"describe", `{"userName":"alice"}`, `{"code":0,"data":[]}`},
		{"grant_role", `{"userName":"alice","roleName":"admin"}`, `{"code":0,"data":{}}`},
		{"describe", `{"userName":"alice"}`, `{"code":0,"data":["admin"]}`},
		{"revoke_role", `{"userName":"alice","roleName":"admin"}`, `{"code":0,"data":{}}`},
		{"describe", `{"userName":"alice"}`, `{"code":0,"data":[]}`},
		{"describe", `{"userName":"nobody"}`, `{"code":0,"data":[]}`},
		{"update_password", `{"userName":"alice","password":"alice-pw1","newPassword":"alice-pw2"}`, `{"code":0,"data":{}}`},
		{"drop", `{"userName":"alice"}`, `{"code":0,"data":{}}`},
		{"list", `{"dbName":"default"}`, `{"code":0,"data":["root"]}`},
	}
	for _, s := range steps {
		e.post(t, "/v2/vectordb/users/"+s.path, rootAuth, s.body).want(t, http.StatusOK, s.want)
	}
}

func TestUsersBusinessErrors(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.addUser(t, "alice", "alice-pw1")
	e.wantErrors(t, []envelopeCase{
		{"wrong old password", "update_password", `{"userName":"alice","password":"nope-nope","newPassword":"alice-pw2"}`,
			1400, "old password not correct for alice: not authenticated"},
		{"duplicate", "create", `{"userName":"alice","password":"alice-pw1"}`, 65535, "user already exists: alice"},
		{"bad name", "create", `{"userName":"1x","password":"alice-pw1"}`, 1100, "the first character must be a letter"},
		{"short password", "create", `{"userName":"bob","password":"abc"}`, 1100, "invalid password length"},
		{"unknown role", "grant_role", `{"userName":"alice","roleName":"writer"}`, 65535, "not found the role"},
		{"root", "drop", `{"userName":"root"}`, 1401, "root user cannot be deleted"},
	})
}

// The curl example of Zilliz's cluster-credentials page, byte for byte.
func TestSeedUpdatePasswordCurl(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.addUser(t, "user_1", "P@ssw0rd*")
	const old = "Bearer user_1:P@ssw0rd*"
	e.post(t, "/v2/vectordb/users/describe", old, `{"userName":"user_1"}`).want(t, http.StatusOK, `{"code":0,"data":[]}`)

	body := `{
    "newPassword": "NewP@ssw0rd",
    "userName": "user_1",
    "password": "P@ssw0rd*"
}`
	e.post(t, "/v2/vectordb/users/update_password", old, body).want(t, http.StatusOK, `{"code":0,"data":{}}`)

	// The cached verification of the old password no longer counts.
	e.post(t, "/v2/vectordb/users/describe", old, `{"userName":"user_1"}`).want(t, http.StatusUnauthorized, unauthenticated)
	e.post(t, "/v2/vectordb/users/describe", "Bearer user_1:NewP@ssw0rd", `{"userName":"user_1"}`).want(t, http.StatusOK, `{"code":0,"data":[]}`)
}

func TestAuthenticationFailures(t *testing.T) {
	e := newEnv(t, nil, nil)
	key := addAPIKey(t, e)
	for _, tc := range []struct {
		name, authz, reason string
	}{
		{"missing", "", "missing"},
		{"empty bearer", "Bearer ", "missing"},
		{"wrong password", "Bearer root:not-Milvus", "bad_password"},
		{"unknown user", "Bearer ghost:whatever", "unknown_user"},
		{"wrong api key", "Bearer " + key + "x", "bad_api_key"},
		{"basic not base64", "Basic !!not-base64!!", "invalid_format"},
		{"basic without colon", "Basic " + base64.StdEncoding.EncodeToString([]byte("root")), "invalid_format"},
		{"basic wrong password", basic("root", "not-Milvus"), "bad_password"},
		{"other scheme", "Digest username=root", "invalid_format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.post(t, "/v2/vectordb/users/list", tc.authz, `{}`).want(t, http.StatusUnauthorized, unauthenticated)
			// Data paths are refused the same way, before the backend.
			e.post(t, "/v2/vectordb/collections/list", tc.authz, `{}`).want(t, http.StatusUnauthorized, unauthenticated)
			if !strings.Contains(e.logs.String(), "reason="+tc.reason) {
				t.Fatalf("no log line with reason=%s in:\n%s", tc.reason, e.logs)
			}
		})
	}
	if logs := e.logs.String(); strings.Contains(logs, "not-Milvus") || strings.Contains(logs, key) {
		t.Fatalf("a secret reached the log:\n%s", logs)
	}
}

func addAPIKey(t *testing.T, e *testEnv) string {
	t.Helper()
	key, err := credentials.NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	err = e.store.Update(context.Background(), func(s *credentials.Set) error {
		return s.PutAPIKey(&credentials.APIKey{Name: "ci", User: "root", Digest: credentials.APIKeyDigest(key), Created: time.Now()})
	})
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func TestAuthenticationSchemes(t *testing.T) {
	e := newEnv(t, nil, nil)
	key := addAPIKey(t, e)
	for name, authz := range map[string]string{
		"bearer password": rootAuth,
		"bearer api key":  "Bearer " + key,
		"basic":           basic("root", credentials.DefaultRootPassword),
	} {
		t.Run(name, func(t *testing.T) {
			e.post(t, "/v2/vectordb/users/list", authz, `{}`).want(t, http.StatusOK, `{"code":0,"data":["root"]}`)
		})
	}
}

func TestAuthenticationDisabled(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.authn.SetEnabled(false)
	// As in Milvus: no credential needed and no permission checked.
	e.post(t, "/v2/vectordb/users/create", "", `{"userName":"bob","password":"bob-pw-1"}`).want(t, http.StatusOK, `{"code":0,"data":{}}`)
	e.post(t, "/v2/vectordb/users/list", "Bearer root:wrong", `{}`).want(t, http.StatusOK, `{"code":0,"data":["bob","root"]}`)
}

func TestUsersRequestErrors(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.wantErrors(t, []envelopeCase{
		{"bad json", "create", `{"userName":"bob",`, 1801, "can only accept json format request, error: unexpected EOF"},
		{"not json", "list", `userName=bob`, 1801, "can only accept json format request, error: invalid character 'u'"},
		{"wrong type", "describe", `{"userName":7}`, 1801, "cannot unmarshal number into Go struct field"},
		{"empty body", "list", ``, 1801, "can only accept json format request, the request body should be nil, however {} is valid"},
		{"missing userName", "create", `{"password":"bob-pw-1"}`, 1802,
			"missing required parameters, error: Key: 'userName' Error:Field validation for 'userName' failed on the 'required' tag"},
		{"missing newPassword", "update_password", `{"userName":"root","password":"Milvus"}`, 1802, "'newPassword' failed on the 'required' tag"},
		{"missing roleName", "grant_role", `{"userName":"root"}`, 1802, "'roleName' failed on the 'required' tag"},
		{"empty userName", "describe", `{"userName":""}`, 1802, "'userName' failed on the 'required' tag"},
	})
}

func TestUsersPermissionDenied(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.addUser(t, "alice", "alice-pw1")
	e.addUser(t, "bob", "bob-pw-01")
	const alice = "Bearer alice:alice-pw1"
	want := func(r response, privilege, db string) {
		t.Helper()
		code, msg := r.envelope(t)
		wantMsg := "rpc error: code = PermissionDenied desc = " + privilege + ": permission deny to alice in the `" + db + "` database"
		if r.status != http.StatusForbidden || code != 65535 || msg != wantMsg {
			t.Fatalf("got HTTP %d %s\nwant HTTP 403 code 65535 %q", r.status, r.body, wantMsg)
		}
	}
	want(e.post(t, "/v2/vectordb/users/create", alice, `{"userName":"carol","password":"carol-pw1"}`), "PrivilegeCreateOwnership", "default")
	want(e.post(t, "/v2/vectordb/users/list", alice, `{}`, "DB-Name", "db1"), "PrivilegeSelectOwnership", "db1")
	// The body's dbName wins over the header, as in Milvus.
	want(e.post(t, "/v2/vectordb/users/drop", alice, `{"userName":"bob","dbName":"db2"}`, "DB-Name", "db1"), "PrivilegeDropOwnership", "db2")
	want(e.post(t, "/v2/vectordb/users/update_password", alice, `{"userName":"bob","password":"bob-pw-01","newPassword":"bob-pw-02"}`), "PrivilegeUpdateUser", "default")
	want(e.post(t, "/v2/vectordb/users/grant_role", alice, `{"userName":"alice","roleName":"admin"}`), "PrivilegeManageOwnership", "default")
	// A user may still describe themselves and change their own password.
	e.post(t, "/v2/vectordb/users/describe", alice, `{"userName":"alice"}`).want(t, http.StatusOK, `{"code":0,"data":[]}`)
	e.post(t, "/v2/vectordb/users/update_password", alice, `{"userName":"alice","password":"alice-pw1","newPassword":"alice-pw2"}`).
		want(t, http.StatusOK, `{"code":0,"data":{}}`)
	if !strings.Contains(e.logs.String(), "audit: user change refused") {
		t.Fatalf("no audit line for the refusals:\n%s", e.logs)
	}
}

// Users calls are the proxy's: never forwarded, whatever the path spelling.
func TestUsersNeverForwarded(t *testing.T) {
	backend := newRecordingBackend(t)
	e := newEnv(t, backend.url, nil)

	e.post(t, "/v2/vectordb//users/./create", rootAuth, `{"userName":"dave","password":"dave-pw-1"}`).want(t, http.StatusOK, `{"code":0,"data":{}}`)
	r := e.post(t, "/v2/vectordb/users/rename", rootAuth, `{}`)
	if r.status != http.StatusNotFound {
		t.Fatalf("unknown users op: HTTP %d %s, want 404", r.status, r.body)
	}
	req, _ := http.NewRequest(http.MethodGet, e.proxy.URL+"/v2/vectordb/users/list", nil)
	req.Header.Set("Authorization", rootAuth)
	if r := do(t, req); r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "POST" {
		t.Fatalf("GET users/list: HTTP %d %v %s, want 405 Allow: POST", r.status, r.header, r.body)
	}
	big := `{"userName":"` + strings.Repeat("a", 2<<20) + `"}`
	if r := e.post(t, "/v2/vectordb/users/describe", rootAuth, big); r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("2 MiB users body: HTTP %d %s, want 413", r.status, r.body)
	}
	if n := backend.calls.Load(); n != 0 {
		t.Fatalf("backend got %d users calls", n)
	}
}

// envelopeCase is a users call that must fail with HTTP 200 and a code.
type envelopeCase struct {
	name, path, body string
	code             int32
	message          string
}

// wantErrors posts each case as root and checks Milvus's error envelope.
func (e *testEnv) wantErrors(t *testing.T, cases []envelopeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.post(t, "/v2/vectordb/users/"+tc.path, rootAuth, tc.body)
			code, msg := r.envelope(t)
			if r.status != http.StatusOK || code != tc.code || !strings.Contains(msg, tc.message) {
				t.Fatalf("got HTTP %d %s, want HTTP 200 code %d with %q", r.status, r.body, tc.code, tc.message)
			}
		})
	}
}
