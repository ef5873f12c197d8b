package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus/client/v2/milvusclient"

	"github.com/authproxy/authproxy/test/harness"
)

// A data route's body is read as Milvus's REST v2 reads it (gin's JSON
// binding: the first value, keys matched case-insensitively, the last
// duplicate winning) or refused with HTTP 400 and Milvus's envelope before
// a byte reaches the backend: never decided on the default database
// because the proxy could not read it.
func TestRESTBodyReadAsTheBackendReads(t *testing.T) {
	fake, p := startRESTPair(t, harness.Options{})
	ctx := testCtx(t, 60*time.Second)
	sdk := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "root", Password: "Milvus"})
	for _, name := range []string{"books", "secret"} {
		createVectors(t, ctx, sdk, name, 8)
	}
	base := "http://" + p.Addr + "/v2/vectordb/"
	root := "Bearer root:Milvus"
	for _, step := range [][2]string{
		{"roles/create", `{"roleName":"reader"}`},
		{"roles/grant_privilege", `{"roleName":"reader","objectType":"Collection","objectName":"books","privilege":"Search"}`},
		{"users/create", `{"userName":"alice","password":"Alice-pw-1"}`},
		{"users/grant_role", `{"userName":"alice","roleName":"reader"}`},
	} {
		if r := curl(t, base+step[0], root, step[1]); r.status != 200 {
			t.Fatalf("%s: %d %s", step[0], r.status, r.body)
		}
	}
	alice := "Bearer alice:Alice-pw-1"
	searches := func() int { return len(fake.Recorder().CallsTo("entities/search")) }
	before := searches()

	refused := map[string]string{
		// Milvus searches db2: the Decoder stops after the first value.
		`{"collectionName":"books","dbName":"db2"} x`: "invalid character 'x' after top-level value",
		`{"collectionName":"books"} {"dbName":"db2"}`: "invalid character '{' after top-level value",
		`{"collectionName":"books","dbName":2}`:       "cannot unmarshal number",
		`{"collectionName":"books","dbName":"db2"`:    "unexpected end of JSON input",
		`["books"]`: "cannot unmarshal array",
		`{"collectionName":"books","dbName":"\ud800"}`:               "dbName is not valid UTF-8",
		"{\"collectionName\":\"books\",\"dbName\":\"d\xffb\"}":       "dbName is not valid UTF-8",
		`{"collectionName":"books","dbName":"db2"}` + "\n\n// more ": "invalid character '/' after top-level value",
	}
	for body, want := range refused {
		r := curl(t, base+"entities/search", alice, body)
		code, _, msg := envelope(t, r)
		if r.status != 400 || code != 1801 || !strings.HasPrefix(msg, "can only accept json format request, error: ") || !strings.Contains(msg, want) {
			t.Errorf("body %q: HTTP %d code %d %q, want 400 1801 naming %q", body, r.status, code, msg, want)
		}
	}
	// No body at all: Milvus's answer to io.EOF, before the backend.
	r := curl(t, base+"entities/search", alice, "")
	if code, _, msg := envelope(t, r); r.status != 400 || code != 1801 || msg != "can only accept json format request, the request body should be nil, however {} is valid" {
		t.Errorf("no body: HTTP %d code %d %q, want 400 1801 and Milvus's words", r.status, code, msg)
	}
	// Case-insensitive keys, the last one winning, as in encoding/json.
	r = curl(t, base+"entities/search", alice, `{"collectionName":"books","COLLECTIONNAME":"secret"}`)
	if code, _, msg := envelope(t, r); r.status != 403 || !strings.Contains(msg, "PrivilegeSearch: permission deny to alice in the `default` database") {
		t.Errorf("COLLECTIONNAME after collectionName: HTTP %d code %d %q, want the refusal of secret", r.status, code, msg)
	}
	r = curl(t, base+"entities/search", alice, `{"CollectionName":"secret","collectionName":"books","data":[[0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1]]}`+" \r\n\t")
	if code, _, msg := envelope(t, r); r.status != 200 || code != 0 {
		t.Errorf("books last, trailing white space: HTTP %d code %d %q, want the search", r.status, code, msg)
	}
	if n := searches() - before; n != 1 {
		t.Errorf("the backend saw %d searches, want alice's one allowed search", n)
	}
}

// A body over the limit costs the proxy nothing when its length is
// declared (refused before a byte is read) and at most the limit when it
// is chunked; Milvus reads the body whole too, so the proxy may hold one
// to decide, but never more than it.
func TestRESTBodyMemoryIsBounded(t *testing.T) {
	_, p := startRESTPair(t, harness.Options{})
	base := "http://" + p.Addr + "/v2/vectordb/"
	if r := curl(t, base+"users/create", "Bearer root:Milvus", `{"userName":"alice","password":"Alice-pw-1"}`); r.status != 200 {
		t.Fatalf("users/create: %d %s", r.status, r.body)
	}
	const limit = 64 << 20

	// The peak resident set (VmHWM) after a call, against the resident
	// set (VmRSS) before it.
	memory := func(field string) int64 {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID()))
		must(t, err)
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, field+":"); ok {
				kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				must(t, err)
				return kb << 10
			}
		}
		t.Fatalf("no %s in /proc/PID/status", field)
		return 0
	}
	// 160 MiB chunked, as a user the decision must read the body for.
	start := memory("VmRSS")
	ctx := testCtx(t, 60*time.Second)
	big := io.MultiReader(strings.NewReader(`{"collectionName":"books","data":[`), &repeated{chunk: []byte(`{"id":1,"vector":[0.1,0.2]},`), left: 160 << 20})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"entities/insert", big)
	must(t, err)
	req.Header.Set("Authorization", "Bearer alice:Alice-pw-1")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Errorf("160 MiB chunked: %d, want 413", resp.StatusCode)
		}
	} else if !strings.Contains(err.Error(), "connection reset") && !strings.Contains(err.Error(), "broken pipe") {
		t.Errorf("160 MiB chunked: %v, want 413 or the connection closed on the rest", err)
	}
	grown := memory("VmHWM") - start
	t.Logf("peak RSS grew by %d MiB for a 160 MiB chunked body (limit %d MiB)", grown>>20, limit>>20)
	if grown > limit+limit/4 {
		t.Errorf("a chunked body over the limit grew the peak RSS by %d MiB, want at most %d MiB (the limit, and a quarter for the rest)", grown>>20, (limit+limit/4)>>20)
	}

	// Content-Length: 1 GiB, no body sent: refused at once.
	c, err := net.DialTimeout("tcp", p.Addr, 5*time.Second)
	must(t, err)
	defer c.Close()
	fmt.Fprintf(c, "POST /v2/vectordb/entities/insert HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer alice:Alice-pw-1\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n{", p.Addr, 1<<30)
	sent := time.Now()
	c.SetReadDeadline(sent.Add(10 * time.Second))
	resp, err = http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("Content-Length 1 GiB: no answer without the body: %v", err)
	}
	t.Logf("Content-Length 1 GiB refused in %v", time.Since(sent))
	body, _ := io.ReadAll(resp.Body)
	if want := fmt.Sprintf("request body too large: the limit is %d bytes", limit); resp.StatusCode != 413 || !strings.Contains(string(body), want) {
		t.Errorf("Content-Length 1 GiB: %d %s, want 413 %q", resp.StatusCode, body, want)
	}
}

// repeated reads chunk over and over, left bytes in all.
type repeated struct {
	chunk []byte
	off   int
	left  int
}

func (r *repeated) Read(b []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	n := 0
	for n < len(b) && r.left > 0 {
		k := copy(b[n:min(len(b), n+r.left)], r.chunk[r.off:])
		n += k
		r.left -= k
		r.off = (r.off + k) % len(r.chunk)
	}
	return n, nil
}
