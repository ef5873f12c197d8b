package integration

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus/client/v2/entity"
	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/authproxy/authproxy/test/harness"
)

const (
	msgTokenExpired = "auth check failure, the token has expired"
	msgProviderDown = "authproxy: the OpenID provider is unavailable, retry later"
)

func oidcConfig(issuer, audience, extra string) string {
	return fmt.Sprintf(`identities:
  oidc:
    issuers:
      - issuer: %q
        audiences: [%q]
        usernameClaim: preferred_username
        groupsClaim: groups
        groups:
          ml-readers: [reader]
        clockSkew: 1s
        jwksRefreshInterval: 2s
%s`, issuer, audience, extra)
}

func login(t *testing.T, o *harness.OIDC, user, password string) string {
	t.Helper()
	tok, err := o.Login(user, password)
	if err != nil {
		t.Fatalf("login of %s at the OpenID provider: %v", user, err)
	}
	return tok
}

// An ID token from a real OpenID provider (zitadel/oidc's example OP,
// authorization code flow) is a Milvus token: the Go SDK sends it as its
// API key, curl as a Bearer token. The groups claim maps to roles, the
// backend is told the user, list_users shows local users only, and the
// access log names the source.
func TestOIDCTokensWithTheGoSDKAndCurl(t *testing.T) {
	o := harness.StartOIDC(t)
	o.AddUser("dana", "Dana-idp-pw-1", "ml-readers")
	o.AddUser("erin", "Erin-idp-pw-1")
	fake := startFake(t)
	restAddr, err := fake.StartREST("127.0.0.1:0")
	must(t, err)
	p := harness.Start(t, harness.Options{Backend: fake.Addr(), BackendREST: "http://" + restAddr,
		Extra: oidcConfig(o.Issuer, o.ClientID, "") + "log:\n  accessLog: true\n"})
	ctx := testCtx(t, 90*time.Second)
	root := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "root", Password: "Milvus"})
	createVectors(t, ctx, root, "books", 8)
	createVectors(t, ctx, root, "secret", 8)
	must(t, root.CreateRole(ctx, milvusclient.NewCreateRoleOption("reader")))
	must(t, root.GrantPrivilege(ctx, milvusclient.NewGrantPrivilegeOption("reader", "Collection", "Search", "books")))

	token := login(t, o, "dana", "Dana-idp-pw-1")
	dana := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, APIKey: token})
	fake.Recorder().Reset()
	_, err = dana.Search(ctx, milvusclient.NewSearchOption("books", 3, []entity.Vector{constVec(1, 8)}).WithANNSField("vec"))
	must(t, err)
	if s := fake.Recorder().CallsTo("Search"); len(s) != 1 || !slices.Equal(s[0].Metadata.Get("x-authproxy-user"), []string{"dana"}) {
		t.Fatalf("the backend's search: %v; want one, as dana", s)
	}
	ids, vecs := vectors(2, 8)
	_, err = dana.Insert(ctx, milvusclient.NewColumnBasedInsertOption("books").WithInt64Column("id", ids).WithFloatVectorColumn("vec", 8, vecs))
	wantDenied(t, "dana inserts", err, deny("PrivilegeInsert", "dana", "default"))

	erin := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, APIKey: login(t, o, "erin", "Erin-idp-pw-1")})
	_, err = erin.Search(ctx, milvusclient.NewSearchOption("books", 3, []entity.Vector{constVec(1, 8)}).WithANNSField("vec"))
	// Milvus refuses it at the SDK's describe, in the reply's status.
	wantNotPermitted(t, "erin (no mapped group) searches books", err, "collection", "books")

	// REST: Authorization: Bearer <jwt>; the list is filtered for dana.
	r := curl(t, "http://"+p.Addr+"/v2/vectordb/collections/list", "Bearer "+token, `{}`)
	code, data, msg := envelope(t, r)
	if r.status != 200 || code != 0 || fmt.Sprint(data) != "[books]" {
		t.Errorf("REST list as dana: %d code %d %v %q, want [books]", r.status, code, data, msg)
	}
	if l := fake.Recorder().CallsTo("/v2/vectordb/collections/list"); len(l) != 1 || !slices.Equal(l[0].Metadata.Get("x-authproxy-user"), []string{"dana"}) {
		t.Errorf("the backend's REST list: %v; want one, as dana", l)
	}
	if r := curl(t, "http://"+p.Addr+"/v2/vectordb/collections/list", "Bearer "+token[:len(token)-4]+"AAAA", `{}`); r.status != 401 {
		t.Errorf("REST with a forged signature: %d %s, want 401", r.status, r.body)
	}

	users, err := root.ListUsers(ctx, milvusclient.NewListUserOption())
	must(t, err)
	if !slices.Equal(users, []string{"root"}) {
		t.Errorf("list_users: %v, want the local users only", users)
	}
	if !p.WaitLog("user=dana source=oidc", 5*time.Second) {
		t.Errorf("no access log line names dana's source")
	}
	// Local users keep working beside tokens.
	must(t, getVersion(ctx, milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil)), "root:Milvus"))
}

// What a token must be: signed by the issuer's key, with an allowed
// algorithm (never none, never HMAC keyed with the public key), for our
// audience, not expired (the cache included), from a configured issuer.
func TestOIDCRefusals(t *testing.T) {
	o := harness.StartOIDC(t)
	o.AddUser("dana", "Dana-idp-pw-1", "ml-readers")
	_, p := startPair(t, harness.Options{Extra: oidcConfig(o.Issuer, o.ClientID, "")})
	ctx := testCtx(t, 60*time.Second)
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	token := login(t, o, "dana", "Dana-idp-pw-1")
	must(t, getVersion(ctx, m, token))

	header, payload, _ := strings.Cut(token, ".")
	payload, _, _ = strings.Cut(payload, ".")
	b64 := base64.RawURLEncoding.EncodeToString
	claims := decodeSegment(t, payload)
	reencode := func(change func(map[string]any)) string {
		c := map[string]any{}
		for k, v := range claims {
			c[k] = v
		}
		change(c)
		j, _ := json.Marshal(c)
		return b64(j)
	}
	jwks := fetchJWKS(t, o)
	hs256 := func(body string) string {
		mac := hmac.New(sha256.New, jwks) // the public key set as the HMAC secret
		mac.Write([]byte(body))
		return body + "." + b64(mac.Sum(nil))
	}
	forged := map[string]string{
		"alg none":                    b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + payload + ".",
		"HS256 keyed with public key": hs256(b64([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + payload),
		"changed claims":              header + "." + reencode(func(c map[string]any) { c["groups"] = []string{"ml-admins"} }) + "." + strings.Split(token, ".")[2],
		"another issuer":              header + "." + reencode(func(c map[string]any) { c["iss"] = "https://elsewhere.example/" }) + "." + strings.Split(token, ".")[2],
	}
	for what, tok := range forged {
		err := getVersion(ctx, m, tok)
		wantStatus(t, what, err, codes.Unauthenticated, msgAPIKey)
	}

	// Another client's token: right issuer and signature, wrong audience.
	o.ClientID = "another-app"
	o.Register()
	other := login(t, o, "dana", "Dana-idp-pw-1")
	if err := getVersion(ctx, m, other); status.Code(err) != codes.Unauthenticated {
		t.Errorf("a token for another audience: %v, want Unauthenticated", err)
	}

	// Expiry: a 3 s token works, and is refused once exp + 1 s skew is
	// past, although it was cached.
	o.ClientID = "authproxy-test"
	o.SetTokenLifetime(3 * time.Second)
	short := login(t, o, "dana", "Dana-idp-pw-1")
	exp := time.Unix(int64(decodeSegment(t, strings.Split(short, ".")[1])["exp"].(float64)), 0)
	must(t, getVersion(ctx, m, short))
	time.Sleep(time.Until(exp.Add(1500 * time.Millisecond)))
	err := getVersion(ctx, m, short)
	wantStatus(t, "an expired token", err, codes.Unauthenticated, msgTokenExpired)
	wantRefusalsCounted(t, p, "expired_token", 1, -1)
}

// With usernameClaim: email, a token names a user only if the provider says
// it verified the address with the JSON boolean true: the strings "false"
// and "true", and a missing claim, are refused.
func TestOIDCEmailVerifiedMustBeTrue(t *testing.T) {
	o := harness.StartOIDC(t)
	cases := map[string]any{"erin": true, "frank": "false", "gina": "true", "hal": nil, "ivy": 1}
	for name := range cases {
		o.AddUser(name, "Idp-pw-1-"+name)
	}
	for name, v := range cases {
		if v != true {
			o.SetEmailVerified(name, v)
		}
	}
	cfg := strings.Replace(oidcConfig(o.Issuer, o.ClientID, ""), "usernameClaim: preferred_username", "usernameClaim: email", 1)
	_, p := startPair(t, harness.Options{Extra: cfg})
	ctx := testCtx(t, 60*time.Second)
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	for name, v := range cases {
		token := login(t, o, name, "Idp-pw-1-"+name)
		claims := decodeSegment(t, strings.Split(token, ".")[1])
		if got := claims["email_verified"]; fmt.Sprint(got) != fmt.Sprint(v) && !(v == nil && got == nil) {
			t.Fatalf("%s's token carries email_verified %#v, want %#v", name, got, v)
		}
		err := getVersion(ctx, m, token)
		if v == true {
			must(t, err)
			continue
		}
		wantStatus(t, fmt.Sprintf("email_verified %#v", v), err, codes.Unauthenticated, msgAPIKey)
	}
}

// The keys are cached; a token with an unknown key ID fetches them again,
// at most once per jwksRefreshInterval, so a flood of made-up key IDs
// costs the provider nothing. A rotated key is picked up.
func TestOIDCKeyRotationAndRefreshLimit(t *testing.T) {
	o := harness.StartOIDC(t)
	// The keys come 50 ms after they are asked for, as from a provider
	// across a network: a refresh must not be bounded by the rate
	// limiter's (near zero) wait for its turn.
	o.SetKeysDelay(50 * time.Millisecond)
	o.AddUser("dana", "Dana-idp-pw-1", "ml-readers")
	_, p := startPair(t, harness.Options{Extra: oidcConfig(o.Issuer, o.ClientID, "")})
	ctx := testCtx(t, 60*time.Second)
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	must(t, getVersion(ctx, m, login(t, o, "dana", "Dana-idp-pw-1")))
	must(t, getVersion(ctx, m, login(t, o, "dana", "Dana-idp-pw-1")))
	if n := o.KeyFetches.Load(); n != 1 {
		t.Errorf("JWKS fetched %d times for two tokens of one key, want 1", n)
	}

	time.Sleep(2100 * time.Millisecond) // one refresh is allowed again
	o.RotateKey()
	rotated := login(t, o, "dana", "Dana-idp-pw-1")
	must(t, getVersion(ctx, m, rotated))
	if n := o.KeyFetches.Load(); n != 2 {
		t.Errorf("JWKS fetched %d times after a rotation, want 2", n)
	}

	header := decodeSegment(t, strings.Split(rotated, ".")[0])
	start := time.Now()
	for i := 0; i < 50; i++ {
		header["kid"] = fmt.Sprintf("made-up-%d", i)
		j, _ := json.Marshal(header)
		parts := strings.Split(rotated, ".")
		forged := base64.RawURLEncoding.EncodeToString(j) + "." + parts[1] + "." + parts[2]
		if err := getVersion(ctx, m, forged); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("an unknown key ID: %v", err)
		}
	}
	allowed := 1 + int64(time.Since(start)/(2*time.Second))
	if n := o.KeyFetches.Load() - 2; n > allowed {
		t.Errorf("50 unknown key IDs in %v fetched the JWKS %d times, want at most %d", time.Since(start), n, allowed)
	}
}

// A provider that cannot be reached is Unavailable, not a refusal of the
// token; local users are unaffected; once the provider answers, tokens work.
func TestOIDCProviderDown(t *testing.T) {
	o := harness.StartOIDC(t)
	o.AddUser("dana", "Dana-idp-pw-1", "ml-readers")
	token := login(t, o, "dana", "Dana-idp-pw-1")
	o.Stop()
	_, p := startPair(t, harness.Options{Extra: oidcConfig(o.Issuer, o.ClientID, "")})
	ctx := testCtx(t, 60*time.Second)
	m := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	err := getVersion(ctx, m, token)
	mustStatus(t, "a token while the provider is down", err, codes.Unavailable, msgProviderDown)
	must(t, getVersion(ctx, m, "root:Milvus"))
	o.Start()
	within(t, 15*time.Second, "the token works once the provider is back", func() error { return getVersion(ctx, m, token) })
}

func decodeSegment(t *testing.T, seg string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func fetchJWKS(t *testing.T, o *harness.OIDC) []byte {
	t.Helper()
	resp, err := http.Get(o.Issuer + "keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
