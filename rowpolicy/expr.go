package rowpolicy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Expr is a compiled policy expression (using_expr or check_expr). Policy
// expressions are a restricted form of Milvus's filters, the one the row
// security design of milvus#50263 evaluates locally: comparisons (==, !=,
// <, <=, >, >=) between a top-level field and a literal or a
// $current_user_* variable, `field [not] in [values]`, and, or, not (of a
// parenthesised expression, as Milvus binds `not` tighter than comparisons),
// parentheses, and `true` or `false` standing alone. No templates: a
// caller's expr_template_values can then never fill in part of a policy.
type Expr struct {
	root node // nil for a constant
	// constant is the value of a policy that is just `true` or `false`.
	constant bool
}

type node interface{ isNode() }

type logical struct {
	op   string // "and" or "or"
	l, r node
}

type negation struct{ x node }

// comparison is `field op value`; a value written on the left is moved to
// the right with its operator flipped.
type comparison struct {
	field string
	op    string
	value operand
}

type membership struct {
	field  string
	negate bool
	values []operand
}

// operand is a literal token, or a $current_user_* variable; lit is the
// literal's value, read once when the expression is compiled.
type operand struct {
	tok Token
	lit any
}

func (logical) isNode()    {}
func (negation) isNode()   {}
func (comparison) isNode() {}
func (membership) isNode() {}

// Compile parses a policy expression. The error names what is not allowed
// and where.
func Compile(src string) (*Expr, error) {
	toks, err := lex(src, true)
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		return nil, errors.New("expression is empty")
	}
	toks = signedNumbers(toks)
	if len(toks) == 1 && toks[0].Kind == Bool {
		return &Expr{constant: booleans[toks[0].Text]}, nil
	}
	p := &policyParser{toks: toks}
	root, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.i < len(toks) {
		return nil, p.errorf("unexpected %q", toks[p.i].Text)
	}
	return &Expr{root: root}, nil
}

// signedNumbers joins a unary + or - to the number it signs: policies have
// no arithmetic, so a sign before a number is always unary, and Milvus
// folds `-1` (Unary minus of IntegerConstant 1) to the constant -1.
func signedNumbers(toks []Token) []Token {
	out := toks[:0:0]
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.Kind == Punct && (t.Op == "-" || t.Op == "+") && i+1 < len(toks) && (toks[i+1].Kind == Integer || toks[i+1].Kind == Float) {
			n := toks[i+1]
			if t.Op == "-" {
				n.Text = "-" + n.Text
			}
			n.Pos = t.Pos
			out = append(out, n)
			i++
			continue
		}
		out = append(out, t)
	}
	return out
}

type policyParser struct {
	toks []Token
	i    int
}

func (p *policyParser) peek() (Token, bool) {
	if p.i < len(p.toks) {
		return p.toks[p.i], true
	}
	return Token{}, false
}

func (p *policyParser) errorf(format string, args ...any) error {
	at := "at the end"
	if t, ok := p.peek(); ok {
		at = fmt.Sprintf("at offset %d", t.Pos)
	}
	return fmt.Errorf("%s: %s", at, fmt.Sprintf(format, args...))
}

func (p *policyParser) accept(op string) bool {
	if t, ok := p.peek(); ok && (t.Kind == Keyword || t.Kind == Punct) && t.Op == op {
		p.i++
		return true
	}
	return false
}

func (p *policyParser) or() (node, error) { return p.chain("or", p.and) }

func (p *policyParser) and() (node, error) { return p.chain("and", p.unary) }

// chain reads operands joined by op, left-associative.
func (p *policyParser) chain(op string, operand func() (node, error)) (node, error) {
	l, err := operand()
	for err == nil && p.accept(op) {
		var r node
		if r, err = operand(); err == nil {
			l = logical{op: op, l: l, r: r}
		}
	}
	return l, err
}

func (p *policyParser) unary() (node, error) {
	if p.accept("not") {
		if t, ok := p.peek(); !ok || t.Op != "(" {
			return nil, p.errorf("not must be followed by a parenthesised expression (Milvus binds not tighter than comparisons)")
		}
		x, err := p.unary()
		return negation{x: x}, err
	}
	if p.accept("(") {
		x, err := p.or()
		if err != nil {
			return nil, err
		}
		if !p.accept(")") {
			return nil, p.errorf("missing )")
		}
		return x, nil
	}
	return p.predicate()
}

var flipped = map[string]string{"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}

func (p *policyParser) predicate() (node, error) {
	left, ok := p.peek()
	if !ok {
		return nil, p.errorf("expression ends early")
	}
	p.i++
	if left.Kind == Ident {
		negate := p.accept("not")
		if p.accept("in") {
			return p.list(left.Text, negate)
		}
		if negate {
			return nil, p.errorf("expected in after not")
		}
	}
	opTok, ok := p.peek()
	if !ok || opTok.Kind != Punct || flipped[opTok.Op] == "" {
		return nil, p.errorf("expected a comparison (==, !=, <, <=, >, >=) or in after %q", left.Text)
	}
	p.i++
	right, ok := p.peek()
	if !ok {
		return nil, p.errorf("expression ends early")
	}
	p.i++
	switch {
	case left.Kind == Ident && isValue(right):
		v, err := newOperand(right)
		return comparison{field: left.Text, op: opTok.Op, value: v}, err
	case isValue(left) && right.Kind == Ident:
		v, err := newOperand(left)
		return comparison{field: right.Text, op: flipped[opTok.Op], value: v}, err
	}
	return nil, fmt.Errorf("at offset %d: a comparison is between a top-level field and a literal or $current_user_* (JSON paths, field-to-field and arithmetic are not allowed in policies)", left.Pos)
}

func (p *policyParser) list(field string, negate bool) (node, error) {
	if t, ok := p.peek(); ok && t.Kind == EmptyArray {
		p.i++
		return membership{field: field, negate: negate}, nil
	}
	if !p.accept("[") {
		return nil, p.errorf("expected [ after in")
	}
	m := membership{field: field, negate: negate}
	for {
		t, ok := p.peek()
		if !ok || !isValue(t) {
			return nil, p.errorf("expected a literal or $current_user_* in the list")
		}
		p.i++
		v, err := newOperand(t)
		if err != nil {
			return nil, err
		}
		m.values = append(m.values, v)
		if p.accept("]") {
			return m, nil
		}
		if !p.accept(",") {
			return nil, p.errorf("expected , or ] in the list")
		}
		if p.accept("]") { // Plan.g4 allows a trailing comma
			return m, nil
		}
	}
}

func isValue(t Token) bool {
	switch t.Kind {
	case String:
		// Milvus reads an encoding prefix into the value (convertEscapeSingle
		// sees `u8"..."`), so a prefixed literal would not mean what it says.
		return t.Text[0] == '"' || t.Text[0] == '\''
	case Integer, Float, Bool, UserName, UserTag:
		return true
	}
	return false
}

// errMissingTag marks a policy that reads a tag the caller does not have:
// the design makes such a predicate false, wrapped in not or not.
var errMissingTag = errors.New("missing tag")

// render writes n with the caller's values in place of the variables,
// fully parenthesised.
func render(b *strings.Builder, n node, c Caller) error {
	switch n := n.(type) {
	case logical:
		b.WriteByte('(')
		if err := render(b, n.l, c); err != nil {
			return err
		}
		b.WriteString(") " + n.op + " (")
		if err := render(b, n.r, c); err != nil {
			return err
		}
		b.WriteByte(')')
	case negation:
		b.WriteString("not (")
		if err := render(b, n.x, c); err != nil {
			return err
		}
		b.WriteByte(')')
	case comparison:
		b.WriteString(n.field + " " + n.op + " ")
		return n.value.render(b, c)
	case membership:
		b.WriteString(n.field)
		if n.negate {
			b.WriteString(" not")
		}
		b.WriteString(" in [")
		for i, v := range n.values {
			if i > 0 {
				b.WriteString(", ")
			}
			if err := v.render(b, c); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	}
	return nil
}

func (o operand) render(b *strings.Builder, c Caller) error {
	switch o.tok.Kind {
	case UserName:
		b.WriteString(Quote(c.Name))
	case UserTag:
		v, ok := c.Tags[o.tok.Key]
		if !ok {
			return errMissingTag
		}
		b.WriteString(Quote(v))
	default:
		b.WriteString(o.tok.Text)
	}
	return nil
}

// Quote writes s as a Milvus string literal that reads back as s.
//
// Milvus 2.6.18 reads a StringLiteral with convertEscapeSingle
// (internal/parser/planparserv2/utils.go): it rewrites the literal into a
// double-quoted one (an unescaped `"` gains a backslash, `\'` loses its
// backslash) and hands it to Go's strconv.Unquote. strconv.Quote's output
// is a double-quoted literal whose every `"` is already escaped and which
// never holds `\'`, so convertEscapeSingle leaves it as it is and Unquote
// returns s. Its escapes (\\ \" \a \b \f \n \r \t \v \xHH \uHHHH
// \UHHHHHHHH) are all EscapeSequences of Plan.g4, and it writes no raw CR
// or LF, so the lexer reads it as one StringLiteral.
func Quote(s string) string { return strconv.Quote(s) }

// decodeString reads a StringLiteral token's value as Milvus 2.6.18 does
// (convertEscapeSingle, then strconv.Unquote).
func decodeString(lit string) (string, error) {
	if len(lit) < 2 || (lit[0] != '"' && lit[0] != '\'') {
		return "", fmt.Errorf("string literal %s has an encoding prefix, which Milvus does not read as one", lit)
	}
	var b strings.Builder
	b.WriteByte('"')
	backslashes := 0
	body := lit[1 : len(lit)-1]
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c == '\\':
			backslashes++
			b.WriteByte(c)
			continue
		case c == '"' && backslashes%2 == 0:
			b.WriteString(`\"`)
		case c == '\'' && backslashes%2 == 1:
			s := b.String()
			b.Reset()
			b.WriteString(s[:len(s)-1]) // drop the backslash before '
			b.WriteByte('\'')
		default:
			b.WriteByte(c)
		}
		backslashes = 0
	}
	b.WriteByte('"')
	v, err := strconv.Unquote(b.String())
	if err != nil {
		return "", fmt.Errorf("string literal %s does not unquote: %w", lit, err)
	}
	return v, nil
}
