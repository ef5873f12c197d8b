package certs

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// timeFormat is used in expiry errors: readable, unambiguous, UTC.
const timeFormat = time.RFC3339

// LoadKeyPair reads a PEM certificate chain (leaf first) and its PEM private
// key (PKCS#8, PKCS#1 or SEC 1), and checks that they match and that the leaf
// is valid now. Every error names the file at fault. Leaf is filled.
func LoadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	chain, err := readCertificates(certFile)
	if err != nil {
		return nil, err
	}
	key, err := readPrivateKey(keyFile)
	if err != nil {
		return nil, err
	}
	leaf := chain[0]
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return nil, fmt.Errorf("private key %s does not match certificate %s", keyFile, certFile)
	}
	if err := checkValidity(leaf, certFile); err != nil {
		return nil, err
	}
	out := &tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, c := range chain {
		out.Certificate = append(out.Certificate, c.Raw)
	}
	return out, nil
}

// LoadCAPool reads a PEM bundle of one or more CA certificates. Expired
// certificates are accepted (bundles often carry some); verification rejects
// chains through them.
func LoadCAPool(file string) (*x509.CertPool, error) {
	cas, err := readCertificates(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	return pool, nil
}

func checkValidity(c *x509.Certificate, file string) error {
	t := time.Now()
	if t.After(c.NotAfter) {
		return fmt.Errorf("certificate %s expired at %s", file, c.NotAfter.UTC().Format(timeFormat))
	}
	if t.Before(c.NotBefore) {
		return fmt.Errorf("certificate %s is not valid before %s", file, c.NotBefore.UTC().Format(timeFormat))
	}
	return nil
}

// readCertificates parses every CERTIFICATE block of a PEM file; there must be
// at least one and no other block type may be mistaken for one.
func readCertificates(file string) ([]*x509.Certificate, error) {
	data, err := readFile("certificate", file)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	var others []string
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			others = append(others, block.Type)
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate file %s: block %d is not a valid certificate: %w", file, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	switch {
	case len(certs) > 0:
		return certs, nil
	case len(others) > 0:
		return nil, fmt.Errorf("certificate file %s: no CERTIFICATE PEM block (found %s)", file, strings.Join(others, ", "))
	default:
		return nil, fmt.Errorf("certificate file %s: no PEM block found", file)
	}
}

func readPrivateKey(file string) (crypto.Signer, error) {
	data, err := readFile("private key", file)
	if err != nil {
		return nil, err
	}
	var others []string
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if !strings.HasSuffix(block.Type, "PRIVATE KEY") {
			others = append(others, block.Type) // e.g. EC PARAMETERS before the key
			continue
		}
		key, err := parsePrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("private key file %s: key not parseable (%s block): %w", file, block.Type, err)
		}
		return key, nil
	}
	if len(others) > 0 {
		return nil, fmt.Errorf("private key file %s: no PRIVATE KEY PEM block (found %s)", file, strings.Join(others, ", "))
	}
	return nil, fmt.Errorf("private key file %s: no PEM block found", file)
}

func parsePrivateKey(der []byte) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
		return nil, fmt.Errorf("unsupported PKCS#8 key type %T", k)
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("not a PKCS#8, PKCS#1 or SEC 1 private key (encrypted keys are not supported)")
}

func readFile(what, file string) ([]byte, error) {
	if file == "" {
		return nil, fmt.Errorf("%s file not set", what)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		// The *PathError already names the file.
		return nil, fmt.Errorf("read %s file: %w", what, err)
	}
	return data, nil
}
