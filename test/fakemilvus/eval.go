package fakemilvus

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/milvus-io/milvus-proto/go-api/v2/schemapb"
)

// match returns the positions of the rows a filter selects, in row order.
// An empty filter selects every row. The filter is parsed by Milvus's
// grammar (filter.go) and evaluated for: and, or, not, parentheses,
// comparisons and ranges, in and not in with a list, like, is [not] null,
// on schema fields of scalar types, JSON fields and dynamic fields ($meta,
// or a name that is not in the schema), with integer, float, bool and
// string literals. Anything else is refused with the error Milvus's query
// and search tasks give for a filter they cannot plan (ParameterInvalid,
// "failed to create query plan: cannot parse expression: ...").
func (c *collection) match(expr string) ([]int, error) {
	if strings.TrimSpace(expr) == "" {
		out := make([]int, len(c.rows))
		for i := range out {
			out[i] = i
		}
		return out, nil
	}
	refuse := func(err error) error {
		return fmt.Errorf("failed to create query plan: cannot parse expression: %s, error: %s", expr, err)
	}
	tree, err := parseFilter(expr)
	if err != nil {
		return nil, refuse(err)
	}
	pred, err := c.predicate(tree)
	if err != nil {
		return nil, refuse(err)
	}
	var out []int
	for i, r := range c.rows {
		if pred(r) {
			out = append(out, i)
		}
	}
	return out, nil
}

// operandFn reads one side of a comparison from a row: a Go value (bool,
// int64, float64, string, or a JSON value) and whether it is there at all
// (a missing dynamic key or JSON path, a null).
type operandFn func(row []any) (any, bool)

// predicate compiles a boolean node; errors are found before any row is
// read, as Milvus plans before it executes.
func (c *collection) predicate(e *fexpr) (func(row []any) bool, error) {
	switch e.op {
	case "and", "or":
		l, err := c.predicate(e.args[0])
		if err != nil {
			return nil, err
		}
		r, err := c.predicate(e.args[1])
		if err != nil {
			return nil, err
		}
		if e.op == "and" {
			return func(row []any) bool { return l(row) && r(row) }, nil
		}
		return func(row []any) bool { return l(row) || r(row) }, nil
	case "unary not":
		x, err := c.predicate(e.args[0])
		if err != nil {
			return nil, err
		}
		return func(row []any) bool { return !x(row) }, nil
	case "==", "!=", "<", "<=", ">", ">=":
		return c.comparison(e.args[0], e.op, e.args[1])
	case "range":
		lo, err := c.comparison(e.args[0], e.args[1].op, &fexpr{op: fieldOp(e.tok), tok: e.tok})
		if err != nil {
			return nil, err
		}
		hi, err := c.comparison(&fexpr{op: fieldOp(e.tok), tok: e.tok}, e.args[2].op, e.args[3])
		if err != nil {
			return nil, err
		}
		return func(row []any) bool { return lo(row) && hi(row) }, nil
	case "in", "not in":
		return c.membership(e)
	case "like":
		return c.like(e)
	case "is null", "is not null":
		v, _, err := c.operand(e.args[0])
		if err != nil {
			return nil, err
		}
		want := e.op == "is null"
		return func(row []any) bool {
			x, ok := v(row)
			return (!ok || x == nil) == want
		}, nil
	case "field", "json":
		v, typ, err := c.operand(e)
		if err != nil {
			return nil, err
		}
		if typ != schemapb.DataType_Bool && typ != schemapb.DataType_JSON {
			return nil, fmt.Errorf("%s is not a boolean expression", e.tok.text)
		}
		return func(row []any) bool { x, ok := v(row); b, isBool := x.(bool); return ok && isBool && b }, nil
	}
	return nil, fmt.Errorf("fakemilvus does not evaluate %s", describe(e))
}

func fieldOp(t ftoken) string {
	if t.kind == "json" {
		return "json"
	}
	return "field"
}

func describe(e *fexpr) string {
	switch e.op {
	case "call":
		return "the function " + e.tok.text
	case "template":
		return "template {" + e.tok.text + "} (expr_template_values)"
	case "lit":
		return "a constant filter " + e.tok.text
	}
	return "operator " + strings.TrimPrefix(e.op, "unary ")
}

// operand compiles a value node: a field, a JSON path or a literal. typ is
// the schema type, DataType_JSON for JSON values, DataType_None for a
// literal.
func (c *collection) operand(e *fexpr) (operandFn, schemapb.DataType, error) {
	switch e.op {
	case "lit":
		v, err := literal(e.tok)
		if err != nil {
			return nil, 0, err
		}
		return func([]any) (any, bool) { return v, true }, schemapb.DataType_None, nil
	case "unary -", "unary +":
		if inner := e.args[0]; inner.op == "lit" && (inner.tok.kind == "int" || inner.tok.kind == "float") {
			v, err := literal(inner.tok)
			if err != nil {
				return nil, 0, err
			}
			if e.op == "unary -" {
				switch n := v.(type) {
				case int64:
					v = -n
				case float64:
					v = -n
				}
			}
			return func([]any) (any, bool) { return v, true }, schemapb.DataType_None, nil
		}
	case "field", "json":
		return c.column(e.tok)
	}
	return nil, 0, fmt.Errorf("fakemilvus does not evaluate %s as a value", describe(e))
}

func literal(t ftoken) (any, error) {
	switch t.kind {
	case "int":
		return strconv.ParseInt(t.text, 0, 64) // Milvus's VisitInteger
	case "float":
		return strconv.ParseFloat(t.text, 64)
	case "bool":
		return strings.EqualFold(t.text, "true"), nil
	case "string":
		return stringValue(t.text)
	}
	return nil, fmt.Errorf("%s is not a literal", t.text)
}

// column resolves a field name or JSON path as Milvus's
// GetFieldFromNameDefaultJSON does: a schema field, else a key of the
// dynamic field.
func (c *collection) column(t ftoken) (operandFn, schemapb.DataType, error) {
	name, path := t.text, []string(nil)
	if t.kind == "json" {
		var err error
		name, path, err = jsonPath(t.text)
		if err != nil {
			return nil, 0, err
		}
	}
	col, ok := c.idx[name]
	if !ok || name == dynamicField {
		dyn, hasDynamic := c.idx[dynamicField]
		if !hasDynamic {
			return nil, 0, fmt.Errorf("field %s not exist", name)
		}
		if name != dynamicField {
			path = append([]string{name}, path...)
		}
		return jsonOperand(dyn, path), schemapb.DataType_JSON, nil
	}
	f := c.cols[col]
	switch typ := f.GetDataType(); typ {
	case schemapb.DataType_JSON:
		return jsonOperand(col, path), typ, nil
	case schemapb.DataType_Bool, schemapb.DataType_Int8, schemapb.DataType_Int16, schemapb.DataType_Int32,
		schemapb.DataType_Int64, schemapb.DataType_Float, schemapb.DataType_Double,
		schemapb.DataType_String, schemapb.DataType_VarChar:
		if path != nil {
			return nil, 0, fmt.Errorf("%s data type not supported accessed with []", typ)
		}
		return func(row []any) (any, bool) {
			switch v := row[col].(type) {
			case int32:
				return int64(v), true
			case float32:
				return float64(v), true
			case nil:
				return nil, false
			default:
				return v, true
			}
		}, typ, nil
	default:
		return nil, 0, fmt.Errorf("fakemilvus does not filter on field %s of type %s", name, typ)
	}
}

// jsonPath splits `name["a"][0]` as Milvus's getColumnInfoFromJSONIdentifier
// does: the keys between quotes are taken as written, not unescaped.
func jsonPath(text string) (string, []string, error) {
	name := text[:strings.IndexByte(text, '[')]
	var path []string
	for _, p := range strings.Split(text[len(name):], "][") {
		p = strings.Trim(p, "[]")
		if len(p) >= 2 && (p[0] == '"' || p[0] == '\'') {
			p = p[1 : len(p)-1]
			if p == "" {
				return "", nil, fmt.Errorf("invalid identifier: %s", text)
			}
		} else if _, err := strconv.ParseInt(p, 10, 64); err != nil {
			return "", nil, fmt.Errorf("json key must be enclosed in double quotes or single quotes: \"%s\"", p)
		}
		path = append(path, p)
	}
	return name, path, nil
}

func jsonOperand(col int, path []string) operandFn {
	return func(row []any) (any, bool) {
		b, _ := row[col].([]byte)
		var v any
		if json.Unmarshal(b, &v) != nil {
			return nil, false
		}
		for _, k := range path {
			switch m := v.(type) {
			case map[string]any:
				var ok bool
				if v, ok = m[k]; !ok {
					return nil, false
				}
			case []any:
				i, err := strconv.Atoi(k)
				if err != nil || i < 0 || i >= len(m) {
					return nil, false
				}
				v = m[i]
			default:
				return nil, false
			}
		}
		if f, ok := v.(float64); ok && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f), true // JSON integers compare as integers
		}
		return v, true
	}
}

// comparison compiles `l op r`, one side a column and the other a literal,
// or two columns. A schema field compared with a literal of another kind
// is a planning error, as in Milvus; a JSON value of another kind is false.
func (c *collection) comparison(le *fexpr, op string, re *fexpr) (func(row []any) bool, error) {
	l, lt, err := c.operand(le)
	if err != nil {
		return nil, err
	}
	r, rt, err := c.operand(re)
	if err != nil {
		return nil, err
	}
	if lt == schemapb.DataType_None && rt == schemapb.DataType_None {
		return nil, fmt.Errorf("fakemilvus does not evaluate a comparison of two constants")
	}
	if err := typesAgree(lt, le, rt, re); err != nil {
		return nil, err
	}
	return func(row []any) bool {
		a, okA := l(row)
		b, okB := r(row)
		if !okA || !okB {
			return false
		}
		return compareValues(a, op, b)
	}, nil
}

func kindOf(t schemapb.DataType) string {
	switch t {
	case schemapb.DataType_Bool:
		return "bool"
	case schemapb.DataType_Int8, schemapb.DataType_Int16, schemapb.DataType_Int32, schemapb.DataType_Int64,
		schemapb.DataType_Float, schemapb.DataType_Double:
		return "number"
	case schemapb.DataType_String, schemapb.DataType_VarChar:
		return "string"
	}
	return ""
}

func literalKind(e *fexpr) string {
	if e.op != "lit" {
		return "number" // a negated number
	}
	switch e.tok.kind {
	case "int", "float":
		return "number"
	case "bool":
		return "bool"
	}
	return "string"
}

func typesAgree(lt schemapb.DataType, le *fexpr, rt schemapb.DataType, re *fexpr) error {
	lk, rk := kindOf(lt), kindOf(rt)
	switch {
	case lt == schemapb.DataType_None:
		lk = literalKind(le)
	case rt == schemapb.DataType_None:
		rk = literalKind(re)
	}
	if lk != "" && rk != "" && lk != rk {
		return fmt.Errorf("comparisons between %s and %s are not supported", lk, rk)
	}
	return nil
}

func compareValues(a any, op string, b any) bool {
	var c int
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		if !ok {
			return false
		}
		c = strings.Compare(x, y)
	case bool:
		y, ok := b.(bool)
		if !ok || (op != "==" && op != "!=") {
			return false
		}
		if x != y {
			c = 1
		}
	case int64, float64:
		xf, xi, xIsInt := number(x)
		yf, yi, yIsInt := number(b)
		switch {
		case xIsInt && yIsInt:
			c = cmpOrdered(xi, yi)
		case isNumber(b):
			c = cmpOrdered(xf, yf)
		default:
			return false
		}
	default:
		return false
	}
	switch op {
	case "==":
		return c == 0
	case "!=":
		return c != 0
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	case ">=":
		return c >= 0
	}
	return false
}

func isNumber(v any) bool {
	switch v.(type) {
	case int64, float64:
		return true
	}
	return false
}

func number(v any) (float64, int64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), n, true
	case float64:
		return n, 0, false
	}
	return 0, 0, false
}

func cmpOrdered[T int64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// membership compiles `x [not] in [literals]`.
func (c *collection) membership(e *fexpr) (func(row []any) bool, error) {
	v, typ, err := c.operand(e.args[0])
	if err != nil {
		return nil, err
	}
	list := e.args[1]
	if list.op != "array" {
		return nil, fmt.Errorf("the right-hand side of 'in' must be a list")
	}
	var want []any
	for _, item := range list.args {
		w, wt, err := c.operand(item)
		if err != nil || wt != schemapb.DataType_None {
			return nil, fmt.Errorf("the values of 'in' must be constants")
		}
		if err := typesAgree(typ, e.args[0], wt, item); err != nil {
			return nil, err
		}
		x, _ := w(nil)
		want = append(want, x)
	}
	negate := e.op == "not in"
	return func(row []any) bool {
		x, ok := v(row)
		if !ok {
			return false
		}
		for _, w := range want {
			if compareValues(x, "==", w) {
				return !negate
			}
		}
		return negate
	}, nil
}

// like compiles `x like "pattern"`: % is any run of characters, _ one
// character, and a backslash escapes either.
func (c *collection) like(e *fexpr) (func(row []any) bool, error) {
	v, typ, err := c.operand(e.args[0])
	if err != nil {
		return nil, err
	}
	if k := kindOf(typ); typ != schemapb.DataType_JSON && k != "string" {
		return nil, fmt.Errorf("like operation on non-string or no-json field is unsupported")
	}
	pat := e.args[1]
	if pat.op != "lit" || pat.tok.kind != "string" {
		return nil, fmt.Errorf("pattern of like must be a string")
	}
	p, err := stringValue(pat.tok.text)
	if err != nil {
		return nil, err
	}
	var re strings.Builder
	re.WriteString(`^(?s:`)
	runes := []rune(p)
	for i := 0; i < len(runes); i++ {
		switch ch := runes[i]; {
		case ch == '\\' && i+1 < len(runes) && (runes[i+1] == '%' || runes[i+1] == '_'):
			re.WriteString(regexp.QuoteMeta(string(runes[i+1])))
			i++
		case ch == '%':
			re.WriteString(`.*`)
		case ch == '_':
			re.WriteString(`.`)
		default:
			re.WriteString(regexp.QuoteMeta(string(ch)))
		}
	}
	re.WriteString(`)$`)
	rx, err := regexp.Compile(re.String())
	if err != nil {
		return nil, err
	}
	return func(row []any) bool {
		x, ok := v(row)
		s, isString := x.(string)
		return ok && isString && rx.MatchString(s)
	}, nil
}
