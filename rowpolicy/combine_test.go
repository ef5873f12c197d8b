package rowpolicy

import (
	"errors"
	"strings"
	"testing"
)

func mustCompile(t testing.TB, src string) *Expr {
	t.Helper()
	e, err := Compile(src)
	if err != nil {
		t.Fatalf("Compile(%q): %v", src, err)
	}
	return e
}

func tenantPolicy(t testing.TB) Policy {
	return Policy{Name: "tenant", Using: mustCompile(t, "tenant == $current_user_tags['tenant']"),
		Check: mustCompile(t, "tenant == $current_user_tags['tenant']")}
}

var alice = Caller{Name: "alice", Tags: map[string]string{"tenant": "acme"}}

func TestTokenBoundaries(t *testing.T) {
	for _, c := range []struct {
		src  string
		want []string
	}{
		{`a == 1`, []string{"a", "==", "1"}},
		{`android and b`, []string{"android", "and", "b"}},
		{`a["x"][0] > 1`, []string{`a["x"][0]`, ">", "1"}},
		{`$meta["k"] == 'v'`, []string{`$meta["k"]`, "==", "'v'"}},
		{`a is null`, []string{"a", "is null"}},
		{`a is not nullx`, []string{"a", "is not null", "x"}},
		{`a in [ ]`, []string{"a", "in", "[ ]"}},
		{`a in [01]`, []string{"a", "in", "[", "01", "]"}},
		{`a[01]`, []string{"a", "[", "01", "]"}},
		{`x == u8"s" && y != L'z'`, []string{"x", "==", `u8"s"`, "&&", "y", "!=", `L'z'`}},
		{`s == "a\"b\\" or t == 'it\'s'`, []string{"s", "==", `"a\"b\\"`, "or", "t", "==", `'it\'s'`}},
		{`1.5e3 + .5 - 0x1p3 * 0b101 % 017 ** 2`, []string{"1.5e3", "+", ".5", "-", "0x1p3", "*", "0b101", "%", "017", "**", "2"}},
		{`1e`, []string{"1", "e"}},
		{`{v} <= x << 2`, []string{"{", "v", "}", "<=", "x", "<<", "2"}},
		{"s == \"\\u4e2d\" or s == \"中\"", []string{"s", "==", `"\u4e2d"`, "or", "s", "==", `"中"`}},
	} {
		toks, err := Tokenize(c.src)
		if err != nil {
			t.Errorf("Tokenize(%q): %v", c.src, err)
			continue
		}
		var got []string
		for _, tk := range toks {
			got = append(got, tk.Text)
		}
		if strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("Tokenize(%q) = %q, want %q", c.src, got, c.want)
		}
	}
}

// The injection attempts: each must be refused before combining, or be
// combined so that the policy stays a conjunct of its own.
func TestCombineRefusesInjections(t *testing.T) {
	policies := []Policy{tenantPolicy(t)}
	for _, c := range []struct {
		name, filter, why string
	}{
		{"close the parenthesis", `x) or (1==1`, "closes nothing open"},
		{"close and reopen", `x == 1) or (tenant != ""`, "closes nothing open"},
		{"leave one open", `(x == 1`, "never closed"},
		{"close a bracket instead", `x in [1) or (1 == 1]`, "closes nothing open"},
		{"unbalanced double quote", `tenant == "acme`, "not closed"},
		{"unbalanced single quote", `tenant == 'acme) or (1==1`, "not closed"},
		{"escaped closing quote", `tenant == "acme\") or (1==1`, "not closed"},
		{"raw line break in a string", "tenant == \"a\n\") or (1==1", "raw line break"},
		{"invalid escape", `tenant == "\q"`, "invalid escape"},
		{"short unicode escape", `tenant == "\u12") or ("`, "invalid escape"},
		{"name the user", `owner == $current_user_name`, "must not name $current_user_*"},
		{"name the tags", `tenant == $current_user_tags['tenant'] or 1 == 1`, "must not name $current_user_*"},
		{"SQL comment", `x == 1 -- ) or (1 == 1`, "closes nothing open"},
		{"C comment", `x == 1 /* ) or ( */`, "closes nothing open"},
		{"full-width parenthesis", "x == 1 ） or （1 == 1", "is not a token"},
		{"unicode line separator", "x == 1\u2028) or (1 == 1", "is not a token"},
		{"non-breaking space", "x ==\u00a01", "is not a token"},
		{"Han outside a string", "中 == 1", "is not a token"},
		{"bare dollar", `$ == 1`, "is not a token"},
		{"invalid UTF-8", "tenant == \"\xff\"", "not valid UTF-8"},
		{"template brace closes a parenthesis", `{x) or (1 == 1}`, "closes nothing open"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Combine(policies, alice, c.filter)
			var fe *FilterError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), c.why) {
				t.Fatalf("Combine(%q) = %q, %v; want a refusal saying %q", c.filter, got, err, c.why)
			}
		})
	}
}

// Filters that are fine, and how they are combined.
func TestCombine(t *testing.T) {
	restricted := Policy{Name: "region", Restrictive: true, Using: mustCompile(t, "region in ['eu', $current_user_tags['region']]")}
	owner := Policy{Name: "own", Using: mustCompile(t, "owner == $current_user_name")}
	for _, c := range []struct {
		name     string
		policies []Policy
		caller   Caller
		filter   string
		want     string
		err      error
	}{
		{"one policy, no filter", []Policy{tenantPolicy(t)}, alice, "",
			`((tenant == "acme"))`, nil},
		{"one policy and a filter", []Policy{tenantPolicy(t)}, alice, `id in [1, 2]`,
			`((tenant == "acme")) and (id in [1, 2])`, nil},
		{"a variable's name inside a string is data", []Policy{tenantPolicy(t)}, alice, `note == "$current_user_name"`,
			`((tenant == "acme")) and (note == "$current_user_name")`, nil},
		{"a negative number in a policy", []Policy{{Name: "lvl", Using: mustCompile(t, "level > - 1")}}, alice, "",
			`((level > -1))`, nil},
		{"templates stay the caller's", []Policy{tenantPolicy(t)}, alice, `id == {id}`,
			`((tenant == "acme")) and (id == {id})`, nil},
		{"a tag that tries to close the string", []Policy{tenantPolicy(t)},
			Caller{Name: "mallory", Tags: map[string]string{"tenant": `acme" or tenant != "`}}, "",
			`((tenant == "acme\" or tenant != \""))`, nil},
		{"a name with a backslash, a quote and a line break", []Policy{owner},
			Caller{Name: "a\\'b\n\u202e"}, "",
			`((owner == "a\\'b\n\u202e"))`, nil},
		{"permissive OR-ed, restrictive AND-ed", []Policy{tenantPolicy(t), owner, restricted},
			Caller{Name: "bob", Tags: map[string]string{"tenant": "globex", "region": "us"}}, `x > 1`,
			`(((tenant == "globex") or (owner == "bob")) and (region in ['eu', "us"])) and (x > 1)`, nil},
		{"a permissive policy whose tag is missing drops out", []Policy{tenantPolicy(t), owner},
			Caller{Name: "bob"}, "",
			`((owner == "bob"))`, nil},
		{"only that one: no rows", []Policy{tenantPolicy(t)}, Caller{Name: "bob"}, "x == 1", "", ErrNoRows},
		{"a restrictive policy whose tag is missing: no rows", []Policy{owner, restricted},
			Caller{Name: "bob"}, "", "", ErrNoRows},
		{"no policy applies: no rows", nil, alice, "", "", ErrNoRows},
		{"only restrictive policies: no rows", []Policy{restricted},
			Caller{Name: "bob", Tags: map[string]string{"region": "us"}}, "", "", ErrNoRows},
		{"a true policy allows every row", []Policy{{Name: "all", Using: mustCompile(t, "true")}}, alice, "x == 1",
			"x == 1", nil},
		{"a false restrictive policy: no rows", []Policy{owner, {Name: "none", Restrictive: true, Using: mustCompile(t, "FALSE")}},
			alice, "", "", ErrNoRows},
		{"not stays around its expression", []Policy{{Name: "n", Using: mustCompile(t, "not (tenant == 'x' or deleted == true)")}},
			alice, "", `((not ((tenant == 'x') or (deleted == true))))`, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Combine(c.policies, c.caller, c.filter)
			if !errors.Is(err, c.err) || got != c.want {
				t.Fatalf("Combine = %q, %v; want %q, %v", got, err, c.want, c.err)
			}
			if err == nil && got != c.filter {
				// Every literal the combiner wrote reads back as the caller's value.
				if _, err := Tokenize(got); err != nil {
					t.Fatalf("combined filter does not tokenise: %v", err)
				}
			}
		})
	}
}

func TestQuoteReadsBackAsMilvusReadsIt(t *testing.T) {
	for _, s := range []string{"", "acme", `a"b`, `a\b`, `a\'b`, "a'b", "line\nbreak\r", "tab\t", "nul\x00", "中文", "\u202e", "\U0001F600", `\\"`, "\x7f"} {
		lit := Quote(s)
		n, err := stringLen(lit)
		if err != nil || n != len(lit) {
			t.Errorf("Quote(%q) = %s: not one StringLiteral (%d, %v)", s, lit, n, err)
			continue
		}
		got, err := decodeString(lit)
		if err != nil || got != s {
			t.Errorf("Quote(%q) = %s reads back as %q, %v", s, lit, got, err)
		}
	}
}

func TestDecodeStringAsMilvus(t *testing.T) {
	for lit, want := range map[string]string{
		`"a"`:       "a",
		`'a'`:       "a",
		`'it\'s'`:   "it's",
		`'say "x"'`: `say "x"`,
		`"tab\tx"`:  "tab\tx",
		`'\\'`:      `\`,
		`"\u4e2d"`:  "中",
	} {
		got, err := decodeString(lit)
		if err != nil || got != want {
			t.Errorf("decodeString(%s) = %q, %v; want %q", lit, got, err, want)
		}
	}
}

func TestCompileRefuses(t *testing.T) {
	for src, why := range map[string]string{
		"":                                 "empty",
		"tenant == {t}":                    "comparison is between",
		"not tenant == 'a'":                "not must be followed",
		"a == b":                           "comparison is between",
		"meta['k'] == 1":                   "comparison is between",
		"tenant == $current_user_tags[k]":  "only $current_user_name",
		"tenant == $current_user_names":    "only $current_user_name",
		"tenant == 'a' and":                "ends early",
		"(tenant == 'a'":                   "missing )",
		"x in [1, 2":                       "expected , or ]",
		"tenant == 'a' tenant == 'b'":      "unexpected",
		"x + 1 == 2":                       "expected a comparison",
		"tenant == u8'a'":                  "comparison is between",
		"tenant == 'a' or true":            "expected a comparison",
		"tenant == $current_user_tags['k'": "only $current_user_name",
		`tenant == "\?"`:                   "does not unquote", // Plan.g4 lexes \?, Go's Unquote refuses it
		"id == 99999999999999999999":       "out of range",
	} {
		if _, err := Compile(src); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("Compile(%q) = %v, want an error saying %q", src, err, why)
		}
	}
}

// The cost of a read's combination and a 1000-row insert's check, with
// one policy: what the proxy adds per request.
func BenchmarkCombine(b *testing.B) {
	p := []Policy{tenantPolicy(b)}
	for b.Loop() {
		if _, err := Combine(p, alice, `id in [1, 2, 3] and title like "a%"`); err != nil {
			b.Fatal(err)
		}
	}
}
