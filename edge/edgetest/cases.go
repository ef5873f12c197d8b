// Package edgetest holds the table of cases that every caller of the
// admission step's header list (the grpc-go core's director, the frame
// relay, the REST handler) must pass, so that a rule cannot hold on one
// way in and not on another.
package edgetest

import (
	"slices"
	"strings"
	"testing"
)

// User is the authenticated caller in every case. Each adapter sends its
// credential its own way (gRPC metadata or an HTTP Authorization header).
const User = "alice"

// Case is one request through an adapter.
type Case struct {
	Name string
	// IdentityHeaders are configured one after the other before the request,
	// as live reloads would; the last is in force ("" sends none).
	IdentityHeaders []string
	// Sent is what the client sends besides its credential, in the spelling
	// a client could use (the gRPC adapter lower-cases keys, as gRPC does).
	Sent map[string]string
	// Absent keys must not reach the backend in any spelling.
	Absent []string
	// Present keys must reach the backend with exactly this one value.
	Present map[string]string
}

// Cases is the table.
var Cases = []Case{
	{
		Name:            "default header asserted, credential and member marker stripped",
		IdentityHeaders: []string{"x-authproxy-user"},
		Sent:            map[string]string{"sourceid": "QEBtaWx2dXMtbWVtYmVyQEA=", "x-authproxy-user": "root", "dbname": "db1"},
		Absent:          []string{"authorization", "sourceid"},
		Present:         map[string]string{"x-authproxy-user": User, "dbname": "db1"},
	},
	{
		Name:            "underscore variant of the identity header stripped",
		IdentityHeaders: []string{"x-authproxy-user"},
		Sent:            map[string]string{"X_Authproxy_User": "root", "X_Custom": "kept"},
		Absent:          []string{"authorization"},
		Present:         map[string]string{"x-authproxy-user": User, "x-custom": "kept"},
	},
	{
		Name:            "renamed live: the old and the default names stay stripped",
		IdentityHeaders: []string{"x-milvus-user", "x-caller"},
		Sent:            map[string]string{"x-milvus-user": "root", "x-caller": "root", "x-authproxy-user": "root"},
		Absent:          []string{"authorization", "x-milvus-user", "x-authproxy-user"},
		Present:         map[string]string{"x-caller": User},
	},
	{
		Name:            "no identity header: none asserted, client copies still stripped",
		IdentityHeaders: []string{"x-caller", ""},
		Sent:            map[string]string{"x-caller": "root", "x_caller": "root", "x-authproxy-user": "root"},
		Absent:          []string{"authorization", "x-caller", "x-authproxy-user"},
	},
	{
		Name:            "ordinary keys pass unchanged",
		IdentityHeaders: []string{"x-authproxy-user"},
		Sent:            map[string]string{"client-request-id": "r1", "x-custom": "v"},
		Absent:          []string{"authorization"},
		Present:         map[string]string{"client-request-id": "r1", "x-custom": "v", "x-authproxy-user": User},
	},
}

// Check compares what the backend received with the case. Keys are
// compared as the policy compares them: case-insensitively, "_" as "-".
func Check(t *testing.T, c Case, got map[string][]string) {
	t.Helper()
	merged := map[string][]string{}
	for k, v := range got {
		n := strings.ReplaceAll(strings.ToLower(k), "_", "-")
		merged[n] = append(merged[n], v...)
	}
	for _, k := range c.Absent {
		if v := merged[k]; len(v) > 0 {
			t.Errorf("%s: %s reached the backend: %q", c.Name, k, v)
		}
	}
	for k, want := range c.Present {
		if v := merged[k]; !slices.Equal(v, []string{want}) {
			t.Errorf("%s: %s at the backend = %q, want [%q]", c.Name, k, v, want)
		}
	}
}
