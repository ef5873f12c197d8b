package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/authproxy/authproxy/config"
)

// ErrProviderUnavailable: the OpenID provider's discovery document or keys
// could not be fetched yet, so no token of it can be checked.
var ErrProviderUnavailable = errors.New("OpenID provider unavailable")

// errTokenExpired and errTokenInvalid are refusals of a token.
var (
	errTokenExpired = errors.New("token expired")
	errTokenInvalid = errors.New("token invalid")
)

// rediscoverEvery bounds how often an unreachable provider is asked again.
const rediscoverEvery = 5 * time.Second

// OpenID verifies JWTs of the configured issuers: discovery, a JWKS
// cached and refreshed (rate limited) when a key ID is unknown, an
// allow-list of asymmetric algorithms, iss, aud, exp and nbf.
type OpenID struct {
	issuers []*issuer
	logger  *slog.Logger
	ctx     context.Context
	stop    context.CancelFunc
	tags    map[string]string // tag key → claim
}

type issuer struct {
	cfg    config.OIDCIssuer
	client *http.Client
	parser *jwt.Parser

	mu      sync.Mutex
	keys    keyfunc.Keyfunc // nil until discovery has worked
	nextTry time.Time

	// refreshes lets a token with an unknown key ID fetch the keys again
	// at most once per jwksRefreshInterval (see keyFor).
	refreshes *rate.Limiter
}

// ExternalIdentity is who a token or a bind proved: a user and the roles
// mapped from its groups, valid until Expires.
type ExternalIdentity struct {
	User    string
	Roles   []string
	Tags    map[string]string // row-security tags from the directory or the token
	Expires time.Time
}

// NewOpenID prepares the issuers; client (one per issuer, for its CA) is
// used for discovery and keys. Discovery runs at the first token, and
// again at most every few seconds while it fails.
// tags maps tag keys to string claims (identities.tags.oidc).
func NewOpenID(cfgs []config.OIDCIssuer, tags map[string]string, clients []*http.Client, logger *slog.Logger) *OpenID {
	ctx, stop := context.WithCancel(context.Background())
	o := &OpenID{logger: logger, ctx: ctx, stop: stop, tags: tags}
	for i, c := range cfgs {
		o.issuers = append(o.issuers, &issuer{
			cfg:    c,
			client: clients[i],
			parser: jwt.NewParser(
				jwt.WithValidMethods(c.Algorithms),
				jwt.WithIssuer(c.Issuer),
				jwt.WithAudience(c.Audiences...),
				jwt.WithLeeway(c.ClockSkew),
				jwt.WithExpirationRequired(),
			),
			refreshes: rate.NewLimiter(rate.Every(c.JWKSRefreshInterval), 1),
		})
	}
	return o
}

// Close stops the key refreshes.
func (o *OpenID) Close() { o.stop() }

// LooksLikeJWT reports whether a token has the shape of a compact JWS
// (three base64url parts, the first a JSON header): such a token is never
// taken for an API key.
func LooksLikeJWT(token string) bool {
	if strings.Count(token, ".") != 2 || !strings.HasPrefix(token, "eyJ") {
		return false
	}
	for _, c := range token {
		if !(c == '.' || c == '-' || c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// Verify checks a JWT and returns who it names. The error is
// errTokenInvalid or errTokenExpired (wrapped) for a refused token, and
// ErrProviderUnavailable when its issuer cannot be asked for keys.
func (o *OpenID) Verify(ctx context.Context, token string) (ExternalIdentity, error) {
	// The issuer is read before the signature is checked, only to pick
	// whose keys check it; the parser then requires the same iss.
	var unverified jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &unverified); err != nil {
		return ExternalIdentity{}, fmt.Errorf("%w: %v", errTokenInvalid, err)
	}
	for _, is := range o.issuers {
		if is.cfg.Issuer == unverified.Issuer {
			return is.verify(ctx, o, token)
		}
	}
	return ExternalIdentity{}, fmt.Errorf("%w: issuer %q is not configured", errTokenInvalid, unverified.Issuer)
}

func (is *issuer) verify(ctx context.Context, o *OpenID, token string) (ExternalIdentity, error) {
	keys, err := is.keySet(o)
	if err != nil {
		return ExternalIdentity{}, err
	}
	claims := jwt.MapClaims{}
	if _, err := is.parser.ParseWithClaims(token, claims, is.keyFor(ctx, keys)); err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return ExternalIdentity{}, fmt.Errorf("%w: %v", errTokenExpired, err)
		}
		return ExternalIdentity{}, fmt.Errorf("%w: %v", errTokenInvalid, err)
	}
	user, _ := claims[is.cfg.UsernameClaim].(string)
	if user == "" {
		return ExternalIdentity{}, fmt.Errorf("%w: no %s claim", errTokenInvalid, is.cfg.UsernameClaim)
	}
	if is.cfg.UsernameClaim == "email" {
		// Only an address the provider says it verified names a user: the
		// JSON boolean true, not "true" or "false" as strings, not 1, and
		// not a missing claim.
		if verified, _ := claims["email_verified"].(bool); !verified {
			return ExternalIdentity{}, fmt.Errorf("%w: email_verified is %s, not the boolean true", errTokenInvalid, describeClaim(claims["email_verified"]))
		}
	}
	exp, _ := claims.GetExpirationTime() // required by the parser
	var roles []string
	for _, g := range stringsClaim(claims[is.cfg.GroupsClaim]) {
		roles = appendNew(roles, is.cfg.Groups[g]...)
	}
	tags, err := tagsOf(claims, o.tags)
	if err != nil {
		return ExternalIdentity{}, err
	}
	return ExternalIdentity{User: is.cfg.UsernamePrefix + user, Roles: roles, Tags: tags, Expires: exp.Time}, nil
}

// tagsOf reads the tag claims: an absent claim leaves its tag absent; a
// claim that is not a string (a list, a number) refuses the token, as the
// proxy never picks one of a user's tenants nor turns a number into text.
func tagsOf(claims jwt.MapClaims, mapping map[string]string) (map[string]string, error) {
	if len(mapping) == 0 {
		return nil, nil
	}
	tags := map[string]string{}
	for key, claim := range mapping {
		switch v := claims[claim].(type) {
		case nil:
		case string:
			tags[key] = v
		default:
			return nil, fmt.Errorf("%w: claim %s for tag %s is %s, not a string", errTokenInvalid, claim, key, describeClaim(v))
		}
	}
	return tags, nil
}

// describeClaim names a claim's value for a log line: its JSON type, and
// the value itself when it is short (never the token).
func describeClaim(v any) string {
	switch v := v.(type) {
	case nil:
		return "absent"
	case bool:
		return strconv.FormatBool(v)
	case string:
		if len(v) > 16 {
			v = v[:16] + "..."
		}
		return fmt.Sprintf("the string %q", v)
	default:
		return fmt.Sprintf("a %T", v)
	}
}

// stringsClaim reads a claim that is a list of strings, or one string.
func stringsClaim(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, s := range v {
			if s, ok := s.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// jwksTimeout bounds a fetch of an issuer's keys.
const jwksTimeout = 10 * time.Second

// keyFor is keys' jwt.Keyfunc, gated: a token whose key ID is not among
// the cached keys refetches them only if the issuer's refresh limit allows
// it now; otherwise it is refused at once, so a flood of made-up key IDs
// costs the provider nothing and no caller waits for a turn.
func (is *issuer) keyFor(ctx context.Context, keys keyfunc.Keyfunc) jwt.Keyfunc {
	verify := keys.KeyfuncCtx(ctx)
	return func(token *jwt.Token) (any, error) {
		kid, ok := token.Header["kid"].(string)
		if ok && !hasKey(ctx, keys, kid) && !is.refreshes.Allow() {
			return nil, fmt.Errorf("unknown key ID %q; the keys were fetched less than %v ago", kid, is.cfg.JWKSRefreshInterval)
		}
		return verify(token)
	}
}

// hasKey reports whether the cached keys hold one with ID kid (without
// fetching them).
func hasKey(ctx context.Context, keys keyfunc.Keyfunc, kid string) bool {
	all, err := keys.Storage().KeyReadAll(ctx)
	if err != nil {
		return false
	}
	for _, k := range all {
		if k.Marshal().KID == kid {
			return true
		}
	}
	return false
}

// keySet returns the issuer's keys, running discovery first if it has
// not worked yet (at most once per rediscoverEvery).
func (is *issuer) keySet(o *OpenID) (keyfunc.Keyfunc, error) {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.keys != nil {
		return is.keys, nil
	}
	if time.Now().Before(is.nextTry) {
		return nil, fmt.Errorf("%w: %s", ErrProviderUnavailable, is.cfg.Issuer)
	}
	keys, err := is.discover(o)
	if err != nil {
		is.nextTry = time.Now().Add(rediscoverEvery)
		o.logger.Warn("OpenID provider unavailable", "issuer", is.cfg.Issuer, "error", err)
		return nil, fmt.Errorf("%w: %s", ErrProviderUnavailable, is.cfg.Issuer)
	}
	is.keys = keys
	return keys, nil
}

func (is *issuer) discover(o *OpenID) (keyfunc.Keyfunc, error) {
	ctx, cancel := context.WithTimeout(o.ctx, 10*time.Second)
	defer cancel()
	url := strings.TrimSuffix(is.cfg.Issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := is.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 1<<20)).Decode(&doc); err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	// OpenID Connect Discovery 1.0, 4.3: the issuer must be the one asked.
	if doc.Issuer != is.cfg.Issuer {
		return nil, fmt.Errorf("%s names issuer %q, want %q", url, doc.Issuer, is.cfg.Issuer)
	}
	if doc.JWKSURI == "" {
		return nil, fmt.Errorf("%s has no jwks_uri", url)
	}
	fail := false
	return keyfunc.NewDefaultOverrideCtx(o.ctx, []string{doc.JWKSURI}, keyfunc.Override{
		Client:                    is.client,
		HTTPTimeout:               jwksTimeout,
		NoErrorReturnFirstHTTPReq: &fail,
		// keyFor decides whether an unknown key ID may refetch the keys;
		// keyfunc refetches whenever it is asked to. Its wait for the
		// limiter also bounds the refetch itself (jwkset v0.11.4,
		// http.go: the refresh runs on the wait's context), so that wait
		// is the fetch's time limit, not a rate limit.
		RefreshUnknownKID: rate.NewLimiter(rate.Inf, 1),
		RateLimitWaitMax:  jwksTimeout,
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(_ context.Context, err error) {
				o.logger.Warn("OpenID provider keys not refreshed", "issuer", is.cfg.Issuer, "jwks", u, "error", err)
			}
		},
	})
}
