package rowpolicy

import (
	"errors"
	"fmt"
	"strings"
)

// Caller is who a request acts for, as policies see it.
type Caller struct {
	Name string            // $current_user_name
	Tags map[string]string // $current_user_tags['key']
}

// Policy is one row policy that applies to the caller for the action at
// hand; which ones apply (roles, actions, bypass) is the store's decision.
type Policy struct {
	Name string
	// Restrictive policies are AND-ed with the others; permissive ones
	// (the default) are OR-ed, and at least one must apply.
	Restrictive bool
	Using       *Expr // reads and deletes; nil if the policy has none
	Check       *Expr // inserts and upserts; nil if the policy has none
}

// ErrNoRows is Combine's answer when no row can match: no permissive
// policy applies, or a restrictive one is false for this caller. The caller
// answers with no rows instead of forwarding.
var ErrNoRows = errors.New("no row policy grants access")

// FilterError is a caller's filter refused before combining.
type FilterError struct{ Reason string }

func (e *FilterError) Error() string { return "filter refused: " + e.Reason }

// Tokenize splits a caller's filter into Milvus's tokens and refuses one
// that does not tokenise, whose ( [ { do not balance, or that names
// $current_user_*. What it accepts cannot reach outside the parentheses
// Combine puts around it: its brackets pair among themselves and every
// quote, escape and path lies inside one token.
func Tokenize(filter string) ([]Token, error) {
	toks, err := lex(filter, false)
	if err != nil {
		return nil, &FilterError{Reason: err.Error()}
	}
	var open []Token
	for _, t := range toks {
		if t.Kind != Punct {
			continue
		}
		switch t.Op {
		case "(", "[", "{":
			open = append(open, t)
		case ")", "]", "}":
			want := map[string]string{")": "(", "]": "[", "}": "{"}[t.Op]
			if len(open) == 0 || open[len(open)-1].Op != want {
				return nil, &FilterError{Reason: fmt.Sprintf("at offset %d: %q closes nothing open", t.Pos, t.Text)}
			}
			open = open[:len(open)-1]
		}
	}
	if len(open) > 0 {
		t := open[len(open)-1]
		return nil, &FilterError{Reason: fmt.Sprintf("at offset %d: %q is never closed", t.Pos, t.Text)}
	}
	return toks, nil
}

// Combine returns the filter to send to Milvus for a read or a delete:
//
//	(<permissive using_exprs OR-ed> and <restrictive ones AND-ed>) and (<filter>)
//
// with the caller's name and tags written in as string literals. A policy
// that reads a tag the caller lacks is false; a policy whose using_expr is
// `true` drops out. It returns ErrNoRows when nothing can match, and a
// *FilterError when the filter is refused (see Tokenize).
func Combine(policies []Policy, c Caller, filter string) (string, error) {
	toks, err := Tokenize(filter)
	if err != nil {
		return "", err
	}
	policy, err := usingClause(policies, c)
	if err != nil {
		return "", err
	}
	switch {
	case policy == "":
		return filter, nil
	case len(toks) == 0:
		return "(" + policy + ")", nil
	}
	return "(" + policy + ") and (" + filter + ")", nil
}

// usingClause renders the policies' combined using_expr; "" when they
// allow every row.
func usingClause(policies []Policy, c Caller) (string, error) {
	var permissive, restrictive []string
	anyPermissive, allRows := false, false
	for _, p := range policies {
		if p.Using == nil {
			continue
		}
		text, always, never := p.Using.renderFor(c)
		switch {
		case p.Restrictive && never:
			return "", ErrNoRows
		case p.Restrictive && !always:
			restrictive = append(restrictive, text)
		case !p.Restrictive && always:
			anyPermissive, allRows = true, true
		case !p.Restrictive && !never:
			anyPermissive = true
			permissive = append(permissive, text)
		}
	}
	if !anyPermissive {
		return "", ErrNoRows
	}
	var parts []string
	if !allRows {
		// The group needs its own parentheses: `and` binds tighter than
		// `or`, so `(p1) or (p2) and (r)` would let p1 past r.
		group := "(" + strings.Join(permissive, ") or (") + ")"
		if len(permissive) > 1 {
			group = "(" + group + ")"
		}
		parts = append(parts, group)
	}
	for _, r := range restrictive {
		parts = append(parts, "("+r+")")
	}
	return strings.Join(parts, " and "), nil
}

// renderFor writes the expression for caller c; always and never report a
// constant outcome (`true`, `false`, or a tag c lacks) instead of text.
func (e *Expr) renderFor(c Caller) (text string, always, never bool) {
	if e.root == nil {
		return "", e.constant, !e.constant
	}
	var b strings.Builder
	if err := render(&b, e.root, c); err != nil {
		return "", false, true
	}
	return b.String(), false, false
}
