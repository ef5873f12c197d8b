package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/authproxy/authproxy/test/harness"
)

// browser is one headless Chromium (Debian's chromium) driven over the
// DevTools protocol; it dies with the test (chromedp's allocator kills it
// on cancel, and Pdeathsig if the test binary dies).
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string // the console's URL
	// pages holds the HTML of every page seen, for the secrets check.
	pages map[string]string
}

// screenshotDir is where every page's screenshot goes:
// AUTHPROXY_SCREENSHOTS, else testdata/screenshots (gitignored).
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("AUTHPROXY_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join("testdata", "screenshots")
	}
	must(t, os.MkdirAll(dir, 0o755))
	return dir
}

func startBrowser(t *testing.T, base string) *browser {
	t.Helper()
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Fatalf("Debian's chromium is needed for the console's browser tests (.ci/run installs it): %v", err)
	}
	// Every step of the test is bounded by this context.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath("/usr/bin/chromium"),
		chromedp.Headless,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("window-size", "1280,900"),
	)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(cancelBrowser)
	must(t, chromedp.Do(bctx, chromedp.Navigate("about:blank")))
	return &browser{t: t, ctx: bctx, base: base, pages: map[string]string{}}
}

// another is a second browser (its own cookies) for another user; it
// dies with t.
func (b *browser) another(t *testing.T) *browser {
	o := startBrowser(t, b.base)
	o.pages = b.pages
	return o
}

// stepTimeout bounds each browser step, so that a step that cannot
// succeed fails in seconds, not at the test's deadline.
const stepTimeout = 30 * time.Second

func run[T any](b *browser, a chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	return chromedp.Run(ctx, a)
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if _, err := run(b, chromedp.Steps(steps...)); err != nil {
		loc, _ := run(b, chromedp.Location())
		page, _ := run(b, chromedp.OuterHTML(chromedp.CSS("body")))
		b.t.Fatalf("%s: %v\nat %s:\n%.2000s", what, err, loc, page)
	}
}

func (b *browser) open(path string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.base+path), chromedp.WaitReady(chromedp.CSS("body")))
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := run(b, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// html is the page's HTML now.
func (b *browser) html() string {
	b.t.Helper()
	s, err := run(b, chromedp.OuterHTML(chromedp.CSS("html")))
	if err != nil {
		b.t.Fatalf("page HTML: %v", err)
	}
	return s
}

// shot keeps a screenshot of the page and its HTML.
func (b *browser) shot(name string) {
	b.t.Helper()
	png, err := run(b, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	must(b.t, os.WriteFile(filepath.Join(screenshotDir(b.t), name+".png"), png, 0o644))
	b.pages[name] = b.html()
}

// submit clicks a form's button and waits for the answer's message.
func (b *browser) submit(button string) (notice, problem string) {
	b.t.Helper()
	b.do("submit "+button, chromedp.Click(chromedp.CSS(button)), chromedp.WaitVisible(chromedp.CSS("#notice, #error")))
	h := b.html()
	if strings.Contains(h, `id="error"`) {
		return "", b.text("#error")
	}
	return b.text("#notice"), ""
}

func (b *browser) signIn(user, password string) {
	b.t.Helper()
	b.open("/login")
	b.do("sign in as "+user,
		chromedp.SendKeys(chromedp.CSS("#user"), user), chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS("#signin")), chromedp.WaitVisible(chromedp.CSS("#whoami, #error")))
}

func (b *browser) cookies() []*network.Cookie {
	b.t.Helper()
	res, err := run(b, func(ctx context.Context, t *chromedp.Target) (network.GetCookiesResult, error) {
		return cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{URLs: []string{b.base}})
	})
	if err != nil {
		b.t.Fatalf("cookies: %v", err)
	}
	return res.Cookies
}

// TestConsoleInBrowser drives the console in headless Chromium as an
// operator would, and checks each change with a real Milvus client.
func TestConsoleInBrowser(t *testing.T) {
	consoleAddr := harness.FreeAddr(t)
	_, p := startPair(t, harness.Options{SuperUsers: "root", Extra: fmt.Sprintf(`console:
  listen: %q
auth:
  bruteForce:
    threshold: 3
    backoff: 10m
    maxBackoff: 10m
`, consoleAddr)})
	ctx := testCtx(t, 4*time.Minute)
	const alicePassword = "Alice-console-pw-81"
	harness.Password("alice", alicePassword)
	b := startBrowser(t, "http://"+consoleAddr)
	start := time.Now()

	// Signing in: a page not signed in goes to the sign-in page.
	b.open("/users")
	if loc, _ := run(b, chromedp.Location()); !strings.HasSuffix(loc, "/login") {
		t.Fatalf("/users without a session went to %s, want /login", loc)
	}
	b.shot("01-login")
	b.signIn("root", "wrong-password")
	if e := b.text("#error"); !strings.Contains(e, "auth check failure") {
		t.Fatalf("a wrong password: %q, want Milvus's refusal", e)
	}
	b.signIn("root", "Milvus")
	if who := b.text("#whoami"); who != "root (local)" {
		t.Fatalf("signed in as %q", who)
	}

	t.Run("cookie", func(t *testing.T) {
		var found bool
		for _, c := range b.cookies() {
			if c.Name != "authproxy_console" {
				continue
			}
			found = true
			if !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict || c.Secure {
				t.Errorf("session cookie: HttpOnly %t SameSite %q Secure %t; want HttpOnly, Strict, not Secure on plaintext loopback", c.HTTPOnly, c.SameSite, c.Secure)
			}
		}
		if !found {
			t.Fatal("no session cookie after signing in")
		}
	})

	t.Run("create user", func(t *testing.T) {
		b.open("/users")
		b.do("fill", chromedp.SendKeys(chromedp.CSS("#new-name"), "alice"), chromedp.SendKeys(chromedp.CSS("#new-password"), alicePassword))
		if n, e := b.submit("#create"); n != "Created user alice." {
			t.Fatalf("create alice: notice %q error %q", n, e)
		}
		b.shot("02-users")
		// A real client logs in with the new password.
		sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "alice", Password: alicePassword})
	})

	t.Run("grant a role from the matrix", func(t *testing.T) {
		b.open("/roles")
		b.do("fill", chromedp.SendKeys(chromedp.CSS("#role-name"), "reader"))
		if n, e := b.submit("#create-role-button"); n != "Created role reader." {
			t.Fatalf("create role: notice %q error %q", n, e)
		}
		b.open("/users")
		b.do("choose", chromedp.SetValue(chromedp.CSS("#user-alice select[name=role]"), "reader"))
		if n, e := b.submit("#user-alice button.bind"); n != "Bound role reader to alice." {
			t.Fatalf("bind: notice %q error %q", n, e)
		}
		b.open("/roles")
		if n, e := b.submit(`button.cell[data-role="reader"][data-privilege="CollectionReadOnly"]`); !strings.HasPrefix(n, "Granted CollectionReadOnly") {
			t.Fatalf("grant from the matrix: notice %q error %q", n, e)
		}
		b.shot("03-roles-matrix")
		root := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "root", Password: "Milvus"})
		role, err := root.DescribeRole(ctx, milvusclient.NewDescribeRoleOption("reader"))
		must(t, err)
		var grants []string
		for _, g := range role.Privileges {
			grants = append(grants, g.Privilege+" on "+g.ObjectName+" in "+g.DbName)
		}
		if len(grants) != 1 || grants[0] != "CollectionReadOnly on * in *" {
			t.Fatalf("reader's grants after the matrix click: %v", grants)
		}
		user, err := root.DescribeUser(ctx, milvusclient.NewDescribeUserOption("alice"))
		must(t, err)
		if len(user.Roles) != 1 || user.Roles[0] != "reader" {
			t.Fatalf("alice's roles: %v, want [reader]", user.Roles)
		}
		// The same cell, granted now, revokes; then it grants again.
		b.open("/roles")
		if n, e := b.submit(`button.cell[data-role="reader"][data-privilege="CollectionReadOnly"]`); !strings.HasPrefix(n, "Revoked CollectionReadOnly") {
			t.Fatalf("revoke from the matrix: notice %q error %q", n, e)
		}
		role, err = root.DescribeRole(ctx, milvusclient.NewDescribeRoleOption("reader"))
		must(t, err)
		if len(role.Privileges) != 0 {
			t.Fatalf("reader's grants after the revoke: %v", role.Privileges)
		}
		b.open("/roles")
		if n, e := b.submit(`button.cell[data-role="reader"][data-privilege="CollectionReadOnly"]`); !strings.HasPrefix(n, "Granted") {
			t.Fatalf("grant again: notice %q error %q", n, e)
		}
		// A custom privilege group, made and filled from the page.
		b.open("/roles")
		b.do("fill", chromedp.SendKeys(chromedp.CSS("#group-name"), "readers_grp"))
		if n, e := b.submit("#create-group"); n != "Created privilege group readers_grp." {
			t.Fatalf("create group: notice %q error %q", n, e)
		}
		b.open("/roles")
		b.do("choose", chromedp.SetValue(chromedp.CSS("#group-add-group"), "readers_grp"), chromedp.SetValue(chromedp.CSS("#group-add-privilege"), "Query"))
		if n, e := b.submit("#group-add-button"); n != "Added Query to privilege group readers_grp." {
			t.Fatalf("add to group: notice %q error %q", n, e)
		}
		groups, err := root.ListPrivilegeGroups(ctx, milvusclient.NewListPrivilegeGroupsOption())
		must(t, err)
		var found bool
		for _, g := range groups {
			if g.GroupName == "readers_grp" {
				found = len(g.Privileges) == 1 && g.Privileges[0] == "Query"
			}
		}
		if !found {
			t.Fatalf("the SDK's privilege groups: %+v, want readers_grp with Query", groups)
		}
	})

	var secret string
	t.Run("API key shown once, then revoked", func(t *testing.T) {
		b.open("/apikeys")
		b.do("fill", chromedp.SendKeys(chromedp.CSS("#key-name"), "ci"), chromedp.SetValue(chromedp.CSS("#key-user"), "alice"),
			chromedp.SendKeys(chromedp.CSS("#key-expires"), "30d"))
		if n, e := b.submit("#create-key-button"); !strings.HasPrefix(n, "Created API key ci.") {
			t.Fatalf("create key: notice %q error %q", n, e)
		}
		secret = b.text("#secret")
		harness.APIKey(secret)
		if !strings.HasPrefix(secret, "ap_") {
			t.Fatalf("the secret shown is %q", secret)
		}
		b.shot("04-apikey-once")
		keyClient := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, APIKey: secret})
		if _, err := keyClient.ListCollections(ctx, milvusclient.NewListCollectionOption()); err != nil {
			t.Fatalf("the new key does not work: %v", err)
		}
		b.open("/apikeys")
		if strings.Contains(b.html(), secret) {
			t.Fatal("the key's secret is shown again")
		}
		if b.text("#key-ci td:nth-child(2)") != "alice" {
			t.Fatal("the key list does not show ci acting as alice")
		}
		b.shot("05-apikeys")
		// Rotate: a new secret once; the old one stops at once.
		if n, e := b.submit("#key-ci button.rotate"); !strings.HasPrefix(n, "Rotated API key ci") {
			t.Fatalf("rotate: notice %q error %q", n, e)
		}
		old := secret
		secret = b.text("#secret")
		harness.APIKey(secret)
		if secret == old {
			t.Fatal("rotating gave the same secret")
		}
		if _, err := sdkConnect(ctx, &milvusclient.ClientConfig{Address: p.Addr, APIKey: old}); err == nil {
			t.Fatal("the old secret works after the rotation")
		}
		sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, APIKey: secret})
		b.open("/apikeys")
		if strings.Contains(b.html(), secret) || strings.Contains(b.html(), old) {
			t.Fatal("a key's secret is shown again")
		}
		if n, e := b.submit("#key-ci button.revoke"); n != "Revoked API key ci." {
			t.Fatalf("revoke: notice %q error %q", n, e)
		}
		_, err := sdkConnect(ctx, &milvusclient.ClientConfig{Address: p.Addr, APIKey: secret})
		if err == nil || !strings.Contains(err.Error(), "api key is correct") {
			t.Fatalf("the revoked key: %v, want Milvus's API-key refusal", err)
		}
	})

	t.Run("lockout appears and is lifted", func(t *testing.T) {
		conn := dial(t, p.Addr, nil)
		cli := milvuspb.NewMilvusServiceClient(conn)
		for range 3 {
			_, err := cli.Connect(withToken(ctx, "alice:not-her-password"), &milvuspb.ConnectRequest{})
			if status.Code(err) != codes.Unauthenticated {
				t.Fatalf("a wrong password: %v", err)
			}
		}
		b.open("/now")
		row := b.text("#lockouts")
		if !strings.Contains(row, "alice") || !strings.Contains(row, "127.0.0.1") {
			t.Fatalf("lockouts after 3 failures: %q, want alice from 127.0.0.1", row)
		}
		if d := b.text("#denials"); !strings.Contains(d, "alice") || !strings.Contains(d, "bad_password") {
			t.Fatalf("last denials: %q, want alice's bad_password", d)
		}
		if strings.Contains(b.html(), "not-her-password") {
			t.Fatal("the now page shows a tried password")
		}
		// The console's sign-in is held by the same lockout.
		other := b.another(t)
		other.signIn("alice", alicePassword)
		if e := other.text("#error"); !strings.Contains(e, "auth check failure") {
			t.Fatalf("alice signing in to the console while locked: %q, want a refusal", e)
		}
		b.open("/now")
		b.shot("06-now-lockout")
		if n, e := b.submit("#lockouts button.unlock"); n != "Unlocked alice from 127.0.0.1." {
			t.Fatalf("unlock: notice %q error %q", n, e)
		}
		if strings.Contains(b.text("#lockouts"), "alice") {
			t.Fatal("alice still listed as locked after unlocking")
		}
		sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "alice", Password: alicePassword})
	})

	t.Run("a non-admin sees only their own", func(t *testing.T) {
		alice := b.another(t)
		alice.signIn("alice", alicePassword)
		if who := alice.text("#whoami"); who != "alice (local)" {
			t.Fatalf("signed in as %q", who)
		}
		alice.open("/users")
		h := alice.html()
		if !strings.Contains(h, `id="user-alice"`) || strings.Contains(h, `id="user-root"`) || strings.Contains(h, `id="create-user"`) {
			t.Fatal("alice's users page shows others or the create form")
		}
		alice.shot("07-users-as-alice")
		// Her own password: the old one is required (she is no superuser).
		alice.do("fill", chromedp.SendKeys(chromedp.CSS("#user-alice input[name=password]"), "Alice-new-pw-82"))
		harness.Password("alice", "Alice-new-pw-82")
		if n, e := alice.submit("#user-alice form[action='/users/password'] button"); n != "" || !strings.Contains(e, "old password not correct") {
			t.Fatalf("alice's password without the old one: notice %q error %q", n, e)
		}
		alice.open("/now")
		if d := alice.text("#denials"); strings.Contains(d, "root") {
			t.Fatalf("alice sees others' denials: %q", d)
		}
		alice.open("/roles")
		if strings.Contains(alice.html(), `id="grant-form"`) {
			t.Fatal("alice is offered the grant form")
		}
		alice.shot("08-roles-as-alice")
		alice.open("/apikeys")
		alice.do("fill", chromedp.SendKeys(chromedp.CSS("#key-name"), "mine"))
		if n, e := alice.submit("#create-key-button"); !strings.HasPrefix(n, "Created API key mine.") {
			t.Fatalf("alice's own key: notice %q error %q", n, e)
		}
		harness.APIKey(alice.text("#secret"))
		// A key for root is refused by the same rule as root's password.
		resp := postForm(t, alice, "/apikeys/create", url.Values{"name": {"theirs"}, "user": {"root"}})
		if resp.code != http.StatusForbidden || !strings.Contains(resp.body, "permission deny to alice") {
			t.Fatalf("alice creating a key for root: %d %q", resp.code, resp.body)
		}
		b.open("/apikeys")
		if !strings.Contains(b.text("#keys"), "mine") {
			t.Fatal("root does not see alice's key")
		}
		alice.open("/identities")
		alice.shot("09-identities-as-alice")
	})

	t.Run("CSRF and origin", func(t *testing.T) {
		// Without the token, with a wrong one, from another origin: refused,
		// and nothing is created.
		for _, c := range []struct {
			name   string
			form   url.Values
			origin string
		}{
			{"no token", url.Values{"name": {"mallory"}, "password": {"Mallory-pw-1"}}, ""},
			{"wrong token", url.Values{"name": {"mallory"}, "password": {"Mallory-pw-1"}, "csrf": {"x"}}, ""},
			{"other origin", url.Values{"name": {"mallory"}, "password": {"Mallory-pw-1"}, "csrf": {csrfOf(t, b)}}, "http://evil.example"},
		} {
			resp := postRaw(t, b, "/users/create", c.form, c.origin)
			if resp.code != http.StatusForbidden {
				t.Errorf("%s: %d %.200q, want 403", c.name, resp.code, resp.body)
			}
		}
		root := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "root", Password: "Milvus"})
		users, err := root.ListUsers(ctx, milvusclient.NewListUserOption())
		must(t, err)
		for _, u := range users {
			if u == "mallory" {
				t.Fatal("a refused form created a user")
			}
		}
		// The same form with the session's token is accepted.
		harness.Password("mallory", "Mallory-pw-1")
		if resp := postForm(t, b, "/users/create", url.Values{"name": {"mallory"}, "password": {"Mallory-pw-1"}}); resp.code != http.StatusOK {
			t.Fatalf("with the token: %d %q", resp.code, resp.body)
		}
	})

	t.Run("identities and now", func(t *testing.T) {
		b.open("/identities")
		b.do("fill", chromedp.SendKeys(chromedp.CSS("#test-name"), "alice"))
		b.do("test", chromedp.Click(chromedp.CSS("#test")), chromedp.WaitVisible(chromedp.CSS("#tested")))
		if got := b.text("#tested"); !strings.Contains(got, "reader") {
			t.Fatalf("test a login of alice: %q, want role reader", got)
		}
		b.shot("10-identities")
		b.open("/now")
		if v := b.text("#forwarding"); v != harness.Core() {
			t.Fatalf("forwarding core shown %q, want %q", v, harness.Core())
		}
		b.shot("11-now")
	})

	t.Run("signing out ends the session", func(t *testing.T) {
		cookie := sessionCookie(t, b)
		b.open("/now")
		b.do("sign out", chromedp.Click(chromedp.CSS(".signout button")), chromedp.WaitVisible(chromedp.CSS("#signin")))
		req, _ := http.NewRequest("GET", b.base+"/now/series", nil)
		req.AddCookie(cookie)
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("the old cookie after signing out: %d, want 401", resp.StatusCode)
		}
	})

	// No page holds a password, a hash, a digest or a key's secret, but
	// the one page that shows a new key once.
	secretLike := regexp.MustCompile(`\$argon2id\$|\$2[aby]\$|sha256:[0-9a-f]{64}`)
	for name, h := range b.pages {
		for _, s := range []string{"Milvus\"", alicePassword, "Alice-new-pw-82", "not-her-password", "wrong-password"} {
			if strings.Contains(h, s) {
				t.Errorf("page %s holds %q", name, s)
			}
		}
		if m := secretLike.FindString(h); m != "" {
			t.Errorf("page %s holds %q", name, m)
		}
		if name != "04-apikey-once" && secret != "" && strings.Contains(h, secret) {
			t.Errorf("page %s holds the key's secret", name)
		}
	}
	t.Logf("console walk: %d pages, %d screenshots in %s, %.1fs", len(b.pages), len(b.pages), screenshotDir(t), time.Since(start).Seconds())
}

func sessionCookie(t *testing.T, b *browser) *http.Cookie {
	t.Helper()
	for _, c := range b.cookies() {
		if c.Name == "authproxy_console" {
			return &http.Cookie{Name: c.Name, Value: c.Value}
		}
	}
	t.Fatal("no session cookie")
	return nil
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, b *browser) string {
	t.Helper()
	b.open("/now")
	m := csrfField.FindStringSubmatch(b.html())
	if m == nil {
		t.Fatal("no CSRF token in the page")
	}
	return m[1]
}

type answer struct {
	code int
	body string
}

// postForm posts as the browser's session would, with its CSRF token.
func postForm(t *testing.T, b *browser, path string, form url.Values) answer {
	t.Helper()
	form.Set("csrf", csrfOf(t, b))
	return postRaw(t, b, path, form, b.base)
}

// postRaw posts a form with the browser's session cookie from a Go client.
func postRaw(t *testing.T, b *browser, path string, form url.Values, origin string) answer {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(b.base)
	jar.SetCookies(u, []*http.Cookie{sessionCookie(t, b)})
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return errors.New("no redirects") }}
	req, _ := http.NewRequest("POST", b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := client.Do(req)
	must(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(body)}
}

// TestConsoleOpenIDSignIn signs in to the console through a real OpenID
// provider (zitadel/oidc's example OP) in the browser: the console's
// redirect with a PKCE challenge, the provider's login form, the callback
// and the code exchange; the ID token's groups map to roles.
func TestConsoleOpenIDSignIn(t *testing.T) {
	o := harness.StartOIDC(t)
	o.AddUser("dana", "Dana-oidc-pw-1", "ml-readers")
	harness.Password("dana", "Dana-oidc-pw-1")
	consoleAddr := harness.FreeAddr(t)
	o.RegisterPublicClient("authproxy-console", "http://"+consoleAddr+"/oidc/callback")
	startPair(t, harness.Options{Extra: fmt.Sprintf(`identities:
  oidc:
    issuers:
      - issuer: %q
        audiences: [%q, "authproxy-console"]
        usernameClaim: preferred_username
        groupsClaim: groups
        groups:
          ml-readers: [reader]
console:
  listen: %q
  oidc:
    issuer: %q
    clientID: authproxy-console
    redirectURL: "http://%s/oidc/callback"
`, o.Issuer, o.ClientID, consoleAddr, o.Issuer, consoleAddr)})
	b := startBrowser(t, "http://"+consoleAddr)
	b.open("/login")
	b.do("to the provider", chromedp.Click(chromedp.CSS("#signin-oidc")), chromedp.WaitVisible(chromedp.CSS("#username")))
	b.shot("12-oidc-provider-login")
	b.do("sign in at the provider",
		chromedp.SendKeys(chromedp.CSS("#username"), "dana"), chromedp.SendKeys(chromedp.CSS("#password"), "Dana-oidc-pw-1"),
		chromedp.Click(chromedp.CSS("button[type=submit]")), chromedp.WaitVisible(chromedp.CSS("#whoami, #error")))
	if strings.Contains(b.html(), `id="error"`) {
		t.Fatalf("the OpenID sign-in was refused: %s", b.text("#error"))
	}
	if who := b.text("#whoami"); who != "dana (oidc)" {
		t.Fatalf("after the OpenID sign-in: %q, want dana (oidc)", who)
	}
	b.shot("13-oidc-signed-in")
	// The callback cannot be replayed: its state was used.
	b.open("/identities")
	if strings.Contains(b.html(), "Dana-oidc-pw-1") {
		t.Fatal("a page holds dana's password")
	}
	b.open("/oidc/callback?state=forged&code=x")
	if e := b.text("#error"); !strings.Contains(e, "did not start this sign-in") {
		t.Fatalf("a forged callback: %q", e)
	}
}

// TestConsoleTLSAndDirectorySignIn: with the proxy's tls section the
// console serves TLS with its certificates, without asking for the client
// certificate the gRPC port requires; the cookie is Secure; a directory
// user signs in with the directory password and gets its groups' roles.
func TestConsoleTLSAndDirectorySignIn(t *testing.T) {
	dir := t.TempDir()
	k := newPKI(t, filepath.Join(dir, "pki"), "client")
	l := harness.StartLDAP(t)
	erin := l.AddUser("erin", "Erin-dir-pw-1")
	l.AddGroup("ml-admins", erin)
	harness.Password("erin", "Erin-dir-pw-1")
	consoleAddr := harness.FreeAddr(t)
	startPair(t, harness.Options{Extra: tlsSection(k.dir, "require", "") + ldapConfig(l, false, "") +
		fmt.Sprintf("console:\n  listen: %q\n", consoleAddr)})

	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: k.clientTLS(false)},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base := "https://" + consoleAddr
	signIn := func(password string) *http.Response {
		resp, err := client.PostForm(base+"/login", url.Values{"user": {"erin"}, "password": {password}})
		must(t, err)
		resp.Body.Close()
		return resp
	}
	if resp := signIn("not-erins-password"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong directory password: %d", resp.StatusCode)
	}
	resp := signIn("Erin-dir-pw-1")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("erin's directory password: %d", resp.StatusCode)
	}
	var secure bool
	for _, c := range resp.Cookies() {
		if c.Name == "authproxy_console" {
			secure = c.Secure && c.HttpOnly && c.SameSite == http.SameSiteStrictMode
		}
	}
	if !secure {
		t.Fatal("the session cookie under TLS is not Secure, HttpOnly, SameSite=Strict")
	}
	now, err := client.Get(base + "/users")
	must(t, err)
	body, _ := io.ReadAll(now.Body)
	now.Body.Close()
	// erin is admin through ml-admins: she sees every user.
	if !strings.Contains(string(body), "erin (ldap)") || !strings.Contains(string(body), `id="user-root"`) {
		t.Fatalf("erin's users page: %d %.300s", now.StatusCode, body)
	}
	// Plaintext is not served.
	plain, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + consoleAddr + "/login")
	if err == nil {
		b, _ := io.ReadAll(plain.Body)
		plain.Body.Close()
		if plain.StatusCode == http.StatusOK {
			t.Fatalf("plaintext served: %.200s", b)
		}
	}
}

// A plaintext console off loopback is refused by name: at start (exit 1)
// and at a reload (the console in force stays).
func TestConsolePlaintextOffLoopbackRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "authproxy.yaml")
	must(t, os.WriteFile(path, []byte("listen: \"127.0.0.1:0\"\nadmin:\n  listen: \"\"\ncredentials:\n  file: \""+filepath.Join(dir, "c.yaml")+"\"\nconsole:\n  listen: \"0.0.0.0:9092\"\n"), 0o600))
	// Bounded: a proxy that wrongly starts is killed after 15 s.
	cmd := exec.CommandContext(testCtx(t, 15*time.Second), harness.Binary(t), "serve", "--config", path)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), `console.listen: "0.0.0.0:9092" is not a loopback address`) {
		t.Fatalf("start with a plaintext console on 0.0.0.0: %v\n%s", err, out)
	}

	consoleAddr := harness.FreeAddr(t)
	_, p := startPair(t, harness.Options{Extra: fmt.Sprintf("console:\n  listen: %q\n", consoleAddr)})
	refusals := strings.Count(p.Logs(), "config reload refused")
	rewriteConfig(t, p, fmt.Sprintf("listen: %q", consoleAddr), `listen: "0.0.0.0:9092"`)
	eventually(t, 5*time.Second, "config reload refused", func() error {
		if strings.Count(p.Logs(), "config reload refused") <= refusals {
			return errors.New("no refusal logged yet")
		}
		return nil
	})
	if !strings.Contains(p.Logs(), "console.listen") {
		t.Fatal("the reload's refusal does not name console.listen")
	}
	resp, err := http.Get("http://" + consoleAddr + "/login")
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the console in force after the refused reload: %d", resp.StatusCode)
	}
}
