package certs

import (
	"crypto/x509"
	"errors"
	"fmt"
)

// Identity sources for the Identity function.
const (
	IdentityCN  = "cn"  // Subject CommonName
	IdentityDNS = "dns" // first DNS SAN
	IdentityURI = "uri" // first URI SAN, e.g. a SPIFFE ID
)

// Identity extracts the client identity from a verified client certificate
// and maps it to an authproxy user name. With a non-empty users map (value in
// the certificate -> user name) an unmapped value is an error; with an empty
// one the value itself is the user name.
func Identity(cert *x509.Certificate, source string, users map[string]string) (string, error) {
	if cert == nil {
		return "", errors.New("client certificate identity: no certificate")
	}
	var value string
	switch source {
	case IdentityCN:
		value = cert.Subject.CommonName
	case IdentityDNS:
		if len(cert.DNSNames) > 0 {
			value = cert.DNSNames[0]
		}
	case IdentityURI:
		if len(cert.URIs) > 0 {
			value = cert.URIs[0].String()
		}
	default:
		return "", fmt.Errorf("client certificate identity: unknown source %q (want %q, %q or %q)", source, IdentityCN, IdentityDNS, IdentityURI)
	}
	if value == "" {
		return "", fmt.Errorf("client certificate %q (serial %s) has no %s identity", cert.Subject.String(), cert.SerialNumber, source)
	}
	if len(users) == 0 {
		return value, nil
	}
	user, ok := users[value]
	if !ok {
		return "", fmt.Errorf("client certificate %s %q is not mapped to a user", source, value)
	}
	return user, nil
}
