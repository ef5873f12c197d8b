package fakemilvus

import (
	"fmt"
	"math"
	"sort"
	"strconv"

	"github.com/milvus-io/milvus-proto/go-api/v2/schemapb"
)

// dynamicField is the name under which Milvus carries the JSON of fields
// that are not in the schema (dynamic schema).
const dynamicField = "$meta"

// collection holds rows as Go values, one slice entry per column of cols.
// Vectors are sub-slices of the received message, so an insert costs no copy.
type collection struct {
	id   int64
	cols []*schemapb.FieldSchema // schema fields, plus $meta if dynamic
	idx  map[string]int
	pk   int // index of the primary key in cols
	rows [][]any
	byPK map[any]int // primary key -> index in rows
}

func newCollection(id int64, schema *schemapb.CollectionSchema) (*collection, error) {
	c := &collection{id: id, idx: map[string]int{}, pk: -1, byPK: map[any]int{}}
	cols := append([]*schemapb.FieldSchema(nil), schema.GetFields()...)
	if schema.GetEnableDynamicField() {
		cols = append(cols, &schemapb.FieldSchema{Name: dynamicField, DataType: schemapb.DataType_JSON, IsDynamic: true})
	}
	for i, f := range cols {
		if _, err := stride(f); err != nil {
			return nil, err
		}
		if f.GetIsPrimaryKey() {
			c.pk = i
		}
		c.idx[f.GetName()] = i
	}
	if c.pk < 0 {
		return nil, fmt.Errorf("schema has no primary key field")
	}
	if t := cols[c.pk].GetDataType(); t != schemapb.DataType_Int64 && t != schemapb.DataType_VarChar {
		return nil, fmt.Errorf("primary key must be Int64 or VarChar, not %s", t)
	}
	c.cols = cols
	return c, nil
}

func dim(f *schemapb.FieldSchema) int {
	for _, kv := range f.GetTypeParams() {
		if kv.GetKey() == "dim" {
			d, _ := strconv.Atoi(kv.GetValue())
			return d
		}
	}
	return 0
}

// stride returns, for a byte-encoded vector type, the bytes per row; 0 for
// other supported types; an error for types the fake does not store.
func stride(f *schemapb.FieldSchema) (int, error) {
	switch f.GetDataType() {
	case schemapb.DataType_Bool, schemapb.DataType_Int8, schemapb.DataType_Int16, schemapb.DataType_Int32,
		schemapb.DataType_Int64, schemapb.DataType_Float, schemapb.DataType_Double,
		schemapb.DataType_String, schemapb.DataType_VarChar, schemapb.DataType_JSON, schemapb.DataType_FloatVector:
		return 0, nil
	case schemapb.DataType_BinaryVector:
		return dim(f) / 8, nil
	case schemapb.DataType_Float16Vector, schemapb.DataType_BFloat16Vector:
		return dim(f) * 2, nil
	case schemapb.DataType_Int8Vector:
		return dim(f), nil
	}
	return 0, fmt.Errorf("fakemilvus does not support field %q of type %s", f.GetName(), f.GetDataType())
}

// values splits a received column into n per-row values.
func values(f *schemapb.FieldSchema, fd *schemapb.FieldData, n int) ([]any, error) {
	out := make([]any, 0, n)
	add := func(l int, at func(i int) any) error {
		if l != n {
			return fmt.Errorf("field %q has %d rows, want %d", f.GetName(), l, n)
		}
		for i := range l {
			out = append(out, at(i))
		}
		return nil
	}
	sc, vec := fd.GetScalars(), fd.GetVectors()
	var err error
	switch f.GetDataType() {
	case schemapb.DataType_Bool:
		d := sc.GetBoolData().GetData()
		err = add(len(d), func(i int) any { return d[i] })
	case schemapb.DataType_Int8, schemapb.DataType_Int16, schemapb.DataType_Int32:
		d := sc.GetIntData().GetData()
		err = add(len(d), func(i int) any { return d[i] })
	case schemapb.DataType_Int64:
		d := sc.GetLongData().GetData()
		err = add(len(d), func(i int) any { return d[i] })
	case schemapb.DataType_Float:
		d := sc.GetFloatData().GetData()
		err = add(len(d), func(i int) any { return d[i] })
	case schemapb.DataType_Double:
		d := sc.GetDoubleData().GetData()
		err = add(len(d), func(i int) any { return d[i] })
	case schemapb.DataType_String, schemapb.DataType_VarChar:
		d := sc.GetStringData().GetData()
		err = add(len(d), func(i int) any { return d[i] })
	case schemapb.DataType_JSON:
		d := sc.GetJsonData().GetData()
		err = add(len(d), func(i int) any { return d[i] })
	case schemapb.DataType_FloatVector:
		d, k := vec.GetFloatVector().GetData(), dim(f)
		if k == 0 {
			return nil, fmt.Errorf("field %q has no dim", f.GetName())
		}
		err = add(len(d)/k, func(i int) any { return d[i*k : (i+1)*k] })
	default:
		var d []byte
		switch f.GetDataType() {
		case schemapb.DataType_BinaryVector:
			d = vec.GetBinaryVector()
		case schemapb.DataType_Float16Vector:
			d = vec.GetFloat16Vector()
		case schemapb.DataType_BFloat16Vector:
			d = vec.GetBfloat16Vector()
		case schemapb.DataType_Int8Vector:
			d = vec.GetInt8Vector()
		}
		k, _ := stride(f)
		if k == 0 {
			return nil, fmt.Errorf("field %q has no dim", f.GetName())
		}
		err = add(len(d)/k, func(i int) any { return d[i*k : (i+1)*k] })
	}
	return out, err
}

// fieldData builds the column of field f for the given rows.
func fieldData(f *schemapb.FieldSchema, col int, rows [][]any) *schemapb.FieldData {
	fd := &schemapb.FieldData{Type: f.GetDataType(), FieldName: f.GetName(), FieldId: f.GetFieldID(), IsDynamic: f.GetIsDynamic()}
	scalar := func(sf *schemapb.ScalarField) {
		fd.Field = &schemapb.FieldData_Scalars{Scalars: sf}
	}
	switch f.GetDataType() {
	case schemapb.DataType_Bool:
		scalar(&schemapb.ScalarField{Data: &schemapb.ScalarField_BoolData{BoolData: &schemapb.BoolArray{Data: gather[bool](rows, col)}}})
	case schemapb.DataType_Int8, schemapb.DataType_Int16, schemapb.DataType_Int32:
		scalar(&schemapb.ScalarField{Data: &schemapb.ScalarField_IntData{IntData: &schemapb.IntArray{Data: gather[int32](rows, col)}}})
	case schemapb.DataType_Int64:
		scalar(&schemapb.ScalarField{Data: &schemapb.ScalarField_LongData{LongData: &schemapb.LongArray{Data: gather[int64](rows, col)}}})
	case schemapb.DataType_Float:
		scalar(&schemapb.ScalarField{Data: &schemapb.ScalarField_FloatData{FloatData: &schemapb.FloatArray{Data: gather[float32](rows, col)}}})
	case schemapb.DataType_Double:
		scalar(&schemapb.ScalarField{Data: &schemapb.ScalarField_DoubleData{DoubleData: &schemapb.DoubleArray{Data: gather[float64](rows, col)}}})
	case schemapb.DataType_String, schemapb.DataType_VarChar:
		scalar(&schemapb.ScalarField{Data: &schemapb.ScalarField_StringData{StringData: &schemapb.StringArray{Data: gather[string](rows, col)}}})
	case schemapb.DataType_JSON:
		d := gather[[]byte](rows, col)
		for i, v := range d {
			if v == nil {
				d[i] = []byte("{}")
			}
		}
		scalar(&schemapb.ScalarField{Data: &schemapb.ScalarField_JsonData{JsonData: &schemapb.JSONArray{Data: d}}})
	case schemapb.DataType_FloatVector:
		k := dim(f)
		flat := make([]float32, 0, k*len(rows))
		for _, r := range rows {
			v, _ := r[col].([]float32)
			flat = append(flat, v...)
			flat = append(flat, make([]float32, k-len(v))...)
		}
		fd.Field = &schemapb.FieldData_Vectors{Vectors: &schemapb.VectorField{Dim: int64(k), Data: &schemapb.VectorField_FloatVector{FloatVector: &schemapb.FloatArray{Data: flat}}}}
	default: // byte-encoded vectors, see stride
		k, _ := stride(f)
		flat := make([]byte, 0, k*len(rows))
		for _, r := range rows {
			v, _ := r[col].([]byte)
			flat = append(flat, v...)
			flat = append(flat, make([]byte, k-len(v))...)
		}
		vf := &schemapb.VectorField{Dim: int64(dim(f))}
		switch f.GetDataType() {
		case schemapb.DataType_BinaryVector:
			vf.Data = &schemapb.VectorField_BinaryVector{BinaryVector: flat}
		case schemapb.DataType_Float16Vector:
			vf.Data = &schemapb.VectorField_Float16Vector{Float16Vector: flat}
		case schemapb.DataType_BFloat16Vector:
			vf.Data = &schemapb.VectorField_Bfloat16Vector{Bfloat16Vector: flat}
		case schemapb.DataType_Int8Vector:
			vf.Data = &schemapb.VectorField_Int8Vector{Int8Vector: flat}
		}
		fd.Field = &schemapb.FieldData_Vectors{Vectors: vf}
	}
	return fd
}

// gather returns column col of rows; a missing value becomes T's zero.
func gather[T any](rows [][]any, col int) []T {
	out := make([]T, len(rows))
	for i, r := range rows {
		out[i], _ = r[col].(T)
	}
	return out
}

// ids builds the IDs message of the given primary keys.
func (c *collection) ids(pks []any) *schemapb.IDs {
	if c.cols[c.pk].GetDataType() == schemapb.DataType_VarChar {
		d := make([]string, len(pks))
		for i, pk := range pks {
			d[i], _ = pk.(string)
		}
		return &schemapb.IDs{IdField: &schemapb.IDs_StrId{StrId: &schemapb.StringArray{Data: d}}}
	}
	d := make([]int64, len(pks))
	for i, pk := range pks {
		d[i], _ = pk.(int64)
	}
	return &schemapb.IDs{IdField: &schemapb.IDs_IntId{IntId: &schemapb.LongArray{Data: d}}}
}

// toRows converts a column-based insert into rows. newID supplies primary
// keys for an auto-ID key that the client did not send.
func (c *collection) toRows(fields []*schemapb.FieldData, n int, newID func() int64) ([][]any, error) {
	rows := make([][]any, n)
	for i := range rows {
		rows[i] = make([]any, len(c.cols))
	}
	hasPK := false
	for _, fd := range fields {
		name := fd.GetFieldName()
		if fd.GetIsDynamic() {
			name = dynamicField
		}
		col, ok := c.idx[name]
		if !ok {
			return nil, fmt.Errorf("field %q is not in the collection schema", fd.GetFieldName())
		}
		vals, err := values(c.cols[col], fd, n)
		if err != nil {
			return nil, err
		}
		for i, v := range vals {
			rows[i][col] = v
		}
		hasPK = hasPK || col == c.pk
	}
	if !hasPK {
		if c.cols[c.pk].GetDataType() != schemapb.DataType_Int64 {
			return nil, fmt.Errorf("primary key %q missing", c.cols[c.pk].GetName())
		}
		for _, r := range rows {
			r[c.pk] = newID()
		}
	}
	return rows, nil
}

// put stores rows in partition part, replacing rows with the same primary
// key (in any partition, as an upsert does). A stored row carries its
// partition's name after its columns.
func (c *collection) put(rows [][]any, part string) {
	for _, r := range rows {
		r = append(r, part)
		if i, ok := c.byPK[r[c.pk]]; ok {
			c.rows[i] = r
			continue
		}
		c.byPK[r[c.pk]] = len(c.rows)
		c.rows = append(c.rows, r)
	}
}

// partitionOf is the partition of the row at position i.
func (c *collection) partitionOf(i int) string { return c.rows[i][len(c.cols)].(string) }

// remove deletes the rows at the given sorted positions.
func (c *collection) remove(positions []int) {
	if len(positions) == 0 {
		return
	}
	drop := make(map[int]bool, len(positions))
	for _, p := range positions {
		drop[p] = true
	}
	kept := c.rows[:0]
	for i, r := range c.rows {
		if !drop[i] {
			kept = append(kept, r)
		}
	}
	clear(c.rows[len(kept):])
	c.rows = kept
	c.byPK = make(map[any]int, len(c.rows))
	for i, r := range c.rows {
		c.byPK[r[c.pk]] = i
	}
}

// hit is one search result: a row position and its score.
// scoreRange is a range search's bounds (search params radius and
// range_filter), as Milvus reads them: for L2, a distance, range_filter <=
// d < radius; for IP and COSINE, a similarity, radius < s <= range_filter.
type scoreRange struct {
	radius, rangeFilter       float64
	hasRadius, hasRangeFilter bool
}

func (r scoreRange) holds(metric string, s float64) bool {
	if metric == "L2" {
		return (!r.hasRadius || s < r.radius) && (!r.hasRangeFilter || s >= r.rangeFilter)
	}
	return (!r.hasRadius || s > r.radius) && (!r.hasRangeFilter || s <= r.rangeFilter)
}

type hit struct {
	row   int
	score float32
}

// search ranks the candidate rows by metric ("L2", "IP" or "COSINE") against
// q on float vector column col, keeps those within r, and returns hits
// [offset, offset+topK).
func (c *collection) search(col int, metric string, q []float32, candidates []int, r scoreRange, topK, offset int) ([]hit, error) {
	hits := make([]hit, 0, len(candidates))
	for _, i := range candidates {
		v, _ := c.rows[i][col].([]float32)
		if len(v) != len(q) {
			return nil, fmt.Errorf("query vector has dim %d, field has %d", len(q), len(v))
		}
		var dot, l2, nq, nv float64
		for j := range q {
			a, b := float64(q[j]), float64(v[j])
			dot += a * b
			l2 += (a - b) * (a - b)
			nq += a * a
			nv += b * b
		}
		var s float64
		switch metric {
		case "L2":
			s = l2
		case "IP":
			s = dot
		case "COSINE":
			if nq > 0 && nv > 0 {
				s = dot / math.Sqrt(nq*nv)
			}
		default:
			return nil, fmt.Errorf("fakemilvus does not support metric type %q", metric)
		}
		if r.holds(metric, s) {
			hits = append(hits, hit{row: i, score: float32(s)})
		}
	}
	// L2 is a distance, smaller is closer; IP and COSINE are similarities.
	sort.SliceStable(hits, func(a, b int) bool {
		if metric == "L2" {
			return hits[a].score < hits[b].score
		}
		return hits[a].score > hits[b].score
	})
	if offset > len(hits) {
		offset = len(hits)
	}
	hits = hits[offset:]
	if topK < len(hits) {
		hits = hits[:topK]
	}
	return hits, nil
}
