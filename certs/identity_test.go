package certs

import (
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
)

func parseCert(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestIdentity(t *testing.T) {
	ca := newTestCA(t, "CA")
	spiffe := "spiffe://example.org/ns/x/sa/y"
	full, _ := ca.leaf(t, LeafSpec{CommonName: "alice", Hosts: []string{"alice.example", "b.example"}, URIs: []string{spiffe, "spiffe://example.org/other"}, Client: true})
	bare, _ := ca.leaf(t, LeafSpec{CommonName: "", Client: true})
	cert, bareCert := parseCert(t, full), parseCert(t, bare)
	users := map[string]string{"alice": "root", "alice.example": "reader", spiffe: "writer"}

	for _, tc := range []struct {
		source string
		users  map[string]string
		want   string
	}{
		{"cn", nil, "alice"},
		{"dns", nil, "alice.example"},
		{"uri", nil, spiffe},
		{"cn", users, "root"},
		{"dns", users, "reader"},
		{"uri", users, "writer"},
	} {
		got, err := Identity(cert, tc.source, tc.users)
		if err != nil || got != tc.want {
			t.Errorf("Identity(%s, mapped=%v) = %q, %v; want %q", tc.source, tc.users != nil, got, err, tc.want)
		}
	}

	for _, tc := range []struct {
		cert   *x509.Certificate
		source string
		users  map[string]string
		want   string
	}{
		{cert, "cn", map[string]string{"bob": "root"}, `cn "alice" is not mapped to a user`},
		{cert, "uri", map[string]string{"spiffe://example.org/other": "x"}, "is not mapped"},
		{bareCert, "cn", nil, "has no cn identity"},
		{bareCert, "dns", nil, "has no dns identity"},
		{bareCert, "uri", nil, "has no uri identity"},
		{cert, "ou", nil, `unknown source "ou"`},
		{nil, "cn", nil, "no certificate"},
	} {
		if _, err := Identity(tc.cert, tc.source, tc.users); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Identity(%s) error = %v, want %q", tc.source, err, tc.want)
		}
	}
}
