package rowpolicy

import (
	"fmt"
	"strconv"

	"github.com/milvus-io/milvus-proto/go-api/v2/schemapb"
)

// Violation is a written row that the policies refuse.
type Violation struct {
	Row int // position in the request
	// Policy is the restrictive policy the row fails, or "" when it
	// satisfies no permissive policy.
	Policy string
}

// Check evaluates the check_exprs of the policies that apply to an insert
// or upsert on its rows, as the design evaluates them in the proxy: a row
// passes when one permissive check_expr and every restrictive one is TRUE.
// NULL makes a comparison UNKNOWN, and only TRUE admits a row (SQL's
// three-valued logic). A policy reading a tag the caller lacks is false.
// It returns the rows that fail, in order; an error when a policy names a
// field the request does not carry.
func Check(policies []Policy, c Caller, fields []*schemapb.FieldData, numRows int) ([]Violation, error) {
	cols, err := columnsOf(fields, numRows)
	if err != nil {
		return nil, err
	}
	var out []Violation
	for row := range numRows {
		granted := false
		refusedBy := ""
		for _, p := range policies {
			if p.Check == nil {
				continue
			}
			v, err := p.Check.eval(row, cols, c)
			if err != nil {
				return nil, fmt.Errorf("policy %q: %w", p.Name, err)
			}
			if p.Restrictive && v != yes && refusedBy == "" {
				refusedBy = p.Name
			}
			if !p.Restrictive && v == yes {
				granted = true
			}
		}
		switch {
		case refusedBy != "":
			out = append(out, Violation{Row: row, Policy: refusedBy})
		case !granted:
			out = append(out, Violation{Row: row})
		}
	}
	return out, nil
}

type truth int

const (
	no truth = iota
	yes
	unknown
)

func (e *Expr) eval(row int, cols map[string]column, c Caller) (truth, error) {
	if e.root == nil {
		if e.constant {
			return yes, nil
		}
		return no, nil
	}
	v, err := evalNode(e.root, row, cols, c)
	if err == errMissingTag {
		return no, nil
	}
	return v, err
}

func evalNode(n node, row int, cols map[string]column, c Caller) (truth, error) {
	switch n := n.(type) {
	case logical:
		l, err := evalNode(n.l, row, cols, c)
		if err != nil {
			return no, err
		}
		r, err := evalNode(n.r, row, cols, c)
		if err != nil {
			return no, err
		}
		if n.op == "and" {
			switch {
			case l == no || r == no:
				return no, nil
			case l == yes && r == yes:
				return yes, nil
			}
			return unknown, nil
		}
		switch {
		case l == yes || r == yes:
			return yes, nil
		case l == no && r == no:
			return no, nil
		}
		return unknown, nil
	case negation:
		x, err := evalNode(n.x, row, cols, c)
		switch x {
		case yes:
			return no, err
		case no:
			return yes, err
		}
		return unknown, err
	case comparison:
		f, null, err := fieldValue(cols, n.field, row)
		if err != nil || null {
			return unknown, err
		}
		v, err := n.value.value(c)
		if err != nil {
			return no, err
		}
		return compare(f, n.op, v), nil
	case membership:
		f, null, err := fieldValue(cols, n.field, row)
		if err != nil || null {
			return unknown, err
		}
		found := false
		for _, o := range n.values {
			v, err := o.value(c)
			if err != nil {
				return no, err
			}
			found = found || compare(f, "==", v) == yes
		}
		if found != n.negate {
			return yes, nil
		}
		return no, nil
	}
	return no, fmt.Errorf("unknown expression node %T", n)
}

// newOperand reads a literal's value as Milvus would; a literal Milvus
// cannot read makes the policy invalid.
func newOperand(t Token) (operand, error) {
	var v any
	var err error
	switch t.Kind {
	case String:
		v, err = decodeString(t.Text)
	case Integer:
		// Milvus's VisitInteger: strconv.ParseInt(text, 0, 64).
		v, err = strconv.ParseInt(t.Text, 0, 64)
	case Float:
		v, err = strconv.ParseFloat(t.Text, 64)
	case Bool:
		v = booleans[t.Text]
	}
	if err != nil {
		return operand{}, fmt.Errorf("at offset %d: literal %s: %w", t.Pos, t.Text, err)
	}
	return operand{tok: t, lit: v}, nil
}

// value is an operand as a Go value: string, int64, float64 or bool.
func (o operand) value(c Caller) (any, error) {
	switch o.tok.Kind {
	case UserName:
		return c.Name, nil
	case UserTag:
		v, ok := c.Tags[o.tok.Key]
		if !ok {
			return nil, errMissingTag
		}
		return v, nil
	}
	return o.lit, nil
}

// compare follows the design: strings compare with strings, numbers with
// numbers (exactly), bools with bools for == and !=; any other pairing is
// false, never coerced.
func compare(f any, op string, v any) truth {
	var c int
	switch f := f.(type) {
	case string:
		s, ok := v.(string)
		if !ok {
			return no
		}
		c = cmp3(f < s, f > s)
	case bool:
		b, ok := v.(bool)
		if !ok || (op != "==" && op != "!=") {
			return no
		}
		c = cmp3(false, f != b)
	case int64:
		switch v := v.(type) {
		case int64:
			c = cmp3(f < v, f > v)
		case float64:
			c = cmp3(float64(f) < v, float64(f) > v)
		default:
			return no
		}
	case float64:
		switch v := v.(type) {
		case int64:
			c = cmp3(f < float64(v), f > float64(v))
		case float64:
			c = cmp3(f < v, f > v)
		default:
			return no
		}
	default:
		return no
	}
	var ok bool
	switch op {
	case "==":
		ok = c == 0
	case "!=":
		ok = c != 0
	case "<":
		ok = c < 0
	case "<=":
		ok = c <= 0
	case ">":
		ok = c > 0
	case ">=":
		ok = c >= 0
	}
	if ok {
		return yes
	}
	return no
}

func cmp3(less, more bool) int {
	switch {
	case less:
		return -1
	case more:
		return 1
	}
	return 0
}

// column reads one scalar field of a write request, row by row.
type column struct {
	at    func(i int) any
	valid []bool // nil if the field is not nullable
	// dense maps a row to its index in a nullable field's data when the
	// client sent only the valid values; nil when data has every row.
	dense []int
}

func columnsOf(fields []*schemapb.FieldData, numRows int) (map[string]column, error) {
	cols := make(map[string]column, len(fields))
	for _, fd := range fields {
		sc := fd.GetScalars()
		if sc == nil {
			continue // vectors: no policy reads them
		}
		var n int
		var at func(i int) any
		switch d := sc.GetData().(type) {
		case *schemapb.ScalarField_BoolData:
			v := d.BoolData.GetData()
			n, at = len(v), func(i int) any { return v[i] }
		case *schemapb.ScalarField_IntData:
			v := d.IntData.GetData()
			n, at = len(v), func(i int) any { return int64(v[i]) }
		case *schemapb.ScalarField_LongData:
			v := d.LongData.GetData()
			n, at = len(v), func(i int) any { return v[i] }
		case *schemapb.ScalarField_FloatData:
			v := d.FloatData.GetData()
			n, at = len(v), func(i int) any { return float64(v[i]) }
		case *schemapb.ScalarField_DoubleData:
			v := d.DoubleData.GetData()
			n, at = len(v), func(i int) any { return v[i] }
		case *schemapb.ScalarField_StringData:
			v := d.StringData.GetData()
			n, at = len(v), func(i int) any { return v[i] }
		default:
			// JSON, arrays, geometry...: the design keeps them out of
			// policies, so a policy naming one fails in fieldValue.
			continue
		}
		col := column{at: at, valid: fd.GetValidData()}
		switch {
		case col.valid == nil && n != numRows:
			return nil, fmt.Errorf("field %q has %d values for %d rows", fd.GetFieldName(), n, numRows)
		case col.valid != nil && len(col.valid) != numRows:
			return nil, fmt.Errorf("field %q has %d validity flags for %d rows", fd.GetFieldName(), len(col.valid), numRows)
		case col.valid != nil && n != numRows:
			col.dense = make([]int, numRows)
			k := 0
			for i, ok := range col.valid {
				col.dense[i] = k
				if ok {
					k++
				}
			}
			if k != n {
				return nil, fmt.Errorf("field %q has %d values for %d valid rows", fd.GetFieldName(), n, k)
			}
		}
		cols[fd.GetFieldName()] = col
	}
	return cols, nil
}

func fieldValue(cols map[string]column, name string, row int) (v any, null bool, err error) {
	col, ok := cols[name]
	if !ok {
		return nil, false, fmt.Errorf("field %q is not a scalar column of the request", name)
	}
	if col.valid != nil && !col.valid[row] {
		return nil, true, nil
	}
	if col.dense != nil {
		row = col.dense[row]
	}
	return col.at(row), false, nil
}
