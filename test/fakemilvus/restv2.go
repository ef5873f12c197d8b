package fakemilvus

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus-proto/go-api/v2/schemapb"
	"github.com/milvus-io/milvus/pkg/v2/util/merr"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// restBody is the part of Milvus 2.5's REST v2 request bodies
// (internal/distributed/proxy/httpserver/request_v2.go) the fake reads.
type restBody struct {
	DbName         string            `json:"dbName"`
	CollectionName string            `json:"collectionName"`
	PartitionName  string            `json:"partitionName"`
	PartitionNames []string          `json:"partitionNames"`
	Filter         string            `json:"filter"`
	OutputFields   []string          `json:"outputFields"`
	Limit          *int              `json:"limit"`
	Offset         int               `json:"offset"`
	ID             json.RawMessage   `json:"id"`
	Data           []json.RawMessage `json:"data"`
	AnnsField      string            `json:"annsField"`
	SearchParams   map[string]any    `json:"searchParams"`
}

// limit is the body's limit, else 100: handler_v2.go's QueryReqV2 and
// SearchReqV2 start with Limit 100 before the body is bound.
func (b *restBody) limit() int {
	if b.Limit == nil {
		return 100
	}
	return *b.Limit
}

// restRoute translates one REST v2 call into the fake's own gRPC method and
// returns the envelope's data, or an error whose merr code the envelope
// carries.
type restRoute func(m *milvusService, ctx context.Context, b *restBody) (any, error)

// restRoutes are the REST v2 routes the fake implements; any other path
// under RESTPrefix is refused (see RESTHandler).
var restRoutes = map[string]restRoute{
	"collections/list":       restList,
	"collections/describe":   restDescribe,
	"collections/drop":       restDrop,
	"entities/insert":        restWrite("insert"),
	"entities/upsert":        restWrite("upsert"),
	"entities/delete":        restDelete,
	"entities/query":         restQuery,
	"entities/get":           restGet,
	"entities/search":        restSearch,
	"entities/hybrid_search": restHybridSearch,
}

// serveREST runs route on the raw body and returns Milvus's envelope:
// {"code":0,"data":...} or {"code":<merr code>,"message":...}, both with
// HTTP 200 as handler_v2.go's HTTPReturn does.
func (m *milvusService) serveREST(route restRoute, dbHeader string, raw []byte) map[string]any {
	var b restBody
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&b); err != nil {
		err = merr.WrapErrParameterInvalidMsg("bad request body: %v", err)
		return map[string]any{"code": merr.Code(err), "message": err.Error()}
	}
	if b.DbName == "" {
		b.DbName = dbHeader
	}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.MD{})
	data, err := route(m, ctx, &b)
	if err != nil {
		return map[string]any{"code": merr.Code(err), "message": err.Error()}
	}
	return map[string]any{"code": 0, "data": data}
}

// statusErr is nil for a success status, else the error it carries.
func statusErr(st *commonpb.Status) error {
	if st.GetErrorCode() == commonpb.ErrorCode_Success && st.GetCode() == 0 {
		return nil
	}
	return merr.Error(st)
}

func restList(m *milvusService, ctx context.Context, b *restBody) (any, error) {
	resp, _ := m.ShowCollections(ctx, &milvuspb.ShowCollectionsRequest{DbName: b.DbName})
	if err := statusErr(resp.GetStatus()); err != nil {
		return nil, err
	}
	return append([]string{}, resp.GetCollectionNames()...), nil
}

func restDrop(m *milvusService, ctx context.Context, b *restBody) (any, error) {
	st, _ := m.DropCollection(ctx, &milvuspb.DropCollectionRequest{DbName: b.DbName, CollectionName: b.CollectionName})
	return map[string]any{}, statusErr(st)
}

func (m *milvusService) restSchema(ctx context.Context, b *restBody) (*milvuspb.DescribeCollectionResponse, error) {
	if b.CollectionName == "" {
		return nil, merr.WrapErrParameterInvalidMsg("collectionName is required")
	}
	resp, _ := m.DescribeCollection(ctx, &milvuspb.DescribeCollectionRequest{DbName: b.DbName, CollectionName: b.CollectionName})
	return resp, statusErr(resp.GetStatus())
}

// restDescribe answers the fields of handler_v2.go's describeCollection
// that the fake knows.
func restDescribe(m *milvusService, ctx context.Context, b *restBody) (any, error) {
	resp, err := m.restSchema(ctx, b)
	if err != nil {
		return nil, err
	}
	s := resp.GetSchema()
	var fields []map[string]any
	for _, f := range s.GetFields() {
		params := []map[string]any{}
		for _, kv := range f.GetTypeParams() {
			params = append(params, map[string]any{"key": kv.GetKey(), "value": kv.GetValue()})
		}
		fields = append(fields, map[string]any{
			"name": f.GetName(), "id": f.GetFieldID(), "type": f.GetDataType().String(),
			"primaryKey": f.GetIsPrimaryKey(), "autoId": f.GetAutoID(), "partitionKey": f.GetIsPartitionKey(),
			"description": f.GetDescription(), "params": params,
		})
	}
	return map[string]any{
		"collectionName": resp.GetCollectionName(), "collectionID": resp.GetCollectionID(),
		"description": s.GetDescription(), "fields": fields, "enableDynamicField": s.GetEnableDynamicField(),
		"shardsNum": resp.GetShardsNum(), "partitionsNum": resp.GetNumPartitions(),
		"consistencyLevel": resp.GetConsistencyLevel().String(), "aliases": resp.GetAliases(),
	}, nil
}

// restWrite is entities/insert (verb "insert") or entities/upsert: both
// store through the gRPC side's write and answer {"<verb>Count": n,
// "<verb>Ids": [...]}, as handler_v2.go's insert and upsert.
func restWrite(verb string) restRoute {
	return func(m *milvusService, ctx context.Context, b *restBody) (any, error) {
		fields, n, err := m.restColumns(ctx, b)
		if err != nil {
			return nil, err
		}
		res := m.write(ctx, b.DbName, b.CollectionName, b.PartitionName, fields, n)
		if err := statusErr(res.GetStatus()); err != nil {
			return nil, err
		}
		return map[string]any{verb + "Count": len(res.GetSuccIndex()), verb + "Ids": idList(res.GetIDs())}, nil
	}
}

func restDelete(m *milvusService, ctx context.Context, b *restBody) (any, error) {
	if b.Filter == "" {
		return nil, merr.WrapErrParameterInvalidMsg("filter is required")
	}
	res, _ := m.Delete(ctx, &milvuspb.DeleteRequest{DbName: b.DbName, CollectionName: b.CollectionName, PartitionName: b.PartitionName, Expr: b.Filter})
	if err := statusErr(res.GetStatus()); err != nil {
		return nil, err
	}
	return map[string]any{"deleteCount": res.GetDeleteCnt()}, nil
}

func restQuery(m *milvusService, ctx context.Context, b *restBody) (any, error) {
	return m.restQueryExpr(ctx, b, b.Filter)
}

// restGet reads rows by primary key, as a query "pk in [...]".
func restGet(m *milvusService, ctx context.Context, b *restBody) (any, error) {
	resp, err := m.restSchema(ctx, b)
	if err != nil {
		return nil, err
	}
	var ids []any
	if err := json.Unmarshal(b.ID, &ids); err != nil {
		var one any
		if json.Unmarshal(b.ID, &one) != nil || one == nil {
			return nil, merr.WrapErrParameterInvalidMsg("id must be a primary key or a list of them")
		}
		ids = []any{one}
	}
	var pk string
	for _, f := range resp.GetSchema().GetFields() {
		if f.GetIsPrimaryKey() {
			pk = f.GetName()
		}
	}
	lits := make([]string, len(ids))
	for i, id := range ids {
		l, _ := json.Marshal(id)
		lits[i] = string(l)
	}
	return m.restQueryExpr(ctx, b, fmt.Sprintf("%s in [%s]", pk, strings.Join(lits, ",")))
}

func (m *milvusService) restQueryExpr(ctx context.Context, b *restBody, expr string) (any, error) {
	params := []*commonpb.KeyValuePair{{Key: "offset", Value: fmt.Sprint(b.Offset)}}
	if b.limit() > 0 { // as handler_v2.go's query: limit 0 sends none
		params = append(params, &commonpb.KeyValuePair{Key: "limit", Value: fmt.Sprint(b.limit())})
	}
	res, _ := m.Query(ctx, &milvuspb.QueryRequest{DbName: b.DbName, CollectionName: b.CollectionName, Expr: expr,
		OutputFields: b.OutputFields, PartitionNames: b.PartitionNames, QueryParams: params})
	if err := statusErr(res.GetStatus()); err != nil {
		return nil, err
	}
	return restRows(res.GetFieldsData(), nil)
}

func restSearch(m *milvusService, ctx context.Context, b *restBody) (any, error) {
	var group commonpb.PlaceholderValue
	group.Tag, group.Type = "$0", commonpb.PlaceholderType_FloatVector
	for _, d := range b.Data {
		var v []float32
		if err := json.Unmarshal(d, &v); err != nil {
			return nil, merr.WrapErrParameterInvalidMsg("fakemilvus searches with float vectors only: %v", err)
		}
		buf := make([]byte, 4*len(v))
		for i, f := range v {
			binary.LittleEndian.PutUint32(buf[i*4:], math.Float32bits(f))
		}
		group.Values = append(group.Values, buf)
	}
	pg, err := proto.Marshal(&commonpb.PlaceholderGroup{Placeholders: []*commonpb.PlaceholderValue{&group}})
	if err != nil {
		return nil, err
	}
	sp := []*commonpb.KeyValuePair{{Key: "topk", Value: fmt.Sprint(b.limit())}, {Key: "offset", Value: fmt.Sprint(b.Offset)}, {Key: "anns_field", Value: b.AnnsField}}
	if mt, ok := b.SearchParams["metricType"].(string); ok {
		sp = append(sp, &commonpb.KeyValuePair{Key: "metric_type", Value: mt})
	}
	if p, ok := b.SearchParams["params"]; ok {
		j, _ := json.Marshal(p)
		sp = append(sp, &commonpb.KeyValuePair{Key: "params", Value: string(j)})
	}
	res, _ := m.Search(ctx, &milvuspb.SearchRequest{DbName: b.DbName, CollectionName: b.CollectionName, Dsl: b.Filter,
		DslType: commonpb.DslType_BoolExprV1, SearchInput: &milvuspb.SearchRequest_PlaceholderGroup{PlaceholderGroup: pg}, OutputFields: b.OutputFields, PartitionNames: b.PartitionNames, SearchParams: sp})
	if err := statusErr(res.GetStatus()); err != nil {
		return nil, err
	}
	r := res.GetResults()
	return restRows(r.GetFieldsData(), r.GetScores())
}

// restHybridSearch refuses: the fake's gRPC side does not implement
// HybridSearch, so it has nothing to translate to.
func restHybridSearch(*milvusService, context.Context, *restBody) (any, error) {
	return nil, merr.WrapErrServiceUnimplemented(errors.New("fakemilvus does not implement HybridSearch"))
}

// restColumns turns the JSON rows of an insert or upsert into columns of
// the collection's schema; keys outside the schema go to the dynamic field.
func (m *milvusService) restColumns(ctx context.Context, b *restBody) ([]*schemapb.FieldData, uint32, error) {
	resp, err := m.restSchema(ctx, b)
	if err != nil {
		return nil, 0, err
	}
	if len(b.Data) == 0 {
		return nil, 0, merr.WrapErrParameterInvalidMsg("data is required")
	}
	s := resp.GetSchema()
	rows := make([]map[string]json.RawMessage, len(b.Data))
	for i, d := range b.Data {
		if err := json.Unmarshal(d, &rows[i]); err != nil {
			return nil, 0, merr.WrapErrParameterInvalidMsg("row %d is not an object: %v", i, err)
		}
	}
	var out []*schemapb.FieldData
	known := map[string]bool{}
	for _, f := range s.GetFields() {
		known[f.GetName()] = true
		if _, sent := rows[0][f.GetName()]; !sent && f.GetIsPrimaryKey() && f.GetAutoID() {
			continue
		}
		fd, err := jsonColumn(f, rows)
		if err != nil {
			return nil, 0, merr.WrapErrParameterInvalidMsg("%v", err)
		}
		out = append(out, fd)
	}
	if s.GetEnableDynamicField() {
		meta := make([][]byte, len(rows))
		for i, r := range rows {
			extra := map[string]json.RawMessage{}
			for k, v := range r {
				if !known[k] {
					extra[k] = v
				}
			}
			meta[i], _ = json.Marshal(extra)
		}
		out = append(out, &schemapb.FieldData{Type: schemapb.DataType_JSON, FieldName: dynamicField, IsDynamic: true,
			Field: &schemapb.FieldData_Scalars{Scalars: &schemapb.ScalarField{Data: &schemapb.ScalarField_JsonData{JsonData: &schemapb.JSONArray{Data: meta}}}}})
	}
	return out, uint32(len(rows)), nil
}

// jsonColumn builds field f's column from the rows' JSON values.
func jsonColumn(f *schemapb.FieldSchema, rows []map[string]json.RawMessage) (*schemapb.FieldData, error) {
	vals := make([][]any, len(rows))
	for i, r := range rows {
		raw, sent := r[f.GetName()]
		if !sent {
			return nil, fmt.Errorf("row %d lacks field %q", i, f.GetName())
		}
		var v any
		var err error
		switch f.GetDataType() {
		case schemapb.DataType_Bool:
			v, err = decodeAs[bool](raw)
		case schemapb.DataType_Int8, schemapb.DataType_Int16, schemapb.DataType_Int32:
			v, err = decodeAs[int32](raw)
		case schemapb.DataType_Int64:
			v, err = decodeAs[int64](raw)
		case schemapb.DataType_Float:
			v, err = decodeAs[float32](raw)
		case schemapb.DataType_Double:
			v, err = decodeAs[float64](raw)
		case schemapb.DataType_String, schemapb.DataType_VarChar:
			v, err = decodeAs[string](raw)
		case schemapb.DataType_JSON:
			v = []byte(raw)
		case schemapb.DataType_FloatVector:
			var vec []float32
			vec, err = decodeAs[[]float32](raw)
			if err == nil && len(vec) != dim(f) {
				err = fmt.Errorf("vector of %d values, want dim %d", len(vec), dim(f))
			}
			v = vec
		default:
			return nil, fmt.Errorf("fakemilvus's REST side does not convert field %q of type %s", f.GetName(), f.GetDataType())
		}
		if err != nil {
			return nil, fmt.Errorf("row %d field %q: %v", i, f.GetName(), err)
		}
		vals[i] = []any{v}
	}
	return fieldData(f, 0, vals), nil
}

func decodeAs[T any](raw json.RawMessage) (T, error) {
	var v T
	err := json.Unmarshal(raw, &v)
	return v, err
}

// restRows turns result columns into JSON row objects as Milvus's REST
// answers them: dynamic keys flattened into the row, and a search hit's
// score as "distance".
func restRows(cols []*schemapb.FieldData, scores []float32) ([]map[string]any, error) {
	n := len(scores)
	if len(cols) > 0 && scores == nil {
		n = fieldRows(cols[0])
	}
	rows := make([]map[string]any, n)
	for i := range rows {
		rows[i] = map[string]any{}
		if scores != nil {
			rows[i]["distance"] = scores[i]
		}
	}
	for _, fd := range cols {
		f := &schemapb.FieldSchema{Name: fd.GetFieldName(), DataType: fd.GetType(), IsDynamic: fd.GetIsDynamic()}
		if v := fd.GetVectors(); v != nil {
			f.TypeParams = []*commonpb.KeyValuePair{{Key: "dim", Value: fmt.Sprint(v.GetDim())}}
		}
		vals, err := values(f, fd, n)
		if err != nil {
			return nil, err
		}
		for i, v := range vals {
			switch {
			case fd.GetIsDynamic():
				var extra map[string]any
				_ = json.Unmarshal(v.([]byte), &extra)
				for k, x := range extra {
					rows[i][k] = x
				}
			case fd.GetType() == schemapb.DataType_JSON:
				rows[i][fd.GetFieldName()] = json.RawMessage(v.([]byte))
			default:
				rows[i][fd.GetFieldName()] = v
			}
		}
	}
	return rows, nil
}

// fieldRows counts the rows of a column.
func fieldRows(fd *schemapb.FieldData) int {
	if v := fd.GetVectors(); v != nil {
		if d := int(v.GetDim()); d > 0 {
			return len(v.GetFloatVector().GetData()) / d
		}
		return 0
	}
	switch d := fd.GetScalars().GetData().(type) {
	case *schemapb.ScalarField_BoolData:
		return len(d.BoolData.GetData())
	case *schemapb.ScalarField_IntData:
		return len(d.IntData.GetData())
	case *schemapb.ScalarField_LongData:
		return len(d.LongData.GetData())
	case *schemapb.ScalarField_FloatData:
		return len(d.FloatData.GetData())
	case *schemapb.ScalarField_DoubleData:
		return len(d.DoubleData.GetData())
	case *schemapb.ScalarField_StringData:
		return len(d.StringData.GetData())
	case *schemapb.ScalarField_JsonData:
		return len(d.JsonData.GetData())
	}
	return 0
}

func idList(ids *schemapb.IDs) any {
	if s := ids.GetStrId(); s != nil {
		return append([]string{}, s.GetData()...)
	}
	return append([]int64{}, ids.GetIntId().GetData()...)
}
