package integration

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/authproxy/authproxy/config"
	"github.com/authproxy/authproxy/test/harness"
)

// liveConf is the config file of TestEveryLiveKeyAppliesOnReload: one
// field per live key (or section), the rest as the harness started it.
type liveConf struct {
	listen, forwarding, backend, admin string

	authEnabled     bool
	superUsers      string
	publicPrivilege bool
	rootBindsRole   bool
	otherServices   string
	credFile        string
	cacheSize       int
	cacheTTL        string
	identityHeader  string
	logLevel        string
	grace           string
	// tls is the tls: section's body (indented), identities the
	// identities: section's, rateLimits the rateLimits: section's.
	tls, identities, rateLimits string
}

func (c liveConf) render() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %q\n", c.listen)
	if c.forwarding != "" {
		fmt.Fprintf(&b, "forwarding: %q\n", c.forwarding)
	}
	fmt.Fprintf(&b, "backend:\n  address: %q\nadmin:\n  listen: %q\n", c.backend, c.admin)
	fmt.Fprintf(&b, "credentials:\n  file: %q\ncache:\n  size: %d\n  ttl: %s\nauth:\n  identityHeader: %q\n", c.credFile, c.cacheSize, c.cacheTTL, c.identityHeader)
	fmt.Fprintf(&b, "common:\n  security:\n    authorizationEnabled: %t\n    superUsers: %q\n    enablePublicPrivilege: %t\n    rootShouldBindRole: %t\n    otherServices: %s\n",
		c.authEnabled, c.superUsers, c.publicPrivilege, c.rootBindsRole, c.otherServices)
	fmt.Fprintf(&b, "log:\n  level: %s\nshutdown:\n  gracePeriod: %s\n", c.logLevel, c.grace)
	if c.tls != "" {
		b.WriteString("tls:\n" + c.tls)
	}
	if c.identities != "" {
		b.WriteString("identities:\n" + c.identities)
	}
	if c.rateLimits != "" {
		b.WriteString("rateLimits:\n" + c.rateLimits)
	}
	return []byte(b.String())
}

// covers says whether a step that changed pattern changed key: a section
// covers the keys below it.
func covers(pattern, key string) bool {
	return key == pattern || strings.HasPrefix(key, pattern+".")
}

// Every key the config marks Live is changed through a reload of the real
// binary (the file rewritten, the watcher reloads it), and its effect is
// seen from outside: a call's answer, a handshake, a metric, a header at
// the backend, a log line. The steps say which keys they change; a Live key
// no step changes fails the test. Then a bad edit of each section is
// refused with everything kept, and restart-only changes are reported and
// not half-applied.
func TestEveryLiveKeyAppliesOnReload(t *testing.T) {
	dir := t.TempDir()
	k := newPKI(t, filepath.Join(dir, "tls"), "svc-cn")
	k2Serial := k.writeServer(t, k.dir, "2")
	stranger := newPKI(t, filepath.Join(dir, "stranger"), "svc-cn")
	fake, p := startPair(t, harness.Options{Dir: dir, Extra: tlsSection(k.dir, "none", "")})
	ctx := testCtx(t, 240*time.Second)

	conf := liveConf{
		listen: p.Addr, forwarding: harness.Core(), backend: fake.Addr(), admin: p.AdminAddr,
		authEnabled: true, publicPrivilege: true, otherServices: "authenticated", credFile: p.CredFile,
		cacheSize: 10000, cacheTTL: "10m", identityHeader: "x-authproxy-user", logLevel: "info", grace: "5s",
		tls: fmt.Sprintf("  certFile: %q\n  keyFile: %q\n", filepath.Join(k.dir, "server.pem"), filepath.Join(k.dir, "server.key")),
	}
	changed := map[string]bool{}
	reload := func(what string, keys ...string) {
		t.Helper()
		before := metricValue(t, p, `authproxy_reloads_total{file="config",result="success"}`)
		writeByRename(t, p.Config, conf.render())
		eventually(t, 5*time.Second, what+": reload", func() error {
			if metricValue(t, p, `authproxy_reloads_total{file="config",result="success"}`) <= before {
				return fmt.Errorf("no successful config reload counted")
			}
			return nil
		})
		for _, key := range keys {
			changed[key] = true
		}
	}
	reload("the test's own rendering of the harness config")
	if strings.Contains(p.Logs(), "needs a restart") {
		t.Fatalf("the rendered config differs from the running one in a restart-only key:\n%s", p.Logs())
	}

	serverTLS := func(cert bool) *tls.Config { c := k.clientTLS(cert); c.NextProtos = []string{"h2"}; return c }
	conn := dial(t, p.Addr, serverTLS(false))
	m := milvuspb.NewMilvusServiceClient(conn)
	call := func(token string) error { return getVersion(ctx, m, token) }
	code := func(err error) codes.Code { return status.Code(err) }
	want := func(what string, got error, c codes.Code) func() error {
		return func() error {
			if code(got) != c {
				return fmt.Errorf("%s: %v, want %s", what, got, c)
			}
			return nil
		}
	}
	// Users for the steps below, made by root through the API.
	for _, u := range []string{"ann", "cal", "dan"} {
		harness.Password(u, u+"-Pw-1")
		st, err := m.CreateCredential(withToken(ctx, "root:Milvus"), &milvuspb.CreateCredentialRequest{Username: u, Password: b64(u + "-Pw-1")})
		if err != nil || st.GetCode() != 0 {
			t.Fatalf("create %s: %v %v", u, st, err)
		}
	}

	// common.security.authorizationEnabled: a call without a token.
	noToken := func() error { _, err := m.GetVersion(ctx, &milvuspb.GetVersionRequest{}); return err }
	must(t, want("no token, auth on", noToken(), codes.Unauthenticated)())
	conf.authEnabled = false
	reload("authorizationEnabled off", "common.security.authorizationEnabled")
	eventually(t, 3*time.Second, "no token served with auth off", noToken)
	conf.authEnabled = true
	reload("authorizationEnabled on")
	eventually(t, 3*time.Second, "no token refused with auth on", func() error { return want("no token", noToken(), codes.Unauthenticated)() })

	// common.security.superUsers: root resets ann's password without the
	// old one only as a super user.
	resetAlice := func() error {
		st, err := m.UpdateCredential(withToken(ctx, "root:Milvus"), &milvuspb.UpdateCredentialRequest{
			Username: "ann", OldPassword: b64("not-her-password"), NewPassword: b64("ann-Pw-1")})
		if err == nil && st.GetCode() != 0 {
			err = fmt.Errorf("%s", st.GetReason())
		}
		return err
	}
	if err := resetAlice(); err == nil || !strings.Contains(err.Error(), "old password not correct") {
		t.Fatalf("root without superUsers reset ann with a wrong old password: %v", err)
	}
	conf.superUsers = "root"
	reload("superUsers root", "common.security.superUsers")
	eventually(t, 3*time.Second, "root resets as a super user", resetAlice)

	// The RBAC options: a call is let through (the backend answers it),
	// refused once the key is changed, let through again once it is back.
	rbacKey := func(key string, set func(changed bool), call func() error) {
		t.Helper()
		through := func() error {
			if err := call(); code(err) == codes.PermissionDenied {
				return err
			}
			return nil
		}
		must(t, through())
		set(true)
		reload(key+" changed", key)
		eventually(t, 3*time.Second, key+" changed: refused", func() error { return want(key, call(), codes.PermissionDenied)() })
		set(false)
		reload(key + " back")
		eventually(t, 3*time.Second, key+" back: let through", through)
	}
	// enablePublicPrivilege: ann, with no role, describes a collection only
	// with the public privileges.
	rbacKey("common.security.enablePublicPrivilege", func(changed bool) { conf.publicPrivilege = !changed }, func() error {
		_, err := m.DescribeCollection(withToken(ctx, "ann:ann-Pw-1"), &milvuspb.DescribeCollectionRequest{CollectionName: "nothing"})
		return err
	})
	// rootShouldBindRole: root, bound to no role, drops a collection only
	// while root is all-powerful.
	rbacKey("common.security.rootShouldBindRole", func(changed bool) { conf.rootBindsRole = changed }, func() error {
		_, err := m.DropCollection(withToken(ctx, "root:Milvus"), &milvuspb.DropCollectionRequest{CollectionName: "nothing"})
		return err
	})
	// otherServices: a service other than MilvusService, called by ann,
	// reaches the backend (which does not serve it) only while any
	// authenticated user may call it.
	rbacKey("common.security.otherServices", func(changed bool) {
		conf.otherServices = map[bool]string{false: "authenticated", true: "admin"}[changed]
	}, func() error {
		msg, reply := []byte{}, []byte{}
		err := conn.Invoke(withToken(ctx, "ann:ann-Pw-1"), "/example.Other/Call", &msg, &reply, grpc.ForceCodecV2(rawCodec{}))
		if code(err) != codes.PermissionDenied && code(err) != codes.Unimplemented {
			t.Errorf("other service as ann: %v, want the backend's Unimplemented or a refusal", err)
		}
		return err
	})

	// cache.size: with one entry, root and ann evict each other, and
	// every call hashes; with 10000, none does.
	hashes := func() float64 { return metricValue(t, p, "authproxy_password_hash_verifications_total") }
	alternate := func() float64 {
		must(t, call("root:Milvus"))
		must(t, call("ann:ann-Pw-1"))
		before := hashes()
		must(t, call("root:Milvus"))
		must(t, call("ann:ann-Pw-1"))
		must(t, call("root:Milvus"))
		return hashes() - before
	}
	if n := alternate(); n != 0 {
		t.Fatalf("cache.size 10000: %v hashes for three cached calls", n)
	}
	conf.cacheSize = 1
	reload("cache.size 1", "cache.size")
	if n := alternate(); n < 3 {
		t.Fatalf("cache.size 1: %v hashes for three calls alternating two users, want 3", n)
	}
	conf.cacheSize = 10000
	reload("cache.size 10000")

	// cache.ttl: an entry made after the reload expires after the new TTL.
	twice := func(token string) float64 {
		must(t, call(token))
		before := hashes()
		time.Sleep(1500 * time.Millisecond)
		must(t, call(token))
		return hashes() - before
	}
	if n := twice("cal:cal-Pw-1"); n != 0 {
		t.Fatalf("cache.ttl 10m: %v hashes for a call 1.5s after the first", n)
	}
	conf.cacheTTL = "1s"
	reload("cache.ttl 1s", "cache.ttl")
	if n := twice("dan:dan-Pw-1"); n != 1 {
		t.Fatalf("cache.ttl 1s: %v hashes for a call 1.5s after the first, want 1", n)
	}
	conf.cacheTTL = "10m"
	reload("cache.ttl 10m")

	// auth.identityHeader: the header the backend is told the user in.
	headerAtBackend := func(key string) func() error {
		return func() error {
			fake.Recorder().Reset()
			must(t, call("root:Milvus"))
			md := fake.Recorder().CallsTo("GetVersion")[0].Metadata
			if u := md.Get(key); !slices.Equal(u, []string{"root"}) {
				return fmt.Errorf("backend metadata %v, want %s: root", md, key)
			}
			return nil
		}
	}
	must(t, headerAtBackend("x-authproxy-user")())
	conf.identityHeader = "x-caller"
	reload("identityHeader x-caller", "auth.identityHeader")
	eventually(t, 3*time.Second, "identity header x-caller", headerAtBackend("x-caller"))

	// rateLimits: a limit applies on the next call, the exempt are spared,
	// and a limit removed is gone.
	versionCode := func(token string) int32 {
		r, err := m.GetVersion(withToken(ctx, token), &milvuspb.GetVersionRequest{})
		must(t, err)
		return r.GetStatus().GetCode()
	}
	conf.rateLimits = "  exempt: {users: [cal]}\n  limits:\n    - {name: everyone, user: \"*\", rate: callRate, max: 0.01, burst: 1}\n"
	reload("rateLimits set", "rateLimits")
	if first, second := versionCode("ann:ann-Pw-1"), versionCode("ann:ann-Pw-1"); first != 0 || second != 8 {
		t.Fatalf("ann under a limit of one call: codes %d then %d, want 0 then 8 (RateLimit)", first, second)
	}
	for range 3 {
		if c := versionCode("cal:cal-Pw-1"); c != 0 {
			t.Fatalf("cal, exempt, got code %d", c)
		}
	}
	conf.rateLimits = ""
	reload("rateLimits removed")
	if c := versionCode("ann:ann-Pw-1"); c != 0 {
		t.Fatalf("ann after the limit was removed: code %d", c)
	}

	// shutdown.gracePeriod: seen in the log line of the stop, at the end.
	conf.grace = "3s"
	reload("gracePeriod 3s", "shutdown.gracePeriod")

	// log.level: at warn, the info line of a credential file change is not
	// written (it is written before the reload is counted); back at info,
	// the identities step below sees its info line.
	conf.logLevel = "warn"
	reload("log.level warn", "log.level")

	// credentials.file: another file, with a user of its own.
	other2 := filepath.Join(dir, "other-credentials.yaml")
	harness.Password("elsewhere", "Elsewhere-pw-1")
	must(t, os.WriteFile(other2, credFile(map[string]string{"root": hashOf(t, "Milvus"), "elsewhere": hashOf(t, "Elsewhere-pw-1")}), 0o600))
	must(t, want("elsewhere before", call("elsewhere:Elsewhere-pw-1"), codes.Unauthenticated)())
	conf.credFile = other2
	reload("credentials.file", "credentials.file")
	eventually(t, 3*time.Second, "the other credential file in use", func() error { return call("elsewhere:Elsewhere-pw-1") })
	if strings.Contains(p.Logs(), "credential file changed") {
		t.Error("log.level warn: an info line was written")
	}
	conf.logLevel = "info"
	reload("log.level info")

	// identities: a directory user and an OpenID token are accepted once
	// their section is on; the directory moves from StartTLS (memberOf) to
	// LDAPS (group search); turned off, both are refused again, cached
	// ones included.
	l := harness.StartLDAP(t)
	lena := l.AddUser("lena", "Lena-dir-pw")
	l.AddGroup("ml-admins", lena)
	l.SetAttribute(lena, "departmentNumber", "acme")
	harness.Password("lena", "Lena-dir-pw")
	o := harness.StartOIDC(t)
	o.AddUser("dana", "Dana-idp-pw-1")
	o.SetClaim("dana", "tenant_id", "globex")
	token := login(t, o, "dana", "Dana-idp-pw-1")
	must(t, want("directory user before", call("lena:Lena-dir-pw"), codes.Unauthenticated)())
	must(t, want("token before", call(token), codes.Unauthenticated)())
	section := func(yaml string) string { return strings.TrimPrefix(yaml, "identities:\n") }
	conf.identities = section(ldapConfig(l, true, "")) + section(oidcConfig(o.Issuer, o.ClientID, ""))
	reload("identities on", "identities.ldap", "identities.oidc")
	if !strings.Contains(p.Logs(), "identity providers changed") {
		t.Error("log.level info: the info line of the identities change was not written")
	}
	eventually(t, 5*time.Second, "directory user accepted", func() error { return call("lena:Lena-dir-pw") })
	eventually(t, 5*time.Second, "OpenID token accepted", func() error { return call(token) })
	conf.identities = section(ldapConfig(l, false, "")) + section(oidcConfig(o.Issuer, o.ClientID, ""))
	reload("ldap over LDAPS")
	eventually(t, 5*time.Second, "directory user over LDAPS", func() error { return call("lena:Lena-dir-pw") })
	// identities.ldap.groups: lena's group maps to admin, then to nothing.
	ldaps := conf.identities
	rbacKey("identities.ldap.groups", func(changed bool) {
		conf.identities = ldaps
		if changed {
			conf.identities = strings.Replace(ldaps, "[admin]", "[]", 1)
		}
	}, func() error {
		_, err := m.DropCollection(withToken(ctx, "lena:Lena-dir-pw"), &milvuspb.DropCollectionRequest{CollectionName: "nothing"})
		return err
	})
	// identities.tags: the directory's attribute and the token's claim
	// become the users' tags.
	tenant := func(token, user, want string) func() error {
		return func() error {
			tags, err := ownTags(t, m, token, user)
			if err == nil && tags["tenant"] != want {
				err = fmt.Errorf("%s's tags %v, want tenant=%s", user, tags, want)
			}
			return err
		}
	}
	must(t, tenant("lena:Lena-dir-pw", "lena", "")())
	conf.identities = ldaps + "  tags:\n    ldap:\n      tenant: departmentNumber\n    oidc:\n      tenant: tenant_id\n"
	reload("identities.tags", "identities.tags.ldap", "identities.tags.oidc")
	eventually(t, 5*time.Second, "the directory attribute as a tag", tenant("lena:Lena-dir-pw", "lena", "acme"))
	eventually(t, 5*time.Second, "the token claim as a tag", tenant(token, "dana", "globex"))
	conf.identities = ""
	reload("identities off")
	eventually(t, 3*time.Second, "directory user refused", func() error { return want("lena", call("lena:Lena-dir-pw"), codes.Unauthenticated)() })
	must(t, want("token after", call(token), codes.Unauthenticated)())

	// tls.certFile, tls.keyFile: new handshakes get the other certificate.
	conf.tls = fmt.Sprintf("  certFile: %q\n  keyFile: %q\n", filepath.Join(k.dir, "server.pem2"), filepath.Join(k.dir, "server.key2"))
	reload("other server certificate", "tls.certFile", "tls.keyFile")
	eventually(t, 3*time.Second, "the other certificate served", func() error {
		serial, err := servedSerial(p.Addr, k.pool)
		if err == nil && serial != k2Serial {
			err = fmt.Errorf("serial %s, want %s", serial, k2Serial)
		}
		return err
	})
	handshake := func(cfg *tls.Config) error { return tlsHandshake(p.Addr, cfg) }
	refusedHandshake := func(what string, cfg *tls.Config) func() error {
		return func() error {
			if err := handshake(cfg); err == nil {
				return fmt.Errorf("%s: handshake accepted", what)
			}
			return nil
		}
	}

	// tls.clientCAFile, tls.clientAuth: required certificates, from one CA
	// then from another.
	tlsBase := conf.tls
	must(t, handshake(serverTLS(false)))
	conf.tls = tlsBase + fmt.Sprintf("  clientCAFile: %q\n  clientAuth: require\n", filepath.Join(k.dir, "ca.pem"))
	reload("clientAuth require", "tls.clientAuth", "tls.clientCAFile")
	eventually(t, 3*time.Second, "no client certificate refused", refusedHandshake("without a certificate", serverTLS(false)))
	must(t, handshake(serverTLS(true)))
	strangerTLS := serverTLS(false)
	strangerTLS.Certificates = []tls.Certificate{stranger.clientCertPair}
	must(t, refusedHandshake("a certificate of another CA", strangerTLS)())
	conf.tls = tlsBase + fmt.Sprintf("  clientCAFile: %q\n  clientAuth: require\n", filepath.Join(stranger.dir, "ca.pem"))
	reload("the other client CA")
	eventually(t, 3*time.Second, "the other CA's certificate accepted", func() error { return handshake(strangerTLS) })
	must(t, refusedHandshake("a certificate of the first CA", serverTLS(true))())

	// tls.clientIdentity: a certificate alone acts as the user it maps to
	// (a user of the credential file in force).
	conf.tls = tlsBase + fmt.Sprintf("  clientCAFile: %q\n  clientAuth: optional\n  clientIdentity:\n    source: cn\n    users:\n      svc-cn: elsewhere\n", filepath.Join(k.dir, "ca.pem"))
	reload("clientIdentity cn -> elsewhere", "tls.clientIdentity")
	certConn := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, serverTLS(true)))
	eventually(t, 3*time.Second, "the certificate acts as elsewhere", func() error {
		fake.Recorder().Reset()
		if _, err := certConn.GetVersion(ctx, &milvuspb.GetVersionRequest{}); err != nil {
			return err
		}
		if u := fake.Recorder().CallsTo("GetVersion")[0].Metadata.Get("x-caller"); !slices.Equal(u, []string{"elsewhere"}) {
			return fmt.Errorf("backend told %v", u)
		}
		return nil
	})
	must(t, handshake(serverTLS(false))) // optional: no certificate is let through

	// tls.minVersion: a TLS 1.2 client is refused at 1.3.
	tls12 := serverTLS(false)
	tls12.MaxVersion = tls.VersionTLS12
	must(t, handshake(tls12))
	conf.tls = tlsBase + "  minVersion: \"1.3\"\n"
	reload("minVersion 1.3", "tls.minVersion")
	eventually(t, 3*time.Second, "TLS 1.2 refused", refusedHandshake("TLS 1.2", tls12))
	must(t, handshake(serverTLS(false)))

	// Every live key was changed above (shutdown.gracePeriod is seen at
	// the end).
	for _, key := range config.LiveKeys() {
		seen := false
		for c := range changed {
			seen = seen || covers(c, key)
		}
		if !seen {
			t.Errorf("live key %s is not changed by any step of this test", key)
		}
	}

	// A bad edit of each section is refused, and nothing of it applies:
	// each also turns authentication off, which must not happen.
	good := conf
	bad := []struct {
		section string
		edit    func(c *liveConf)
		says    string
	}{
		{"common.security", func(c *liveConf) { c.otherServices = "nobody" }, "common.security.otherServices"},
		{"credentials", func(c *liveConf) { c.credFile = filepath.Join(dir, "missing.yaml") }, "the file does not exist"},
		{"cache", func(c *liveConf) { c.cacheTTL = "-1s" }, "cache.ttl"},
		{"auth", func(c *liveConf) { c.identityHeader = "X-Caller" }, "auth.identityHeader"},
		{"tls (validation)", func(c *liveConf) { c.tls = tlsBase + "  minVersion: \"1.1\"\n" }, "tls.minVersion"},
		{"tls (files)", func(c *liveConf) { c.tls = strings.ReplaceAll(tlsBase, "server.pem2", "missing.pem") }, "missing.pem"},
		{"identities (validation)", func(c *liveConf) {
			c.identities = "  ldap:\n    url: \"ldap://127.0.0.1:1\"\n    bindDN: \"uid={user}\"\n"
		}, "identities.ldap.url"},
		{"identities (files)", func(c *liveConf) {
			c.identities = section(oidcConfig(o.Issuer, o.ClientID, "")) + fmt.Sprintf("        caFile: %q\n", filepath.Join(dir, "missing-ca.pem"))
		}, "missing-ca.pem"},
		{"log", func(c *liveConf) { c.logLevel = "loud" }, "log.level"},
		{"shutdown", func(c *liveConf) { c.grace = "-1s" }, "shutdown.gracePeriod"},
		{"rateLimits", func(c *liveConf) {
			c.rateLimits = "  limits:\n    - {name: zero, user: ann, rate: callRate, max: 0}\n"
		}, "rateLimits.limits[0] (zero).max: must be a positive number"},
	}
	for _, b := range bad {
		conf = good
		conf.authEnabled = false
		b.edit(&conf)
		failures := metricValue(t, p, `authproxy_reloads_total{file="config",result="failure"}`)
		writeByRename(t, p.Config, conf.render())
		// Counted, then logged; the log comes through a pipe: both are
		// waited for.
		eventually(t, 10*time.Second, b.section+": bad edit refused and logged", func() error {
			if metricValue(t, p, `authproxy_reloads_total{file="config",result="failure"}`) <= failures {
				return fmt.Errorf("no failed reload counted")
			}
			if last := lastLogLine(p.Logs(), "config reload refused"); !strings.Contains(last, b.says) {
				return fmt.Errorf("the refusal %q does not say %q", last, b.says)
			}
			return nil
		})
		if err := noToken(); code(err) != codes.Unauthenticated {
			t.Errorf("%s: a refused reload turned authentication off (%v)", b.section, err)
		}
		must(t, headerAtBackend("x-caller")())
		must(t, call("elsewhere:Elsewhere-pw-1"))
	}
	conf = good
	reload("the good config again")

	// Restart-only keys changed with a live one: the live one applies,
	// each restart-only one is reported and keeps its running value (the
	// port, TLS on, the access log off, the forwarding core).
	newAddr := harness.FreeAddr(t)
	conf.listen = newAddr
	conf.tls = ""
	conf.forwarding = map[string]string{"grpc": "frames", "frames": "grpc"}[conf.forwarding]
	conf.logLevel = "info\n  format: json\n  accessLog: true"
	conf.identityHeader = "x-after-restart-keys"
	reload("restart-only keys with a live one")
	eventually(t, 3*time.Second, "the live key beside them", headerAtBackend("x-after-restart-keys"))
	for _, key := range []string{"listen", "tls", "forwarding", "log.accessLog", "log.format"} {
		if !strings.Contains(p.Logs(), "needs a restart to take effect; the running value is kept\" key="+key+"\n") {
			t.Errorf("restart-only change of %s not reported:\n%s", key, p.Logs())
		}
	}
	if c, err := net.DialTimeout("tcp", newAddr, time.Second); err == nil {
		c.Close()
		t.Errorf("the proxy listens on %s before a restart", newAddr)
	}
	must(t, call("root:Milvus"))
	if last := lastLogLine(p.Logs(), ""); !strings.HasPrefix(last, "time=") {
		t.Errorf("log.format json applied before a restart: %s", last)
	}
	if strings.Contains(p.Logs(), `msg=call `) {
		t.Error("log.accessLog applied before a restart")
	}

	p.Stop()
	if !strings.Contains(p.Logs(), `msg="shutting down" gracePeriod=3s`) {
		t.Errorf("shutdown.gracePeriod 3s not in force at the stop:\n%s", p.Logs())
	}
}

// lastLogLine is the last line of logs that contains substr.
func lastLogLine(logs, substr string) string {
	var last string
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		if strings.Contains(l, substr) {
			last = l
		}
	}
	return last
}

// tlsHandshake dials addr with cfg and reads the server's first HTTP/2
// frame: under TLS 1.3 a refused client certificate shows only on a read.
func tlsHandshake(addr string, cfg *tls.Config) error {
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h2"}
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	// The client preface and an empty SETTINGS frame.
	if _, err := c.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")); err != nil {
		return err
	}
	_, err = c.Read(make([]byte, 1))
	return err
}

// TLS turned on by a reload needs a restart: it is reported, and nothing
// of the section applies (no certificate loaded or exported, the port
// stays plaintext), while a live key of the same edit does.
func TestTLSTurnedOnLiveIsNotHalfApplied(t *testing.T) {
	dir := t.TempDir()
	k := newPKI(t, filepath.Join(dir, "tls"), "svc-cn")
	fake, p := startPair(t, harness.Options{Dir: dir})
	ctx := testCtx(t, 30*time.Second)
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	rewriteConfig(t, p, "shutdown:", "auth:\n  identityHeader: \"x-caller\"\n"+tlsSection(k.dir, "require", "  clientIdentity:\n    source: cn\n")+"shutdown:")
	if !p.WaitLog(`the running value is kept" key=tls`, 5*time.Second) {
		t.Fatalf("tls turned on live: not reported:\n%s", p.Logs())
	}
	eventually(t, 3*time.Second, "the live key of the same edit", func() error {
		fake.Recorder().Reset()
		must(t, getVersion(ctx, m, "root:Milvus"))
		if u := fake.Recorder().CallsTo("GetVersion")[0].Metadata.Get("x-caller"); !slices.Equal(u, []string{"root"}) {
			return fmt.Errorf("backend told %v", u)
		}
		return nil
	})
	if v := metricValue(t, p, "authproxy_tls_certificate_expiry_timestamp_seconds"); v != 0 {
		t.Errorf("a certificate was loaded for TLS that is not on (expiry %v exported)", v)
	}
	if err := getVersion(ctx, m, "root:Milvus"); err != nil {
		t.Errorf("plaintext refused after TLS was turned on live: %v", err)
	}
}
