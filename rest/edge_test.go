package rest

import (
	"net/http"
	"testing"

	"github.com/authproxy/authproxy/edge/edgetest"
)

// The REST adapter of the edge header policy passes the shared table.
func TestForwardFollowsEdgeTable(t *testing.T) {
	for _, c := range edgetest.Cases {
		backend := newRecordingBackend(t)
		e := newEnv(t, backend.url, nil)
		e.addUser(t, edgetest.User, "alice-pw1")
		for _, h := range c.IdentityHeaders {
			e.headers.SetIdentityHeader(h)
		}
		var extra []string
		for k, v := range c.Sent {
			extra = append(extra, k, v)
		}
		if r := e.post(t, "/v2/vectordb/collections/list", "Bearer alice:alice-pw1", `{}`, extra...); r.status != http.StatusOK {
			t.Fatalf("%s: HTTP %d", c.Name, r.status)
		}
		edgetest.Check(t, c, backend.header())
	}
}
