package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/authproxy/authproxy/certs"
)

// Config is the whole configuration of a running proxy. The YAML keys follow
// milvus.yaml where Milvus has an equivalent (common.security.*).
type Config struct {
	// Listen is where clients connect (gRPC, and REST on the same port).
	Listen string `yaml:"listen"`
	// Forwarding is the forwarding core: frames (HTTP/2 frames relayed,
	// package relay; the default) or grpc (grpc-go on both sides).
	Forwarding  string      `yaml:"forwarding"`
	Backend     Backend     `yaml:"backend"`
	Common      Common      `yaml:"common"`
	Credentials Credentials `yaml:"credentials"`
	Cache       Cache       `yaml:"cache"`
	Auth        Auth        `yaml:"auth"`
	Identities  Identities  `yaml:"identities"`
	GRPC        GRPC        `yaml:"grpc"`
	TLS         *TLS        `yaml:"tls"`
	Admin       Admin       `yaml:"admin"`
	Console     Console     `yaml:"console"`
	Log         Log         `yaml:"log"`
	Shutdown    Shutdown    `yaml:"shutdown"`
	RateLimits  RateLimits  `yaml:"rateLimits"`
}

// Forwarding cores.
const (
	ForwardGRPC   = "grpc"
	ForwardFrames = "frames"
)

// Backend is the unauthenticated service the proxy forwards to.
type Backend struct {
	// Address is the backend's gRPC address, host:port.
	Address string `yaml:"address"`
	// REST is the base URL of the backend's RESTful API; empty means
	// http://<Address>, as Milvus serves REST on its gRPC port.
	REST string `yaml:"rest"`
	// TLS, when set, makes the proxy speak TLS to the backend.
	TLS *BackendTLS `yaml:"tls"`
}

// BackendTLS configures TLS from the proxy to a backend that is itself behind TLS.
type BackendTLS struct {
	CAFile     string `yaml:"caFile"`
	ServerName string `yaml:"serverName"`
	CertFile   string `yaml:"certFile"`
	KeyFile    string `yaml:"keyFile"`
}

// Common mirrors milvus.yaml's common section.
type Common struct {
	Security Security `yaml:"security"`
}

// Security mirrors milvus.yaml's common.security keys.
type Security struct {
	// AuthorizationEnabled turns token checking on; off, the proxy forwards every call.
	AuthorizationEnabled bool `yaml:"authorizationEnabled"`
	// SuperUsers may change a password without giving the old one, nothing more.
	SuperUsers UserList `yaml:"superUsers"`
	// DefaultRootPassword is root's password when the credential file is first created.
	DefaultRootPassword string `yaml:"defaultRootPassword"`
	// DefaultRootPasswordFile, if set, holds that password instead (a
	// mounted Secret), so that it need not sit in the config.
	DefaultRootPasswordFile string `yaml:"defaultRootPasswordFile"`
	// EnablePublicPrivilege gives every user (role public) Milvus's
	// defaults: DescribeCollection, ListAliases and IndexDetail everywhere.
	EnablePublicPrivilege bool `yaml:"enablePublicPrivilege"`
	// RootShouldBindRole makes root an ordinary user who needs roles.
	RootShouldBindRole bool `yaml:"rootShouldBindRole"`
	// OtherServices says who may call gRPC services other than
	// MilvusService: any authenticated user, or admin only.
	OtherServices string `yaml:"otherServices"`
}

// RootPassword is root's first password: defaultRootPasswordFile's
// content (one trailing newline dropped) when that is set, else
// defaultRootPassword.
func (s Security) RootPassword() (string, error) {
	if s.DefaultRootPasswordFile == "" {
		return s.DefaultRootPassword, nil
	}
	b, err := os.ReadFile(s.DefaultRootPasswordFile)
	if err != nil {
		return "", fmt.Errorf("common.security.defaultRootPasswordFile: %w", err)
	}
	p := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if p == "" {
		return "", fmt.Errorf("common.security.defaultRootPasswordFile: %s is empty", s.DefaultRootPasswordFile)
	}
	return p, nil
}

// Who may call services other than MilvusService.
const (
	OtherServicesAuthenticated = "authenticated"
	OtherServicesAdmin         = "admin"
)

// Credentials locates the credential store.
type Credentials struct {
	// Store is file (one replica, the default) or etcd (many replicas).
	Store string `yaml:"store"`
	File  string `yaml:"file"`
	Etcd  Etcd   `yaml:"etcd"`
}

// Credential stores.
const (
	StoreFile = "file"
	StoreEtcd = "etcd"
)

// Etcd locates the shared credential store. The etcd password never sits
// in the config: it is read from a file or an environment variable.
type Etcd struct {
	Endpoints      []string      `yaml:"endpoints"`
	Prefix         string        `yaml:"prefix"`
	DialTimeout    time.Duration `yaml:"dialTimeout"`
	RequestTimeout time.Duration `yaml:"requestTimeout"`
	TLS            *EtcdTLS      `yaml:"tls"`
	Username       string        `yaml:"username"`
	PasswordFile   string        `yaml:"passwordFile"`
	PasswordEnv    string        `yaml:"passwordEnv"`
}

// EtcdTLS is the TLS to etcd: its CA, and a client certificate if etcd asks.
type EtcdTLS struct {
	CAFile   string `yaml:"caFile"`
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
}

// Cache sizes the cache of successful verifications.
type Cache struct {
	Size int           `yaml:"size"`
	TTL  time.Duration `yaml:"ttl"`
}

// Auth holds the knobs of authentication beyond Milvus's own.
type Auth struct {
	// IdentityHeader is the metadata key carrying the authenticated user to
	// the backend; "" disables it. Client-sent copies are always removed.
	IdentityHeader string `yaml:"identityHeader"`
	// MaxConcurrentVerifications bounds password hashing running at once, so
	// a flood of wrong passwords cannot starve cached callers. The default,
	// half the CPUs (at least one), leaves the other half to them.
	MaxConcurrentVerifications int `yaml:"maxConcurrentVerifications"`
	// BruteForce configures the lockout after repeated failures.
	BruteForce BruteForce `yaml:"bruteForce"`
}

// BruteForce configures the lockout after repeated authentication failures.
type BruteForce struct {
	Enabled bool `yaml:"enabled"`
	// Threshold is the number of failures (per user name and per client
	// address) after which attempts are refused without hashing.
	Threshold int `yaml:"threshold"`
	// Backoff is the first lockout; each further failure doubles it up to MaxBackoff.
	Backoff    time.Duration `yaml:"backoff"`
	MaxBackoff time.Duration `yaml:"maxBackoff"`
	// Forgive is how long without failures before a counter is forgotten.
	Forgive time.Duration `yaml:"forgive"`
	// Tracked bounds how many user names and addresses are counted (LRU).
	Tracked int `yaml:"tracked"`
}

// Identities are the company's identities accepted beside local users: an
// LDAP / Active Directory bind for user:password tokens, and OpenID Connect
// JWTs. Their groups map to roles of the store.
type Identities struct {
	LDAP *LDAP `yaml:"ldap"`
	OIDC *OIDC `yaml:"oidc"`
	// Tags: see rowpolicy.go.
	Tags IdentityTags `yaml:"tags"`
}

// LDAP checks a user:password token by binding as the user. It takes the
// names that are not local users, and every name that ends with Realm.
type LDAP struct {
	// URL is ldaps://host:636, or ldap://host:389 with StartTLS.
	URL      string `yaml:"url"`
	StartTLS bool   `yaml:"startTLS"`
	// CAFile verifies the directory's certificate; empty uses the system's.
	CAFile     string `yaml:"caFile"`
	ServerName string `yaml:"serverName"`
	// Realm, when set (e.g. "@corp.example.org"), sends every name with
	// this suffix to the directory, even a local one.
	Realm string `yaml:"realm"`
	// BindDN is the name to bind as, with {user} replaced (escaped): a DN
	// such as "uid={user},ou=people,dc=example,dc=org", or for Active
	// Directory "{user}@corp.example.org".
	BindDN string `yaml:"bindDN"`
	// UserSearch finds the user's entry with the user's own bind, for its
	// DN (when BindDN is not one) and its GroupAttribute.
	UserSearch *LDAPSearch `yaml:"userSearch"`
	// GroupAttribute is read from the user's entry (AD's memberOf).
	GroupAttribute string `yaml:"groupAttribute"`
	// GroupSearch finds the groups whose filter matches; {dn} is the
	// user's DN, {user} the name.
	GroupSearch *LDAPSearch `yaml:"groupSearch"`
	// Groups maps group DNs (compared as DNs, case-insensitively) to roles.
	Groups map[string][]string `yaml:"groups"`
	// CacheTTL is how long a successful bind is reused; failures are never cached.
	CacheTTL time.Duration `yaml:"cacheTTL"`
	// Timeout bounds each dial and operation.
	Timeout time.Duration `yaml:"timeout"`
	// MaxConcurrentBinds bounds binds in flight, as hashing is bounded.
	MaxConcurrentBinds int `yaml:"maxConcurrentBinds"`
}

// LDAPSearch is a subtree search.
type LDAPSearch struct {
	BaseDN string `yaml:"baseDN"`
	Filter string `yaml:"filter"`
}

// OIDC accepts JWTs signed by the configured issuers.
type OIDC struct {
	Issuers []OIDCIssuer `yaml:"issuers"`
}

// OIDCIssuer is one OpenID provider.
type OIDCIssuer struct {
	// Issuer is the iss claim and the base of discovery
	// (<issuer>/.well-known/openid-configuration).
	Issuer string `yaml:"issuer"`
	// Audiences: the token's aud must hold one of them.
	Audiences []string `yaml:"audiences"`
	// CAFile verifies the provider's HTTPS certificate; empty uses the system's.
	CAFile string `yaml:"caFile"`
	// UsernameClaim names the user: preferred_username, email or sub.
	UsernameClaim string `yaml:"usernameClaim"`
	// UsernamePrefix is put before the claim's value, to keep the
	// provider's names apart from local ones.
	UsernamePrefix string `yaml:"usernamePrefix"`
	// GroupsClaim is a claim holding a list of group names.
	GroupsClaim string `yaml:"groupsClaim"`
	// Groups maps group names to roles.
	Groups map[string][]string `yaml:"groups"`
	// Algorithms allowed for signatures; asymmetric only.
	Algorithms []string `yaml:"algorithms"`
	// ClockSkew is allowed on exp and nbf.
	ClockSkew time.Duration `yaml:"clockSkew"`
	// JWKSRefreshInterval is the least time between two refreshes of the
	// keys for a token whose key ID is unknown.
	JWKSRefreshInterval time.Duration `yaml:"jwksRefreshInterval"`
}

// GRPC holds message limits; the defaults are Milvus's own code defaults.
type GRPC struct {
	MaxRecvMsgSize int `yaml:"maxRecvMsgSize"`
	MaxSendMsgSize int `yaml:"maxSendMsgSize"`
}

// TLS configures TLS termination for clients. Absent, the proxy listens in plaintext.
type TLS struct {
	CertFile     string `yaml:"certFile"`
	KeyFile      string `yaml:"keyFile"`
	ClientCAFile string `yaml:"clientCAFile"`
	// ClientAuth is none, optional or require; empty means require when
	// ClientCAFile is set, none otherwise.
	ClientAuth string `yaml:"clientAuth"`
	// MinVersion is "1.2" (default) or "1.3".
	MinVersion string `yaml:"minVersion"`
	// ClientIdentity maps a verified client certificate to a user.
	ClientIdentity *ClientIdentity `yaml:"clientIdentity"`
}

// ClientIdentity maps a verified client certificate to an authproxy user, so
// that an mTLS client without a token acts as that user.
type ClientIdentity struct {
	// Source is the certificate field naming the user: cn, dns or uri.
	Source string `yaml:"source"`
	// Users maps field values (e.g. SPIFFE IDs) to user names; empty means
	// the field value is the user name itself.
	Users map[string]string `yaml:"users"`
}

// Admin configures the health and metrics listener.
type Admin struct {
	// Listen is host:port for /healthz, /readyz and /metrics; "" disables it.
	Listen string `yaml:"listen"`
}

// Log configures log/slog output.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
	// AccessLog writes one line per call (method, user, code, duration, peer).
	AccessLog bool `yaml:"accessLog"`
}

// Shutdown configures graceful shutdown on SIGTERM and SIGINT.
type Shutdown struct {
	// GracePeriod is how long in-flight calls may run after the signal.
	GracePeriod time.Duration `yaml:"gracePeriod"`
}

// UserList is milvus.yaml's superUsers: a comma-separated string ("root, foo")
// or a YAML list.
type UserList []string

// UnmarshalYAML accepts both the milvus.yaml string form and a YAML list.
func (u *UserList) UnmarshalYAML(n *yaml.Node) error {
	var names []string
	switch n.Kind {
	case yaml.ScalarNode:
		for _, part := range strings.Split(n.Value, ",") {
			if s := strings.TrimSpace(part); s != "" {
				names = append(names, s)
			}
		}
	case yaml.SequenceNode:
		if err := n.Decode(&names); err != nil {
			return err
		}
	default:
		return fmt.Errorf("line %d: superUsers must be a comma-separated string or a list", n.Line)
	}
	*u = names
	return nil
}

// Contains reports whether name is in the list.
func (u UserList) Contains(name string) bool {
	for _, n := range u {
		if n == name {
			return true
		}
	}
	return false
}

// Default returns the configuration used when no file is given: enough for
// `authproxy serve --backend HOST:PORT` alone.
func Default() *Config {
	return &Config{
		Listen:     "0.0.0.0:19530",
		Forwarding: ForwardFrames,
		Backend:    Backend{Address: "127.0.0.1:19540"},
		Common: Common{Security: Security{
			AuthorizationEnabled:  true,
			DefaultRootPassword:   "Milvus",
			EnablePublicPrivilege: true,
			OtherServices:         OtherServicesAuthenticated,
		}},
		Credentials: Credentials{Store: StoreFile, File: "./credentials.yaml", Etcd: Etcd{
			Prefix: "/authproxy/", DialTimeout: 5 * time.Second, RequestTimeout: 5 * time.Second,
		}},
		Cache: Cache{Size: 10000, TTL: 10 * time.Minute},
		Auth: Auth{
			IdentityHeader:             "x-authproxy-user",
			MaxConcurrentVerifications: max(1, runtime.GOMAXPROCS(0)/2),
			BruteForce: BruteForce{
				Enabled:    true,
				Threshold:  10,
				Backoff:    time.Second,
				MaxBackoff: 5 * time.Minute,
				Forgive:    15 * time.Minute,
				Tracked:    10000,
			},
		},
		GRPC:     GRPC{MaxRecvMsgSize: 256 << 20, MaxSendMsgSize: 512 << 20},
		Admin:    Admin{Listen: "127.0.0.1:9091"},
		Console:  defaultConsole(),
		Log:      Log{Level: "info", Format: "text"},
		Shutdown: Shutdown{GracePeriod: 30 * time.Second},
	}
}

// Load reads and validates the YAML file at path over the defaults. Unknown
// keys and bad values are errors naming the file, the line and the key.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Read is the config a proxy runs with, at start and at each reload: the
// file at path over the defaults (the defaults alone when path is ""),
// overrides (the command line's flags) applied over it, then validated.
func Read(path string, overrides func(*Config)) (*Config, error) {
	cfg := Default()
	if path != "" {
		var err error
		if cfg, err = Load(path); err != nil {
			return nil, err
		}
	}
	if overrides != nil {
		overrides(cfg)
	}
	if err := cfg.Validate(); err != nil {
		if path != "" {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
		return nil, err
	}
	return cfg, nil
}

// Parse decodes YAML over the defaults without validating it: callers apply
// command-line overrides first, then call Validate.
func Parse(data []byte) (*Config, error) {
	cfg := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, cleanYAMLError(err)
	}
	cfg.Identities.setDefaults()
	// yaml.v3 reads one document at a time: a second one would otherwise be
	// ignored without a word, whatever it says.
	// Empty documents (a trailing "---") say nothing and are let through.
	for {
		var extra yaml.Node
		err := dec.Decode(&extra)
		if errors.Is(err, io.EOF) {
			return cfg, nil
		}
		if err != nil {
			return nil, cleanYAMLError(err)
		}
		if !isEmptyDocument(&extra) {
			return nil, fmt.Errorf("line %d: a second YAML document is not allowed; keep the whole configuration in one document", extra.Line)
		}
	}
}

func isEmptyDocument(doc *yaml.Node) bool {
	for _, n := range doc.Content {
		if n.Kind != yaml.ScalarNode || n.Tag != "!!null" || n.Value != "" {
			return false
		}
	}
	return true
}

// reservedMetadataKeys mean something to gRPC, HTTP or Milvus, or are
// removed by the proxy before forwarding (edge.OwnedKeys, which a test
// there checks against this list): none may carry the asserted identity.
var reservedMetadataKeys = map[string]bool{
	"authorization": true, "proxy-authorization": true, "sourceid": true,
	"dbname": true, "identifier": true, "content-type": true, "user-agent": true,
	"host": true, "te": true, "connection": true, "keep-alive": true,
	"proxy-connection": true, "transfer-encoding": true, "upgrade": true,
	"x-authproxy-peer": true, "x-authproxy-identity-bin": true,
}

// IsReservedMetadataKey reports whether key may not be the identity header.
func IsReservedMetadataKey(key string) bool {
	return reservedMetadataKeys[key] || strings.HasPrefix(key, "grpc-")
}

// cleanYAMLError turns yaml.v3's "field x not found in type config.Backend"
// into words about the file, not about Go types.
func cleanYAMLError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, m := range te.Errors {
		if i := strings.Index(m, ": field "); i >= 0 && strings.Contains(m, " not found in type ") {
			key := strings.TrimPrefix(m[i:], ": field ")
			key = key[:strings.Index(key, " not found in type ")]
			m = fmt.Sprintf("%s: unknown key %q", m[:i], key)
		}
		msgs = append(msgs, m)
	}
	return errors.New(strings.Join(msgs, "; "))
}

// Validate checks every value and says which key is wrong and why.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	checkAddr := func(key, addr string, allowEmpty bool) {
		if addr == "" {
			if !allowEmpty {
				bad(key, "must be set (host:port)")
			}
			return
		}
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
			bad(key, "%q is not host:port", addr)
		}
	}
	checkAddr("listen", c.Listen, false)
	if c.Forwarding != ForwardGRPC && c.Forwarding != ForwardFrames {
		bad("forwarding", "%q is not one of grpc, frames", c.Forwarding)
	}
	checkAddr("backend.address", c.Backend.Address, false)
	checkAddr("admin.listen", c.Admin.Listen, true)
	if c.Backend.REST != "" && !strings.HasPrefix(c.Backend.REST, "http://") && !strings.HasPrefix(c.Backend.REST, "https://") {
		bad("backend.rest", "%q must start with http:// or https://", c.Backend.REST)
	}
	if c.Credentials.File == "" && c.Common.Security.AuthorizationEnabled {
		bad("credentials.file", "must be set when common.security.authorizationEnabled is true")
	}
	if c.Cache.Size < 1 {
		bad("cache.size", "must be at least 1, got %d", c.Cache.Size)
	}
	if c.Cache.TTL <= 0 {
		bad("cache.ttl", "must be a positive duration such as 10m, got %s", c.Cache.TTL)
	}
	c.Credentials.validate(bad)
	if o := c.Common.Security.OtherServices; o != OtherServicesAuthenticated && o != OtherServicesAdmin {
		bad("common.security.otherServices", "must be %s or %s, got %q", OtherServicesAuthenticated, OtherServicesAdmin, o)
	}
	if c.Auth.MaxConcurrentVerifications < 1 {
		bad("auth.maxConcurrentVerifications", "must be at least 1, got %d", c.Auth.MaxConcurrentVerifications)
	}
	if h := c.Auth.IdentityHeader; h != "" && (h != strings.ToLower(h) || strings.ContainsAny(h, " :")) {
		bad("auth.identityHeader", "%q must be a lower-case metadata key without spaces or colons", h)
	} else if IsReservedMetadataKey(h) {
		bad("auth.identityHeader", "%q is reserved (gRPC, HTTP or Milvus give it a meaning, or the proxy removes it); choose another name such as x-authproxy-user", h)
	}
	if bf := c.Auth.BruteForce; bf.Enabled {
		if bf.Threshold < 1 {
			bad("auth.bruteForce.threshold", "must be at least 1, got %d", bf.Threshold)
		}
		if bf.Backoff <= 0 || bf.MaxBackoff < bf.Backoff {
			bad("auth.bruteForce", "need 0 < backoff <= maxBackoff, got backoff %s, maxBackoff %s", bf.Backoff, bf.MaxBackoff)
		}
		if bf.Forgive <= 0 {
			bad("auth.bruteForce.forgive", "must be a positive duration, got %s", bf.Forgive)
		}
		if bf.Tracked < 1 {
			bad("auth.bruteForce.tracked", "must be at least 1, got %d", bf.Tracked)
		}
	}
	c.Identities.validate(bad)
	c.Identities.validateTags(bad)
	c.RateLimits.validate(bad)
	if c.GRPC.MaxRecvMsgSize < 4<<20 {
		bad("grpc.maxRecvMsgSize", "must be at least 4194304 bytes, got %d", c.GRPC.MaxRecvMsgSize)
	}
	if c.GRPC.MaxSendMsgSize < 4<<20 {
		bad("grpc.maxSendMsgSize", "must be at least 4194304 bytes, got %d", c.GRPC.MaxSendMsgSize)
	}
	if c.TLS != nil {
		c.TLS.validate(bad)
	}
	c.Console.validate(c.TLS, c.Identities, bad)
	if b := c.Backend.TLS; b != nil && (b.CertFile == "") != (b.KeyFile == "") {
		bad("backend.tls", "certFile and keyFile go together")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q is not one of text, json", c.Log.Format)
	}
	if c.Shutdown.GracePeriod < 0 {
		bad("shutdown.gracePeriod", "must not be negative, got %s", c.Shutdown.GracePeriod)
	}
	return errors.Join(errs...)
}

func (t *TLS) validate(bad func(key, format string, args ...any)) {
	if t.CertFile == "" || t.KeyFile == "" {
		bad("tls", "certFile and keyFile are both required")
	}
	// The rules certs applies when it loads them, so a config that passes
	// here never fails there.
	if _, err := certs.ParseClientAuth(t.ClientAuth, t.ClientCAFile); err != nil {
		bad("tls.clientAuth", "%s", err)
	}
	if _, err := certs.ParseMinVersion(t.MinVersion); err != nil {
		bad("tls.minVersion", "%s", err)
	}
	if id := t.ClientIdentity; id != nil {
		switch id.Source {
		case "cn", "dns", "uri":
		default:
			bad("tls.clientIdentity.source", "%q is not one of cn, dns, uri", id.Source)
		}
		if t.ClientCAFile == "" {
			bad("tls.clientIdentity", "needs tls.clientCAFile to verify client certificates")
		}
	}
}

func (c *Credentials) validate(bad func(key, format string, args ...any)) {
	switch c.Store {
	case StoreFile:
		return
	case StoreEtcd:
	default:
		bad("credentials.store", "%q is not one of file, etcd", c.Store)
		return
	}
	e := c.Etcd
	if len(e.Endpoints) == 0 {
		bad("credentials.etcd.endpoints", "at least one endpoint (host:port or URL) is needed with store etcd")
	}
	for _, ep := range e.Endpoints {
		hostport := ep
		if _, rest, ok := strings.Cut(ep, "://"); ok {
			hostport = rest
		}
		if _, _, err := net.SplitHostPort(hostport); err != nil {
			bad("credentials.etcd.endpoints", "%q: want host:port or http(s)://host:port", ep)
		}
	}
	if !strings.HasPrefix(e.Prefix, "/") || !strings.HasSuffix(e.Prefix, "/") || strings.HasPrefix(strings.TrimPrefix(e.Prefix, "/"), "by-dev") {
		bad("credentials.etcd.prefix", "%q: want a path such as /authproxy/, never inside Milvus's by-dev/", e.Prefix)
	}
	if e.DialTimeout <= 0 || e.RequestTimeout <= 0 {
		bad("credentials.etcd", "dialTimeout and requestTimeout must be positive durations")
	}
	if e.Username != "" && e.PasswordFile == "" && e.PasswordEnv == "" {
		bad("credentials.etcd.username", "needs passwordFile or passwordEnv (the password is never written in the config)")
	}
	if t := e.TLS; t != nil && (t.CertFile == "") != (t.KeyFile == "") {
		bad("credentials.etcd.tls", "certFile and keyFile go together")
	}
}

// Defaults of the identity sections, applied when a section is present
// and the key is absent (or zero).
const (
	DefaultLDAPCacheTTL        = 5 * time.Minute
	DefaultLDAPTimeout         = 5 * time.Second
	DefaultLDAPConcurrentBinds = 8
	DefaultOIDCClockSkew       = 30 * time.Second
	DefaultJWKSRefresh         = 10 * time.Second
)

// DefaultOIDCAlgorithms are the asymmetric algorithms OpenID providers use.
var DefaultOIDCAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

func (c *Identities) setDefaults() {
	if l := c.LDAP; l != nil {
		if l.CacheTTL == 0 {
			l.CacheTTL = DefaultLDAPCacheTTL
		}
		if l.Timeout == 0 {
			l.Timeout = DefaultLDAPTimeout
		}
		if l.MaxConcurrentBinds == 0 {
			l.MaxConcurrentBinds = DefaultLDAPConcurrentBinds
		}
	}
	if o := c.OIDC; o != nil {
		for i := range o.Issuers {
			is := &o.Issuers[i]
			if is.UsernameClaim == "" {
				is.UsernameClaim = "preferred_username"
			}
			if len(is.Algorithms) == 0 {
				is.Algorithms = DefaultOIDCAlgorithms
			}
			if is.ClockSkew == 0 {
				is.ClockSkew = DefaultOIDCClockSkew
			}
			if is.JWKSRefreshInterval == 0 {
				is.JWKSRefreshInterval = DefaultJWKSRefresh
			}
		}
	}
}

func (c *Identities) validate(bad func(key, format string, args ...any)) {
	if l := c.LDAP; l != nil {
		switch {
		case strings.HasPrefix(l.URL, "ldaps://"):
			if l.StartTLS {
				bad("identities.ldap.startTLS", "ldaps:// is TLS already; use ldap:// with startTLS")
			}
		case strings.HasPrefix(l.URL, "ldap://"):
			if !l.StartTLS {
				bad("identities.ldap.url", "%q would send passwords in clear: use ldaps://, or startTLS: true", l.URL)
			}
		default:
			bad("identities.ldap.url", "%q: want ldaps://host:port or ldap://host:port with startTLS", l.URL)
		}
		if !strings.Contains(l.BindDN, "{user}") {
			bad("identities.ldap.bindDN", "%q must contain {user}", l.BindDN)
		}
		if l.UserSearch != nil && (l.UserSearch.BaseDN == "" || !strings.Contains(l.UserSearch.Filter, "{user}")) {
			bad("identities.ldap.userSearch", "needs a baseDN and a filter with {user}")
		}
		if l.GroupAttribute != "" && l.UserSearch == nil {
			bad("identities.ldap.groupAttribute", "needs userSearch, to read the user's entry")
		}
		if l.GroupSearch != nil && (l.GroupSearch.BaseDN == "" || l.GroupSearch.Filter == "") {
			bad("identities.ldap.groupSearch", "needs a baseDN and a filter")
		}
		if l.GroupSearch != nil && strings.Contains(l.GroupSearch.Filter, "{dn}") && l.UserSearch == nil && !strings.Contains(l.BindDN, "=") {
			bad("identities.ldap.groupSearch", "{dn} needs a bindDN that is a DN, or userSearch")
		}
		if l.CacheTTL < 0 || l.Timeout < 0 || l.MaxConcurrentBinds < 0 {
			bad("identities.ldap", "cacheTTL, timeout and maxConcurrentBinds must not be negative")
		}
	}
	if o := c.OIDC; o != nil {
		if len(o.Issuers) == 0 {
			bad("identities.oidc.issuers", "at least one issuer is needed")
		}
		for i, is := range o.Issuers {
			key := fmt.Sprintf("identities.oidc.issuers[%d]", i)
			if !strings.HasPrefix(is.Issuer, "https://") && !strings.HasPrefix(is.Issuer, "http://127.") && !strings.HasPrefix(is.Issuer, "http://localhost") {
				bad(key+".issuer", "%q: want an https:// URL (http:// only on loopback)", is.Issuer)
			}
			if len(is.Audiences) == 0 {
				bad(key+".audiences", "at least one audience (the client ID the tokens are issued for) is needed")
			}
			switch is.UsernameClaim {
			case "preferred_username", "email", "sub":
			default:
				bad(key+".usernameClaim", "%q is not one of preferred_username, email, sub", is.UsernameClaim)
			}
			for _, alg := range is.Algorithms {
				if !slices.Contains(DefaultOIDCAlgorithms, alg) {
					bad(key+".algorithms", "%q is not allowed: only asymmetric algorithms (%s); never none or HMAC", alg, strings.Join(DefaultOIDCAlgorithms, ", "))
				}
			}
			if len(is.Groups) > 0 && is.GroupsClaim == "" {
				bad(key+".groupsClaim", "needed to map groups to roles")
			}
			if is.ClockSkew < 0 || is.ClockSkew > 5*time.Minute {
				bad(key+".clockSkew", "must be between 0 and 5m, got %s", is.ClockSkew)
			}
			if is.JWKSRefreshInterval < 0 {
				bad(key+".jwksRefreshInterval", "must not be negative")
			}
		}
	}
}
