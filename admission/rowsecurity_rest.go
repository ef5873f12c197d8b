package admission

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/milvus-io/milvus-proto/go-api/v2/schemapb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// RewriteJSON is RewriteMessage for a REST v2 body (route is the path
// after /v2/vectordb/): the `filter` of entities/search, query and delete
// and of each of hybrid_search's `search`, combined; the `data` rows of
// insert and upsert, checked. Keys are matched as gin's binding matches
// them (case-insensitively); a body naming one of them twice in two
// spellings is refused rather than guessed at. entities/get, whose filter
// Milvus builds from ids and the schema, is refused under row security.
func (s *RowScope) RewriteJSON(route string, body []byte) (request, reply []byte, err error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, nil, restInvalid("the body is not a JSON object: " + err.Error())
	}
	switch route {
	case "entities/search", "entities/query", "entities/delete":
		none, err := s.combineJSON(m)
		if err != nil || none {
			return nil, emptyJSONIf(none, route, m), err
		}
	case "entities/hybrid_search", "entities/advanced_search":
		key, raw, err := oneKey(m, "search")
		if err != nil {
			return nil, nil, err
		}
		var subs []map[string]json.RawMessage
		if raw != nil && json.Unmarshal(raw, &subs) != nil {
			return nil, nil, restInvalid("search is not a list of objects")
		}
		for _, sub := range subs {
			none, err := s.combineJSON(sub)
			if err != nil || none {
				return nil, emptyJSONIf(none, route, m), err
			}
		}
		m[key], _ = json.Marshal(subs)
	case "entities/insert", "entities/upsert":
		_, raw, err := oneKey(m, "data")
		if err != nil {
			return nil, nil, err
		}
		fields, n, err := jsonColumns(raw)
		if err != nil {
			return nil, nil, err
		}
		return body, nil, s.check(fields, n)
	default:
		return nil, nil, writeRefusal(fmt.Sprintf("collection %s is under row-level security, which %s does not take: use entities/query with a filter", s.Collection, route))
	}
	out, err := json.Marshal(m)
	return out, nil, err
}

// combineJSON replaces the `filter` of one search, query or delete
// object with its combination; none says no row can match.
func (s *RowScope) combineJSON(m map[string]json.RawMessage) (none bool, err error) {
	key, raw, err := oneKey(m, "filter")
	if err != nil {
		return false, err
	}
	var f string
	if raw != nil && json.Unmarshal(raw, &f) != nil {
		return false, restInvalid("filter is not a string")
	}
	combined, none, err := s.filter(f)
	if err != nil || none {
		return none, err
	}
	m[key], _ = json.Marshal(combined)
	return false, nil
}

// oneKey finds key in m as gin binds it, case-insensitively; nil when absent.
func oneKey(m map[string]json.RawMessage, key string) (string, json.RawMessage, error) {
	found := ""
	for k := range m {
		if strings.EqualFold(k, key) {
			if found != "" {
				return "", nil, restInvalid(fmt.Sprintf("the body names %q twice (%q, %q)", key, found, k))
			}
			found = k
		}
	}
	if found == "" {
		return key, nil, nil
	}
	return found, m[found], nil
}

func restInvalid(why string) *Refusal {
	msg := "invalid parameter: " + why
	return &Refusal{Status: status.New(codes.InvalidArgument, msg), HTTP: http.StatusOK, Code: codeParameterInvalid, Message: msg}
}

func emptyJSONIf(none bool, route string, m map[string]json.RawMessage) []byte {
	if !none {
		return nil
	}
	return emptyJSON(route, m)
}

// emptyJSON is Milvus's REST answer to a read no row matches (and a
// delete of none): code 0 and no data; count(*) counts 0; a delete
// answers its count, as Milvus 2.5's handler_v2.go does
// ({"deleteCount": deleteResp.DeleteCnt}).
func emptyJSON(route string, m map[string]json.RawMessage) []byte {
	if route == "entities/delete" {
		return []byte(`{"code":0,"cost":0,"data":{"deleteCount":0}}`)
	}
	if _, raw, _ := oneKey(m, "outputFields"); raw != nil {
		var out []string
		if json.Unmarshal(raw, &out) == nil && len(out) == 1 && strings.EqualFold(out[0], "count(*)") {
			return []byte(`{"code":0,"cost":0,"data":[{"count(*)":0}]}`)
		}
	}
	return []byte(`{"code":0,"cost":0,"data":[]}`)
}

// jsonColumns reads REST insert rows as the scalar columns a check_expr
// can read: strings, integers, other numbers and booleans, a missing key
// or null a null. A column holding two kinds is refused (Milvus refuses it
// against the schema; a guess here could pass a row Milvus reads otherwise).
func jsonColumns(raw json.RawMessage) ([]*schemapb.FieldData, int, error) {
	var rows []map[string]json.RawMessage
	if raw == nil || json.Unmarshal(raw, &rows) != nil {
		return nil, 0, restInvalid("data is not a list of row objects")
	}
	kinds := map[string]string{}
	values := map[string][]any{}
	for i, row := range rows {
		for k, v := range row {
			var x any
			dec := json.NewDecoder(bytes.NewReader(v))
			dec.UseNumber()
			if dec.Decode(&x) != nil {
				return nil, 0, restInvalid(fmt.Sprintf("row %d: %s does not decode", i, k))
			}
			kind := ""
			switch t := x.(type) {
			case string:
				kind = "string"
			case bool:
				kind = "bool"
			case json.Number:
				if n, err := t.Int64(); err == nil {
					kind, x = "int", n
				} else if f, err := t.Float64(); err == nil {
					kind, x = "float", f
				}
			case nil:
			default:
				continue // vectors, JSON objects: no policy compares them
			}
			if kind != "" {
				if prev, ok := kinds[k]; ok && prev != kind {
					return nil, 0, restInvalid(fmt.Sprintf("field %s holds both %s and %s values", k, prev, kind))
				}
				kinds[k] = kind
			}
			if values[k] == nil {
				values[k] = make([]any, len(rows))
			}
			values[k][i] = x
		}
	}
	var out []*schemapb.FieldData
	for k, vs := range values {
		valid := make([]bool, len(rows))
		sc := &schemapb.ScalarField{}
		switch kinds[k] {
		case "string":
			sc.Data = &schemapb.ScalarField_StringData{StringData: &schemapb.StringArray{Data: columnOf[string](vs, valid)}}
		case "bool":
			sc.Data = &schemapb.ScalarField_BoolData{BoolData: &schemapb.BoolArray{Data: columnOf[bool](vs, valid)}}
		case "int":
			sc.Data = &schemapb.ScalarField_LongData{LongData: &schemapb.LongArray{Data: columnOf[int64](vs, valid)}}
		case "float":
			sc.Data = &schemapb.ScalarField_DoubleData{DoubleData: &schemapb.DoubleArray{Data: columnOf[float64](vs, valid)}}
		default:
			continue // only nulls, or only vectors
		}
		out = append(out, &schemapb.FieldData{FieldName: k, Field: &schemapb.FieldData_Scalars{Scalars: sc}, ValidData: valid})
	}
	return out, len(rows), nil
}

// columnOf is one column's values of type T; a row without one is null
// (valid false).
func columnOf[T any](vs []any, valid []bool) []T {
	d := make([]T, len(vs))
	for i, v := range vs {
		d[i], valid[i] = v.(T)
	}
	return d
}
