package rowpolicy

import (
	"strings"
	"testing"
)

// FuzzCombine: whatever the caller's filter, a combined filter is the
// policy clause in one pair of parentheses, `and`, and the filter in
// another, at the top level of the token stream; and a filter that is
// accepted tokenises back into the same tokens inside the combination.
// The differential check against a parser of the grammar is
// test/fakemilvus's FuzzCombinedFilter.
func FuzzCombine(f *testing.F) {
	for _, s := range []string{"", "id in [1, 2]", "x) or (1==1", `tenant == "a\") or (\"`, "{a} == b", "a[\"k\"][0] > 1",
		"not (x == 1) and y like 'a%'", "$meta['k'] == 1", "'\\u4e2d' == s", "x is not null", "[ ] == a"} {
		f.Add(s)
	}
	policies := []Policy{tenantPolicy(f), {Name: "own", Using: mustCompile(f, "owner == $current_user_name")}}
	caller := Caller{Name: `mal"lory) or (1==1`, Tags: map[string]string{"tenant": `x' or '1'=='1`}}
	f.Fuzz(func(t *testing.T, filter string) {
		combined, err := Combine(policies, caller, filter)
		if err != nil {
			return
		}
		toks, err := lex(combined, false)
		if err != nil {
			t.Fatalf("combined %q does not tokenise: %v", combined, err)
		}
		inner, _ := Tokenize(filter)
		if len(inner) == 0 {
			return
		}
		// ( policy ) and ( filter ): the first parenthesis closes right
		// before the `and`, and the rest is the filter's tokens.
		depth, end := 0, -1
		for i, tk := range toks {
			if tk.Kind == Punct && tk.Op == "(" {
				depth++
			}
			if tk.Kind == Punct && tk.Op == ")" {
				depth--
				if depth == 0 {
					end = i
					break
				}
			}
		}
		if end < 0 || end+2 >= len(toks) || toks[end+1].Op != "and" || toks[end+2].Op != "(" || toks[len(toks)-1].Op != ")" {
			t.Fatalf("combined %q is not (policy) and (filter)", combined)
		}
		rest := toks[end+3 : len(toks)-1]
		if len(rest) != len(inner) {
			t.Fatalf("filter %q became %d tokens in %q, had %d", filter, len(rest), combined, len(inner))
		}
		for i := range rest {
			if rest[i].Text != inner[i].Text || rest[i].Kind != inner[i].Kind {
				t.Fatalf("filter token %d %q became %q", i, inner[i].Text, rest[i].Text)
			}
		}
		if !strings.HasPrefix(combined, "((") {
			t.Fatalf("combined %q does not open with the policy", combined)
		}
	})
}
