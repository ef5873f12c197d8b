package harness

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/authproxy/authproxy/certs"
)

// LDAP is a real OpenLDAP slapd (Debian's package) on loopback, with
// StartTLS on URL and LDAPS on LDAPSURL, both under a test CA in CAFile.
// Its tree is dc=example,dc=org with ou=people and ou=groups, and the
// memberOf overlay, so that users' entries carry memberOf as in Active
// Directory.
type LDAP struct {
	URL, LDAPSURL string
	CAFile        string
	Dir           string
	t             testing.TB
	cmd           *exec.Cmd
	done          <-chan struct{} // closed when slapd has exited
	args          []string
	logs          *logBuffer
}

// LDAP tree constants.
const (
	LDAPBase    = "dc=example,dc=org"
	LDAPPeople  = "ou=people," + LDAPBase
	LDAPGroups  = "ou=groups," + LDAPBase
	ldapAdminDN = "cn=admin," + LDAPBase
	ldapAdminPW = "slapd-admin-secret"
)

const slapdConf = `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile {dir}/slapd.pid
argsfile {dir}/slapd.args
TLSCACertificateFile {dir}/ca.pem
TLSCertificateFile {dir}/server.pem
TLSCertificateKeyFile {dir}/server-key.pem
database mdb
maxsize 16777216
suffix "` + LDAPBase + `"
rootdn "` + ldapAdminDN + `"
rootpw ` + ldapAdminPW + `
directory {dir}/db
overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint true
access to attrs=userPassword by self =xw by anonymous auth by * none
access to * by users read by * none
`

// StartLDAP starts slapd and creates the base entries; it is stopped at
// test end. It fails (never skips) when slapd is missing: .ci/run installs it.
func StartLDAP(t testing.TB) *LDAP {
	t.Helper()
	slapd, err := exec.LookPath("slapd")
	if err != nil {
		if _, statErr := os.Stat("/usr/sbin/slapd"); statErr != nil {
			t.Fatal("slapd not found: install Debian's slapd package (.ci/run does)")
		}
		slapd = "/usr/sbin/slapd"
	}
	dir := t.TempDir()
	caPEM, caKey, err := certs.GenerateCA("authproxy LDAP test CA", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := certs.GenerateLeaf(caPEM, caKey, certs.LeafSpec{CommonName: "slapd", Hosts: []string{"127.0.0.1", "localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"ca.pem": caPEM, "server.pem": certPEM, "server-key.pem": keyPEM,
		"slapd.conf": []byte(strings.ReplaceAll(slapdConf, "{dir}", dir))} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	l := &LDAP{t: t, Dir: dir, CAFile: filepath.Join(dir, "ca.pem")}
	l.URL = "ldap://" + FreeAddr(t)
	l.LDAPSURL = "ldaps://" + FreeAddr(t)
	// -d 0: stay in the foreground, so the test owns the process.
	l.args = []string{slapd, "-d", "0", "-f", filepath.Join(dir, "slapd.conf"), "-h", l.URL + "/ " + l.LDAPSURL + "/"}
	l.Start()
	t.Cleanup(l.Stop)
	l.admin(func(c *ldap.Conn) error {
		for _, e := range []struct {
			dn      string
			classes []string
			attrs   [][2]string
		}{
			{LDAPBase, []string{"dcObject", "organization", "top"}, [][2]string{{"dc", "example"}, {"o", "Example"}}},
			{LDAPPeople, []string{"organizationalUnit", "top"}, [][2]string{{"ou", "people"}}},
			{LDAPGroups, []string{"organizationalUnit", "top"}, [][2]string{{"ou", "groups"}}},
		} {
			r := ldap.NewAddRequest(e.dn, nil)
			r.Attribute("objectClass", e.classes)
			for _, a := range e.attrs {
				r.Attribute(a[0], []string{a[1]})
			}
			if err := c.Add(r); err != nil {
				return fmt.Errorf("add %s: %w", e.dn, err)
			}
		}
		return nil
	})
	return l
}

// Start (re)starts slapd on the same addresses and data, and waits until
// it accepts connections.
func (l *LDAP) Start() {
	l.t.Helper()
	l.logs = newLogBuffer()
	l.cmd = exec.Command(l.args[0], l.args[1:]...)
	l.cmd.Stdout, l.cmd.Stderr = l.logs, l.logs
	done, err := StartChild(l.cmd)
	if err != nil {
		l.t.Fatalf("start slapd: %v", err)
	}
	l.done = done
	addr := strings.TrimPrefix(l.URL, "ldap://")
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.Stop()
	l.t.Fatalf("slapd did not listen on %s within 15 s: %s", addr, l.logs.String())
}

// Stop ends slapd (the directory "down").
func (l *LDAP) Stop() {
	if l.cmd == nil || l.cmd.Process == nil {
		return
	}
	_ = l.cmd.Process.Kill()
	<-l.done
	l.cmd = nil
}

// TLSConfig trusts the directory's CA.
func (l *LDAP) TLSConfig() *tls.Config {
	pem, err := os.ReadFile(l.CAFile)
	if err != nil {
		l.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

func (l *LDAP) admin(do func(*ldap.Conn) error) {
	l.t.Helper()
	c, err := ldap.DialURL(l.URL)
	if err != nil {
		l.t.Fatal(err)
	}
	defer c.Close()
	if err := c.StartTLS(l.TLSConfig()); err != nil {
		l.t.Fatal(err)
	}
	if err := c.Bind(ldapAdminDN, ldapAdminPW); err != nil {
		l.t.Fatal(err)
	}
	if err := do(c); err != nil {
		l.t.Fatal(err)
	}
}

// AddUser creates uid=<uid>,ou=people with a password.
func (l *LDAP) AddUser(uid, password string) string {
	dn := "uid=" + ldap.EscapeDN(uid) + "," + LDAPPeople
	l.admin(func(c *ldap.Conn) error {
		r := ldap.NewAddRequest(dn, nil)
		r.Attribute("objectClass", []string{"inetOrgPerson"})
		r.Attribute("uid", []string{uid})
		r.Attribute("cn", []string{uid})
		r.Attribute("sn", []string{uid})
		r.Attribute("userPassword", []string{password})
		return c.Add(r)
	})
	return dn
}

// AddGroup creates cn=<cn>,ou=groups (groupOfNames) with members (DNs).
func (l *LDAP) AddGroup(cn string, members ...string) string {
	dn := "cn=" + ldap.EscapeDN(cn) + "," + LDAPGroups
	l.admin(func(c *ldap.Conn) error {
		r := ldap.NewAddRequest(dn, nil)
		r.Attribute("objectClass", []string{"groupOfNames"})
		r.Attribute("cn", []string{cn})
		r.Attribute("member", members)
		return c.Add(r)
	})
	return dn
}

// SetMembers replaces a group's members.
func (l *LDAP) SetMembers(groupDN string, members ...string) {
	l.admin(func(c *ldap.Conn) error {
		r := ldap.NewModifyRequest(groupDN, nil)
		r.Replace("member", members)
		return c.Modify(r)
	})
}

// SetAttribute replaces an attribute of an entry (no value removes it).
func (l *LDAP) SetAttribute(dn, attr string, values ...string) {
	l.admin(func(c *ldap.Conn) error {
		r := ldap.NewModifyRequest(dn, nil)
		r.Replace(attr, values)
		return c.Modify(r)
	})
}
