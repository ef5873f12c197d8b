package certs

import (
	"crypto/x509"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadKeyPair(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "test CA")
	goodCert, goodKey := ca.leaf(t, LeafSpec{CommonName: "server", Hosts: []string{"127.0.0.1"}})
	_, otherKey := ca.leaf(t, LeafSpec{CommonName: "other"})
	expiredAt := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	expiredCert, expiredKey := ca.leaf(t, LeafSpec{CommonName: "old", NotBefore: expiredAt.Add(-time.Hour), NotAfter: expiredAt})
	futureAt := time.Now().Add(48 * time.Hour).Truncate(time.Second).UTC()
	futureCert, futureKey := ca.leaf(t, LeafSpec{CommonName: "new", NotBefore: futureAt, NotAfter: futureAt.Add(time.Hour)})

	cert := writeFile(t, dir, "server.pem", goodCert)
	key := writeFile(t, dir, "server.key", goodKey)
	missing := filepath.Join(dir, "missing.pem")
	text := writeFile(t, dir, "text.pem", []byte("hello, not PEM\n"))
	keyAsCert := writeFile(t, dir, "keyascert.pem", goodKey)
	badDER := writeFile(t, dir, "baddDER.pem", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	badKey := writeFile(t, dir, "bad.key", []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	certAsKey := writeFile(t, dir, "certaskey.key", goodCert)
	wrongKey := writeFile(t, dir, "wrong.key", otherKey)
	expired, expiredK := writePair(t, dir, "expired", expiredCert, expiredKey)
	future, futureK := writePair(t, dir, "future", futureCert, futureKey)

	for _, tc := range []struct {
		name, cert, key string
		want            []string // substrings of the error
	}{
		{"missing cert", missing, key, []string{missing, "no such file"}},
		{"missing key", cert, missing, []string{missing, "no such file"}},
		{"unset cert", "", key, []string{"certificate file not set"}},
		{"no PEM in cert", text, key, []string{text, "no PEM block found"}},
		{"key in cert file", keyAsCert, key, []string{keyAsCert, "no CERTIFICATE PEM block (found PRIVATE KEY)"}},
		{"not a certificate", badDER, key, []string{badDER, "not a valid certificate"}},
		{"no PEM in key", cert, text, []string{text, "no PEM block found"}},
		{"cert in key file", cert, certAsKey, []string{certAsKey, "no PRIVATE KEY PEM block (found CERTIFICATE)"}},
		{"key not parseable", cert, badKey, []string{badKey, "key not parseable"}},
		{"key mismatch", cert, wrongKey, []string{"private key " + wrongKey + " does not match certificate " + cert}},
		{"expired", expired, expiredK, []string{"certificate " + expired + " expired at 2026-01-02T03:04:05Z"}},
		{"not yet valid", future, futureK, []string{"certificate " + future + " is not valid before " + futureAt.Format(time.RFC3339)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadKeyPair(tc.cert, tc.key)
			if err == nil {
				t.Fatal("want error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}

	pair, err := LoadKeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	if pair.Leaf == nil || pair.Leaf.Subject.CommonName != "server" || len(pair.Certificate) != 1 {
		t.Fatalf("bad pair: leaf %v, %d certs", pair.Leaf, len(pair.Certificate))
	}
}

func TestLoadCAPool(t *testing.T) {
	dir := t.TempDir()
	a, b := newTestCA(t, "A"), newTestCA(t, "B")
	bundle := writeFile(t, dir, "bundle.pem", append(append([]byte{}, a.cert...), b.cert...))
	pool, err := LoadCAPool(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if !pool.Equal(func() *x509.CertPool { p := a.pool(t); p.AppendCertsFromPEM(b.cert); return p }()) {
		t.Fatal("pool does not hold both CAs")
	}
	empty := writeFile(t, dir, "empty.pem", nil)
	if _, err := LoadCAPool(empty); err == nil || !strings.Contains(err.Error(), empty) {
		t.Fatalf("empty CA file: got %v", err)
	}
	missing := filepath.Join(dir, "nope.pem")
	if _, err := LoadCAPool(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing CA file: got %v", err)
	}
}
