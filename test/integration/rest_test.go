package integration

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"

	"github.com/authproxy/authproxy/test/harness"
)

// curlResult is one curl call: HTTP status, body, and the protocol used.
type curlResult struct {
	status int
	body   string
	proto  string
}

// curl runs the real curl against the proxy. extra are curl options.
func curl(t *testing.T, url, auth, body string, extra ...string) curlResult {
	t.Helper()
	args := append([]string{"--silent", "--show-error", "--max-time", "10", "--request", "POST", "--url", url,
		"--header", "Content-Type: application/json", "--write-out", "\n%{http_code} %{http_version}"}, extra...)
	if auth != "" {
		args = append(args, "--header", "Authorization: "+auth)
	}
	if body != "" {
		args = append(args, "--data", body)
	}
	out, err := exec.Command("curl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %s: %v\n%s", url, err, out)
	}
	text := strings.TrimRight(string(out), "\n")
	i := strings.LastIndex(text, "\n")
	var r curlResult
	fmt.Sscanf(text[i+1:], "%d %s", &r.status, &r.proto)
	r.body = text[:i]
	return r
}

// envelope decodes Milvus's REST reply.
func envelope(t *testing.T, r curlResult) (code int, data any, message string) {
	t.Helper()
	var e struct {
		Code    int    `json:"code"`
		Data    any    `json:"data"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(r.body), &e); err != nil {
		t.Fatalf("not a Milvus envelope (HTTP %d): %q", r.status, r.body)
	}
	return e.Code, e.Data, e.Message
}

// okCall returns a function that POSTs a body to base+path with auth and
// returns the envelope's data, failing the test unless it is HTTP 200, code 0.
func okCall(t *testing.T, base string) func(path, auth, body string) any {
	return func(path, auth, body string) any {
		t.Helper()
		r := curl(t, base+path, auth, body)
		code, data, msg := envelope(t, r)
		if r.status != 200 || code != 0 {
			t.Fatalf("%s %s: HTTP %d code %d %s", path, body, r.status, code, msg)
		}
		return data
	}
}

// The Zilliz seed's curl command, run as written, resets user_1's password;
// the old one then fails over both REST and gRPC.
func TestSeedCurlUpdatePassword(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	ctx := testCtx(t, 30*time.Second)
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	harness.Password("user_1", "P@ssw0rd*")
	harness.Password("user_1", "NewP@ssw0rd")
	st, err := m.CreateCredential(withToken(ctx, "root:Milvus"), &milvuspb.CreateCredentialRequest{Username: "user_1", Password: "UEBzc3cwcmQq"}) // P@ssw0rd*
	must(t, err)
	if st.GetCode() != 0 {
		t.Fatal(st)
	}
	must(t, getVersion(ctx, m, "user_1:P@ssw0rd*"))

	seed := `curl --request POST \
--url "${CLUSTER_ENDPOINT}/v2/vectordb/users/update_password" \
--header "Authorization: Bearer ${TOKEN}" \
--header "Content-Type: application/json" \
-d '{
    "newPassword": "NewP@ssw0rd",
    "userName": "user_1",
    "password": "P@ssw0rd*"
}'`
	cmd := exec.Command("bash", "-c", seed)
	cmd.Env = append(os.Environ(), "CLUSTER_ENDPOINT=http://"+p.Addr, "TOKEN=user_1:P@ssw0rd*")
	out, err := cmd.Output()
	if err != nil || strings.TrimSpace(string(out)) != `{"code":0,"data":{}}` {
		t.Fatalf("seed curl: %v %s", err, out)
	}
	if err := refused(ctx, m, "user_1:P@ssw0rd*"); err != nil {
		t.Fatalf("old password over gRPC: %v", err)
	}
	r := curl(t, "http://"+p.Addr+"/v2/vectordb/users/describe", "Bearer user_1:P@ssw0rd*", `{"userName":"user_1"}`)
	if r.status != 401 || r.body != `{"code":1800,"message":"user hasn't authenticated"}` {
		t.Fatalf("old password over REST: %d %s", r.status, r.body)
	}
	must(t, getVersion(ctx, m, "user_1:NewP@ssw0rd"))
}

// Every users endpoint and every failure, over plaintext and over TLS on
// the shared port (HTTP/1.1 and HTTP/2), while a gRPC client works on the
// same port at the same time.
func TestRESTUsersEndpoints(t *testing.T) {
	for _, mode := range []string{"plaintext", "tls-h2", "tls-http1.1"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			opts := harness.Options{Dir: dir}
			var curlTLS []string
			scheme := "http://"
			var k *pki
			if mode != "plaintext" {
				k = newPKI(t, filepath.Join(dir, "tls"), "root")
				opts.Extra = tlsSection(k.dir, "none", "")
				scheme = "https://"
				curlTLS = []string{"--cacert", filepath.Join(k.dir, "ca.pem")}
				if mode == "tls-http1.1" {
					curlTLS = append(curlTLS, "--http1.1")
				}
			}
			_, p := startPair(t, opts)
			base := scheme + p.Addr + "/v2/vectordb/users/"
			call := func(op, auth, body string) curlResult { return curl(t, base+op, auth, body, curlTLS...) }

			// gRPC on the same port, calling without pause meanwhile.
			m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, k.clientTLSOrNil()))
			ctx := testCtx(t, 60*time.Second)
			stopLoad := startLoad(1, func(int) error {
				time.Sleep(2 * time.Millisecond)
				return getVersion(ctx, m, "root:Milvus")
			})

			root := "Bearer root:Milvus"
			harness.Password("rest_user", "P@ssw0rd")
			harness.Password("rest_user", "P@ssw0rd2")
			ok := func(r curlResult, wantData string) {
				t.Helper()
				code, data, msg := envelope(t, r)
				got, _ := json.Marshal(data)
				if r.status != 200 || code != 0 || string(got) != wantData {
					t.Fatalf("HTTP %d code %d data %s message %q, want data %s", r.status, code, got, msg, wantData)
				}
				if mode == "tls-h2" && r.proto != "2" || mode != "tls-h2" && r.proto != "1.1" {
					t.Fatalf("curl used HTTP/%s", r.proto)
				}
			}
			ok(call("create", root, `{"userName":"rest_user","password":"P@ssw0rd"}`), `{}`)
			ok(call("list", root, `{}`), `["rest_user","root"]`)
			ok(call("describe", root, `{"userName":"rest_user"}`), `[]`)
			ok(call("grant_role", root, `{"userName":"rest_user","roleName":"admin"}`), `{}`)
			ok(call("describe", root, `{"userName":"rest_user"}`), `["admin"]`)
			ok(call("revoke_role", root, `{"userName":"rest_user","roleName":"admin"}`), `{}`)
			ok(call("update_password", "Basic "+basic("rest_user", "P@ssw0rd"), `{"userName":"rest_user","password":"P@ssw0rd","newPassword":"P@ssw0rd2"}`), `{}`)

			fails := func(r curlResult, status, code int, msg string) {
				t.Helper()
				gotCode, _, gotMsg := envelope(t, r)
				if r.status != status || gotCode != code || !strings.Contains(gotMsg, msg) {
					t.Fatalf("HTTP %d code %d %q, want HTTP %d code %d containing %q", r.status, gotCode, gotMsg, status, code, msg)
				}
			}
			for name, auth := range map[string]string{
				"no header":      "",
				"wrong password": "Bearer rest_user:P@ssw0rd",
				"wrong api key":  "Bearer ap_wrong-key-0123456789",
				"bad basic":      "Basic %%%",
				"unknown scheme": "Digest abc",
			} {
				r := call("list", auth, `{}`)
				if r.status != 401 || r.body != `{"code":1800,"message":"user hasn't authenticated"}` {
					t.Fatalf("%s: HTTP %d %s", name, r.status, r.body)
				}
			}
			fails(call("create", root, `{"userName":`), 200, 1801, "")
			fails(call("create", root, `{"userName":"x2"}`), 200, 1802, "password")
			fails(call("create", root, `{"userName":"1x","password":"P@ssw0rd"}`), 200, 1100, "the first character must be a letter")
			fails(call("create", root, `{"userName":"rest_user","password":"P@ssw0rd"}`), 200, 65535, "user already exists: rest_user")
			fails(call("update_password", root, `{"userName":"rest_user","password":"wrong-old","newPassword":"P@ssw0rd3"}`), 200, 1400, "old password not correct")
			fails(call("create", "Bearer rest_user:P@ssw0rd2", `{"userName":"x3","password":"P@ssw0rd"}`), 403, 65535, "PrivilegeCreateOwnership: permission deny to rest_user")
			fails(call("drop", root, `{"userName":"root"}`), 200, 1401, "root user cannot be deleted")
			ok(call("drop", root, `{"userName":"rest_user"}`), `{}`)
			ok(call("list", root, `{}`), `["root"]`)

			calls, failures, first := stopLoad()
			if failures != 0 || calls < 10 {
				t.Fatalf("gRPC on the shared port: %d of %d calls failed; first: %v", failures, calls, first)
			}
		})
	}
}

func (k *pki) clientTLSOrNil() *tls.Config {
	if k == nil {
		return nil
	}
	return k.clientTLS(false)
}

func basic(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

// A REST data call reaches the backend's REST endpoint without the
// client's Authorization and with the identity header.
func TestRESTForwardedToBackend(t *testing.T) {
	fake, p := startRESTPair(t, harness.Options{})
	r := curl(t, "http://"+p.Addr+"/v2/vectordb/collections/list", "Bearer root:Milvus", `{}`, "--header", "X-Authproxy-User: admin")
	if code, _, _ := envelope(t, r); r.status != 200 || code != 0 {
		t.Fatalf("forwarded call: %d %s", r.status, r.body)
	}
	calls := fake.Recorder().CallsTo("collections/list")
	if len(calls) != 1 {
		t.Fatalf("backend REST saw %d calls", len(calls))
	}
	md := calls[0].Metadata
	if len(md.Get("authorization")) != 0 {
		t.Fatal("Authorization reached the backend")
	}
	if u := md.Get("x-authproxy-user"); len(u) != 1 || u[0] != "root" {
		t.Fatalf("identity header %v, want [root]", u)
	}
	// Unauthenticated REST calls never reach it.
	if r := curl(t, "http://"+p.Addr+"/v2/vectordb/collections/list", "", `{}`); r.status != 401 {
		t.Fatalf("unauthenticated data call: %d", r.status)
	}
	if n := len(fake.Recorder().CallsTo("collections/list")); n != 1 {
		t.Fatalf("backend saw %d calls after a refused one", n)
	}
	// Role routes are the proxy's, never forwarded.
	if code, _, msg := envelope(t, curl(t, "http://"+p.Addr+"/v2/vectordb/roles/create", "Bearer root:Milvus", `{"roleName":"reader"}`)); code != 0 {
		t.Fatalf("roles/create: %d %s", code, msg)
	}
	if n := len(fake.Recorder().CallsTo("roles/create")); n != 0 {
		t.Fatalf("roles/create reached the backend %d times", n)
	}
}
