package fakemilvus

import (
	"testing"
	"unicode/utf8"

	"github.com/authproxy/authproxy/rowpolicy"
)

// FuzzCombinedFilter is the differential check of authproxy's filter
// combiner (rowpolicy) against this fake's parser, written separately from
// Plan.g4:
//
//   - a filter rowpolicy accepts lexes here into the same tokens;
//   - a filter that parses here is accepted by rowpolicy;
//   - the combined filter parses exactly when the caller's filter does,
//     and then its tree is `and` of the policy's tree and the filter's
//     tree, so the policy is a top-level conjunct whatever the filter;
//   - the caller's values, written into the policy, read back unchanged;
//   - the rows the combination selects, evaluated here, are the caller's
//     tenant's only.
func FuzzCombinedFilter(f *testing.F) {
	for _, s := range []string{
		"", "id in [1, 2]", "x) or (1==1", `tenant == "a\") or (\"`, "{a} == b", `a["k"][0] > 1`,
		"not (x == 1) and y like 'a%'", "$meta['k'] == 1", `s == '\u4e2d'`, "x is not null", "a or b and c",
		"1 < a < 2", "a not in [ ]", `tenant == "acme" or tenant == "globex"`, "text_match(a, 'x', minimum_should_match = 1)",
	} {
		f.Add(s)
	}
	compile := func(src string) *rowpolicy.Expr {
		e, err := rowpolicy.Compile(src)
		if err != nil {
			f.Fatal(err)
		}
		return e
	}
	policies := []rowpolicy.Policy{
		{Name: "tenant", Using: compile(`tenant == $current_user_tags['tenant']`)},
		{Name: "own", Using: compile(`owner == $current_user_name or public == true`)},
		{Name: "region", Restrictive: true, Using: compile(`not (region in ["x", $current_user_tags['region']])`)},
	}
	caller := rowpolicy.Caller{Name: `mal"lory') or (1==1 \`, Tags: map[string]string{"tenant": "x' or '1'=='1\n", "region": `\"`}}
	policyOnly, err := rowpolicy.Combine(policies, caller, "")
	if err != nil {
		f.Fatal(err)
	}
	policyTree, err := parseFilter(policyOnly)
	if err != nil {
		f.Fatalf("the policy clause %s does not parse: %v", policyOnly, err)
	}
	for _, lit := range []struct{ field, want string }{{"tenant", caller.Tags["tenant"]}, {"owner", caller.Name}} {
		if !holdsLiteral(policyTree, lit.field, lit.want) {
			f.Fatalf("the policy clause %s does not compare %s with %q", policyOnly, lit.field, lit.want)
		}
	}

	// One policy alone, for the rows that come back: every row the
	// combination selects is a row of the caller's tenant.
	tenantOnly := policies[:1]
	acme := rowpolicy.Caller{Name: "alice", Tags: map[string]string{"tenant": "acme"}}
	c := tenants(f) // match only reads it

	f.Fuzz(func(t *testing.T, filter string) {
		if combined, err := rowpolicy.Combine(tenantOnly, acme, filter); err == nil {
			if pos, err := c.match(combined); err == nil {
				for _, p := range pos {
					if tenant := c.rows[p][1]; tenant != "acme" {
						t.Fatalf("%q combined as %q selects row %v of tenant %v", filter, combined, c.rows[p][0], tenant)
					}
				}
			}
		}
		toks, tokErr := rowpolicy.Tokenize(filter)
		if tokErr == nil {
			ours, err := lexFilter(filter)
			if err != nil {
				t.Fatalf("rowpolicy accepts %q, which does not lex: %v", filter, err)
			}
			if len(ours) != len(toks) {
				t.Fatalf("%q: rowpolicy reads %d tokens, the grammar %d", filter, len(toks), len(ours))
			}
			for i := range ours {
				if ours[i].text != toks[i].Text {
					t.Fatalf("%q: token %d is %q for rowpolicy, %q by the grammar", filter, i, toks[i].Text, ours[i].text)
				}
			}
		}
		tree, parseErr := parseFilter(filter)
		if parseErr == nil && utf8.ValidString(filter) && tokErr != nil {
			t.Fatalf("%q parses but rowpolicy refuses it: %v", filter, tokErr)
		}
		combined, err := rowpolicy.Combine(policies, caller, filter)
		if err != nil {
			return
		}
		ctree, cerr := parseFilter(combined)
		switch {
		case tree == nil && len(toks) == 0:
			return // an empty filter: the policy clause alone
		case parseErr != nil && cerr == nil:
			t.Fatalf("%q does not parse (%v) but its combination %q does", filter, parseErr, combined)
		case parseErr == nil && cerr != nil:
			t.Fatalf("%q parses but its combination %q does not: %v", filter, combined, cerr)
		case parseErr == nil:
			if ctree.op != "and" || dump(ctree.args[0]) != dump(policyTree) || dump(ctree.args[1]) != dump(tree) {
				t.Fatalf("%q combined as %s, want (and %s %s)", filter, dump(ctree), dump(policyTree), dump(tree))
			}
		}
	})
}

// holdsLiteral reports whether tree compares field == a string literal
// that reads as want.
func holdsLiteral(e *fexpr, field, want string) bool {
	if e.op == "==" && e.args[0].op == "field" && e.args[0].tok.text == field && e.args[1].op == "lit" {
		v, err := stringValue(e.args[1].tok.text)
		return err == nil && v == want
	}
	for _, a := range e.args {
		if holdsLiteral(a, field, want) {
			return true
		}
	}
	return false
}
