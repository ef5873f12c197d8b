package fakemilvus

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// The fake reads filters with the grammar of Milvus 2.6.18
// (internal/parser/planparserv2/Plan.g4 at "[automated] Bump milvus
// version to v2.6.18"): this file is its lexer and parser, written from the
// grammar independently of authproxy's rowpolicy tokenizer so that each can
// check the other. It parses the whole grammar; evaluation (eval.go) covers
// part of it and refuses the rest with Milvus's error for a filter it cannot
// plan, never with a wrong answer.

// lexRule is one lexer rule of Plan.g4, in the grammar's order: ANTLR takes
// the longest match and, between equal lengths, the earlier rule. The
// implicit tokens of the parser rules ('(' ')' '[' ']' ',') come first, as
// ANTLR numbers them first.
type lexRule struct {
	name string
	re   *regexp.Regexp
	skip bool
}

var lexRules = func() []lexRule {
	const (
		esc     = `\\['"?abfnrtv\\]|\\[0-7][0-7]?[0-7]?|\\x[0-9a-fA-F]+|\\u[0-9a-fA-F]{4}|\\U[0-9a-fA-F]{8}`
		str     = `(?:u8|u|U|L)?(?:"(?:[^"\\\r\n]|` + esc + `|\\\n|\\\r\n)*"|'(?:[^'\\\r\n]|` + esc + `|\\\n|\\\r\n)*')`
		ident   = `[a-zA-Z_][a-zA-Z_0-9]*`
		decimal = `(?:[1-9][0-9]*|0)`
	)
	kw := func(w string) string { return w + "|" + strings.ToUpper(w) }
	rules := [][2]string{
		{"(", `\(`}, {")", `\)`}, {"[", `\[`}, {"]", `\]`}, {",", `,`},
		{"{", `\{`}, {"}", `\}`},
		{"<", `<`}, {"<=", `<=`}, {">", `>`}, {">=", `>=`}, {"==", `==`}, {"!=", `!=`},
		{"like", kw("like")}, {"exists", kw("exists")}, {"text_match", kw("text_match")},
		{"phrase_match", kw("phrase_match")}, {"random_sample", kw("random_sample")},
		{"interval", kw("interval")}, {"iso", kw("iso")}, {"minimum_should_match", kw("minimum_should_match")},
		{"=", `=`}, {"+", `\+`}, {"-", `-`}, {"*", `\*`}, {"/", `/`}, {"%", `%`}, {"**", `\*\*`},
		{"<<", `<<`}, {">>", `>>`}, {"&", `&`}, {"|", `\|`}, {"^", `\^`},
		{"and", `&&|and|AND`}, {"or", `\|\||or|OR`},
		{"is null", `is null|IS NULL`}, {"is not null", `is not null|IS NOT NULL`},
		{"~", `~`}, {"not", `!|not|NOT`}, {"in", kw("in")},
		{"[]", `\[[ \t\r\n]*\]`},
		{"json_contains", kw("json_contains")}, {"json_contains_all", kw("json_contains_all")}, {"json_contains_any", kw("json_contains_any")},
		{"array_contains", kw("array_contains")}, {"array_contains_all", kw("array_contains_all")}, {"array_contains_any", kw("array_contains_any")},
		{"array_length", kw("array_length")},
		{"st_equals", kw("st_equals")}, {"st_touches", kw("st_touches")}, {"st_overlaps", kw("st_overlaps")},
		{"st_crosses", kw("st_crosses")}, {"st_contains", kw("st_contains")}, {"st_intersects", kw("st_intersects")},
		{"st_within", kw("st_within")}, {"st_dwithin", kw("st_dwithin")},
		{"bool", `true|True|TRUE|false|False|FALSE`},
		{"int", `[1-9][0-9]*|0[0-7]*|0[xX][0-9a-fA-F]+|0[bB][01]+`},
		{"float", `(?:[0-9]*\.[0-9]+|[0-9]+\.)(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+|0[xX](?:[0-9a-fA-F]*\.[0-9a-fA-F]+|[0-9a-fA-F]+\.|[0-9a-fA-F]+)[pP][+-]?[0-9]+`},
		{"ident", ident}, {"$meta", `\$meta`},
		{"string", str},
		{"json", `(?:` + ident + `|\$meta)(?:\[(?:` + str + `|` + decimal + `)\])+`},
		{"ws", `[ \t]+`}, {"nl", `\r\n?|\n`},
	}
	out := make([]lexRule, len(rules))
	for i, r := range rules {
		re := regexp.MustCompile(`^(?:` + r[1] + `)`)
		re.Longest()
		out[i] = lexRule{name: r[0], re: re, skip: r[0] == "ws" || r[0] == "nl"}
	}
	return out
}()

type ftoken struct {
	kind string // the lexRule's name
	text string
}

func lexFilter(src string) ([]ftoken, error) {
	var out []ftoken
	for i := 0; i < len(src); {
		best, bestLen := -1, 0
		for r, rule := range lexRules {
			if loc := rule.re.FindStringIndex(src[i:]); loc != nil && loc[1] > bestLen {
				best, bestLen = r, loc[1]
			}
		}
		if best < 0 {
			return nil, fmt.Errorf("token recognition error at: '%s'", src[i:min(i+1, len(src))])
		}
		if !lexRules[best].skip {
			out = append(out, ftoken{kind: lexRules[best].name, text: src[i : i+bestLen]})
		}
		i += bestLen
	}
	return out, nil
}

// fexpr is a node of a parsed filter.
type fexpr struct {
	op   string   // "and", "==", "in", "not in", "like", "lit", "field", "json", "call", "array", "range", ...
	args []*fexpr // operands
	tok  ftoken   // the literal, field, JSON path, function or template name
}

// Binding powers, from Plan.g4's order of alternatives (an earlier
// alternative binds tighter): or < and < | < ^ < & < ==,!= < <,<=,>,>= <
// ranges < in < shifts < +,- < *,/,% < unary < ** < like.
var binaryPower = map[string]int{
	"or": 1, "and": 2, "|": 3, "^": 4, "&": 5, "==": 6, "!=": 6,
	"<": 7, "<=": 7, ">": 7, ">=": 7, "in": 9, "<<": 10, ">>": 10,
	"+": 11, "-": 11, "*": 12, "/": 12, "%": 12, "**": 14, "like": 15,
}

const (
	rangePower = 8
	unaryPower = 13
	existPower = 16
)

type filterParser struct {
	toks []ftoken
	i    int
}

// parseFilter parses a filter; the error is the text Milvus puts after
// "cannot parse expression: <filter>, error: ".
func parseFilter(src string) (*fexpr, error) {
	toks, err := lexFilter(src)
	if err != nil {
		return nil, err
	}
	p := &filterParser{toks: toks}
	e, err := p.expr(0)
	if err != nil {
		return nil, err
	}
	if p.i < len(toks) {
		return nil, fmt.Errorf("invalid expression: %s", src)
	}
	return e, nil
}

func (p *filterParser) peek(k int) ftoken {
	if p.i+k < len(p.toks) {
		return p.toks[p.i+k]
	}
	return ftoken{kind: "<EOF>", text: "<EOF>"}
}

func (p *filterParser) expect(kind string) error {
	if t := p.peek(0); t.kind != kind {
		return fmt.Errorf("mismatched input '%s' expecting '%s'", t.text, kind)
	}
	p.i++
	return nil
}

func (p *filterParser) expr(min int) (*fexpr, error) {
	left, err := p.primary()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek(0)
		op := t.kind
		if op == "not" && p.peek(1).kind == "in" {
			op = "not in"
		}
		// Range: expr (<|<=) field (<|<=) expr, and the same with > and >=.
		if mid, next := p.peek(1), p.peek(2); min <= rangePower && (mid.kind == "ident" || mid.kind == "json") &&
			((isLess(op) && isLess(next.kind)) || (isMore(op) && isMore(next.kind))) {
			p.i += 3
			right, err := p.expr(rangePower + 1)
			if err != nil {
				return nil, err
			}
			left = &fexpr{op: "range", tok: mid, args: []*fexpr{left, {op: op}, {op: next.kind}, right}}
			continue
		}
		power := binaryPower[op]
		if op == "not in" {
			power = binaryPower["in"]
		}
		if power == 0 || power < min {
			return left, nil
		}
		p.i++
		if op == "not in" {
			p.i++
		}
		right, err := p.expr(power + 1)
		if err != nil {
			return nil, err
		}
		left = &fexpr{op: op, args: []*fexpr{left, right}}
	}
}

func isLess(k string) bool { return k == "<" || k == "<=" }
func isMore(k string) bool { return k == ">" || k == ">=" }

func (p *filterParser) primary() (*fexpr, error) {
	t := p.peek(0)
	p.i++
	switch t.kind {
	case "int", "float", "bool", "string":
		return &fexpr{op: "lit", tok: t}, nil
	case "ident", "$meta", "json":
		if t.kind == "ident" && p.peek(0).kind == "(" {
			return p.call(t)
		}
		op := "field"
		if t.kind == "json" {
			op = "json"
		}
		e := &fexpr{op: op, tok: t}
		if k := p.peek(0).kind; (k == "is null" || k == "is not null") && t.kind != "$meta" {
			p.i++
			return &fexpr{op: k, args: []*fexpr{e}}, nil
		}
		return e, nil
	case "{":
		name := p.peek(0)
		if err := p.expect("ident"); err != nil {
			return nil, err
		}
		if err := p.expect("}"); err != nil {
			return nil, err
		}
		return &fexpr{op: "template", tok: name}, nil
	case "(":
		e, err := p.expr(0)
		if err != nil {
			return nil, err
		}
		return e, p.expect(")")
	case "[":
		arr := &fexpr{op: "array"}
		for {
			e, err := p.expr(0)
			if err != nil {
				return nil, err
			}
			arr.args = append(arr.args, e)
			if p.peek(0).kind == "," {
				p.i++
				if p.peek(0).kind == "]" {
					p.i++
					return arr, nil
				}
				continue
			}
			return arr, p.expect("]")
		}
	case "[]":
		return &fexpr{op: "array"}, nil
	case "exists":
		e, err := p.expr(existPower)
		return &fexpr{op: "exists", args: []*fexpr{e}}, err
	case "+", "-", "~", "not":
		e, err := p.expr(unaryPower)
		return &fexpr{op: "unary " + t.kind, args: []*fexpr{e}}, err
	case "text_match", "phrase_match", "random_sample", "json_contains", "json_contains_all", "json_contains_any",
		"array_contains", "array_contains_all", "array_contains_any", "array_length", "st_equals", "st_touches",
		"st_overlaps", "st_crosses", "st_contains", "st_intersects", "st_within", "st_dwithin":
		return p.call(t)
	}
	if t.kind == "<EOF>" {
		return nil, errors.New("mismatched input '<EOF>'")
	}
	return nil, fmt.Errorf("extraneous input '%s'", t.text)
}

// call reads the parenthesised arguments of a function-like form; the
// grammar's finer rules (which argument must be an identifier) are
// checked only as far as evaluation goes, which refuses every call.
func (p *filterParser) call(name ftoken) (*fexpr, error) {
	if err := p.expect("("); err != nil {
		return nil, err
	}
	c := &fexpr{op: "call", tok: name}
	if p.peek(0).kind == ")" {
		p.i++
		return c, nil
	}
	for {
		if p.peek(0).kind == "minimum_should_match" && p.peek(1).kind == "=" {
			p.i += 2
			n := p.peek(0)
			if err := p.expect("int"); err != nil {
				return nil, err
			}
			c.args = append(c.args, &fexpr{op: "option", tok: n})
		} else {
			e, err := p.expr(0)
			if err != nil {
				return nil, err
			}
			c.args = append(c.args, e)
		}
		if p.peek(0).kind != "," {
			return c, p.expect(")")
		}
		p.i++
		if p.peek(0).kind == ")" {
			p.i++
			return c, nil
		}
	}
}

// stringValue reads a StringLiteral as Milvus 2.6.18's VisitString does:
// convertEscapeSingle (a `"` that no backslash escapes gains one, `\'`
// loses its backslash, the literal becomes double-quoted) and then
// strconv.Unquote.
func stringValue(lit string) (string, error) {
	if lit[0] != '"' && lit[0] != '\'' {
		return "", fmt.Errorf("fakemilvus does not read encoding prefixes: %s", lit)
	}
	body := lit[1 : len(lit)-1]
	var b strings.Builder
	b.WriteByte('"')
	odd := false // after an odd run of backslashes
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case c == '\\':
			b.WriteByte(c)
			odd = !odd
			continue
		case c == '"' && !odd:
			b.WriteString(`\"`)
		case c == '\'' && odd:
			s := b.String()[:b.Len()-1]
			b.Reset()
			b.WriteString(s + "'")
		default:
			b.WriteByte(c)
		}
		odd = false
	}
	b.WriteByte('"')
	return strconv.Unquote(b.String())
}
