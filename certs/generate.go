package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// DefaultClientCN is the CommonName of the client certificate written by
// Generate: "root", Milvus's default administrator, so that Identity with
// source "cn" and no mapping yields a working user name. Mint other client
// certificates with GenerateLeaf.
const DefaultClientCN = "root"

// clockSkew backdates NotBefore so that hosts with slightly late clocks
// accept freshly minted certificates.
const clockSkew = 5 * time.Minute

// LeafSpec describes a certificate signed by GenerateLeaf.
type LeafSpec struct {
	CommonName string
	// Hosts become IP SANs (for IP addresses) or DNS SANs.
	Hosts []string
	// URIs become URI SANs, e.g. "spiffe://example.org/ns/x/sa/y".
	URIs []string
	// Client selects the client-auth extended key usage instead of server-auth.
	Client bool
	// NotBefore defaults to now minus a few minutes; NotAfter to NotBefore+24h.
	// Both may be in the past or future, to test expiry handling.
	NotBefore, NotAfter time.Time
}

// Generate writes a development CA (ca.pem, ca.key), a server certificate for
// hosts (server.pem, server.key) and a client certificate with CN
// DefaultClientCN (client.pem, client.key) to dir, all valid for validFor.
// Keys are PKCS#8 PEM mode 0600, certificates mode 0644; dir is created 0700
// if missing. Existing files are replaced.
func Generate(dir string, hosts []string, validFor time.Duration) error {
	if len(hosts) == 0 {
		return errors.New("generate certificates: no server host names")
	}
	if validFor <= 0 {
		return fmt.Errorf("generate certificates: validity %v must be positive", validFor)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("generate certificates: %w", err)
	}
	caCert, caKey, err := GenerateCA("authproxy development CA", validFor)
	if err != nil {
		return err
	}
	notBefore := time.Now().Add(-clockSkew)
	notAfter := notBefore.Add(validFor)
	srvCert, srvKey, err := GenerateLeaf(caCert, caKey, LeafSpec{CommonName: hosts[0], Hosts: hosts, NotBefore: notBefore, NotAfter: notAfter})
	if err != nil {
		return err
	}
	cliCert, cliKey, err := GenerateLeaf(caCert, caKey, LeafSpec{CommonName: DefaultClientCN, Client: true, NotBefore: notBefore, NotAfter: notAfter})
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"ca.pem", caCert, 0o644}, {"ca.key", caKey, 0o600},
		{"server.pem", srvCert, 0o644}, {"server.key", srvKey, 0o600},
		{"client.pem", cliCert, 0o644}, {"client.key", cliKey, 0o600},
	} {
		if err := writeFileAtomic(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("generate certificates: %w", err)
		}
	}
	return nil
}

// GenerateCA returns a self-signed ECDSA P-256 CA certificate and its key,
// both PEM (the key PKCS#8).
func GenerateCA(cn string, validFor time.Duration) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA key: %w", err)
	}
	notBefore := time.Now().Add(-clockSkew)
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(validFor),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	return sign(tmpl, tmpl, key, key)
}

// GenerateLeaf returns an ECDSA P-256 certificate signed by the CA in PEM
// form (as returned by GenerateCA), and its PKCS#8 PEM key.
func GenerateLeaf(caCertPEM, caKeyPEM []byte, spec LeafSpec) (certPEM, keyPEM []byte, err error) {
	caCert, caKey, err := parseCA(caCertPEM, caKeyPEM)
	if err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:   pkix.Name{CommonName: spec.CommonName},
		NotBefore: spec.NotBefore,
		NotAfter:  spec.NotAfter,
		KeyUsage:  x509.KeyUsageDigitalSignature,
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-clockSkew)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = tmpl.NotBefore.Add(24 * time.Hour)
	}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	if spec.Client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	for _, h := range spec.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	for _, u := range spec.URIs {
		parsed, err := url.Parse(u)
		if err != nil {
			return nil, nil, fmt.Errorf("generate certificate: URI SAN %q: %w", u, err)
		}
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	return sign(tmpl, caCert, key, caKey)
}

func parseCA(certPEM, keyPEM []byte) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, nil, errors.New("generate certificate: CA certificate is not a PEM CERTIFICATE")
	}
	caCert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("generate certificate: CA certificate: %w", err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, nil, errors.New("generate certificate: CA key is not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("generate certificate: CA key: %w", err)
	}
	caKey, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("generate certificate: CA key is %T, want ECDSA", k)
	}
	return caCert, caKey, nil
}

func sign(tmpl, parent *x509.Certificate, key, parentKey *ecdsa.PrivateKey) (certPEM, keyPEM []byte, err error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("generate serial: %w", err)
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sign certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// writeFileAtomic writes through a temporary file and a rename, so a watcher
// never reads half a file and a key is never briefly world-readable.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
