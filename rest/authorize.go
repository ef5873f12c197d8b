package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/authproxy/authproxy/admission"
	"github.com/authproxy/authproxy/rbac"
)

// dataRoutes maps the REST v2 data routes to the MilvusService method whose
// privilege Milvus checks for them (handler_v2.go): the REST side reaches
// the very decision a gRPC call gets.
var dataRoutes = map[string]string{
	"collections/create": "CreateCollection", "collections/drop": "DropCollection",
	"collections/describe": "DescribeCollection", "collections/list": "ShowCollections",
	"collections/has": "HasCollection", "collections/rename": "RenameCollection",
	"collections/get_stats": "GetCollectionStatistics", "collections/get_load_state": "GetLoadState",
	"collections/load": "LoadCollection", "collections/release": "ReleaseCollection",
	"collections/alter_properties": "AlterCollection", "collections/drop_properties": "AlterCollection",
	"collections/alter_field_properties": "AlterCollectionField", "collections/compact": "ManualCompaction",
	"collections/flush": "Flush",
	"entities/insert":   "Insert", "entities/upsert": "Upsert", "entities/delete": "Delete",
	"entities/query": "Query", "entities/get": "Query", "entities/search": "Search",
	"entities/advanced_search": "HybridSearch", "entities/hybrid_search": "HybridSearch",
	"indexes/create": "CreateIndex", "indexes/drop": "DropIndex", "indexes/list": "DescribeIndex",
	"indexes/describe": "DescribeIndex", "indexes/alter_properties": "AlterIndex", "indexes/drop_properties": "AlterIndex",
	"partitions/create": "CreatePartition", "partitions/drop": "DropPartition", "partitions/list": "ShowPartitions",
	"partitions/has": "HasPartition", "partitions/load": "LoadPartitions", "partitions/release": "ReleasePartitions",
	"partitions/get_stats": "GetPartitionStatistics",
	"aliases/create":       "CreateAlias", "aliases/drop": "DropAlias", "aliases/alter": "AlterAlias",
	"aliases/list": "ListAliases", "aliases/describe": "DescribeAlias",
	"databases/create": "CreateDatabase", "databases/drop": "DropDatabase", "databases/list": "ListDatabases",
	"databases/describe": "DescribeDatabase", "databases/alter": "AlterDatabase",
	"jobs/import/create": "Import", "jobs/import/list": "ListImportTasks", "jobs/import/get_progress": "GetImportState",
}

// authorizeData takes the admission step's decision on a data route, as
// on the gRPC call Milvus maps it to. It reads the (bounded) body whole to
// find the collection and the database as the backend will (readBody,
// decodeDataRequest), and puts it back for forwarding. rewrite, when not
// nil, rewrites the reply: it filters the names of a list, or refuses a
// collection the caller may not see.
func (h *handler) authorizeData(w http.ResponseWriter, r *http.Request, call *admission.Call) (rewrite func([]byte) []byte, ok bool) {
	route := strings.TrimPrefix(r.URL.Path, apiPrefix)
	method, known := dataRoutes[route]
	if known {
		call.SetMethod("/"+rbac.Service+"/"+method, true)
	} else {
		// A route this proxy does not map has no known privilege: admin only.
		call.SetMethod("/"+rbac.Service+"/REST:"+route, true)
	}
	call.RequestBytes = max(r.ContentLength, 0)
	if !known || !h.adm.ReadsBody(call) {
		if _, err := h.adm.Decide(call, nil); err != nil {
			refuse(w, err)
			return nil, false
		}
		return nil, true
	}
	// An empty body is read too: Milvus refuses it (1801), and so does
	// decodeDataRequest.
	body, err := readBody(r.Body, r.ContentLength, h.maxBody)
	var tooBig errBodyTooLarge
	switch {
	case errors.As(err, &tooBig):
		h.tooLarge(w, r, tooBig.limit)
		return nil, false
	case err != nil:
		writeError(w, http.StatusBadRequest, codeIncorrectFormat, msgIncorrectFormat+", error: reading the body: "+err.Error())
		return nil, false
	}
	q, err := decodeDataRequest(body)
	if err != nil {
		// Never a decision on defaults for a body the backend may read
		// otherwise: refused before a byte reaches it.
		writeError(w, http.StatusBadRequest, codeIncorrectFormat, msgIncorrectFormat+", "+err.Error())
		return nil, false
	}
	if method == "Search" {
		// The vectors searched, for dql.searchRate: one per element of
		// data, as handler_v2.go builds the search's nq from it.
		var s struct {
			Data []json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(body, &s); err != nil {
			writeError(w, http.StatusBadRequest, codeIncorrectFormat, msgIncorrectFormat+", error: "+err.Error())
			return nil, false
		}
		q.nq = int64(len(s.Data))
	}
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	call.RequestBytes = r.ContentLength
	r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	d, err := h.adm.Decide(call, requestMessage(call.Method, q))
	if err != nil {
		refuse(w, err)
		return nil, false
	}
	if d.Rows != nil {
		rewritten, answer, err := d.Rows.RewriteJSON(route, body)
		switch {
		case err != nil:
			refuse(w, err)
			return nil, false
		case answer != nil:
			// No row can match: answered here, nothing forwarded.
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(answer)
			return nil, false
		}
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(rewritten)), int64(len(rewritten))
		r.Header.Set("Content-Length", strconv.Itoa(len(rewritten)))
	}
	db := q.DBName
	if db == "" {
		db = call.DB
	}
	if db == "" {
		db = rbac.DefaultDB
	}
	switch method {
	case "ShowCollections":
		return func(body []byte) []byte {
			return filterNames(body, func(name string) bool { return d.SeesCollection(db, name) })
		}, true
	case "ListDatabases":
		return func(body []byte) []byte { return filterNames(body, d.SeesDatabase) }, true
	case "DescribeDatabase":
		if refusal := d.DatabaseRefusal(db); refusal != nil {
			refuse(w, refusal)
			return nil, false
		}
	case "DescribeCollection":
		// As on gRPC: the backend says whether the collection exists,
		// then visibility decides (Milvus's order).
		if q.CollectionName != "" {
			return func(body []byte) []byte {
				return refuseHidden(body, d.CollectionRefusal(db, q.CollectionName))
			}, true
		}
	}
	return nil, true
}

// refuseHidden replaces a successful reply with refusal, Milvus's REST
// answer to a status error (HTTP 200, its code and reason); a failed
// reply, or a nil refusal, passes unchanged.
func refuseHidden(body []byte, refusal *admission.Refusal) []byte {
	var r struct {
		Code int32 `json:"code"`
	}
	if refusal == nil || json.Unmarshal(body, &r) != nil || r.Code != 0 {
		return body
	}
	out, err := json.Marshal(reply{Code: refusal.Code, Message: refusal.Message})
	if err != nil {
		return body
	}
	return out
}

// requestMessage is the gRPC request a data route stands for, with the
// collection and database of its body, encoded for the decision point.
func requestMessage(method string, q dataRequest) [][]byte {
	svc := milvuspb.File_milvus_proto.Services().ByName("MilvusService")
	m := svc.Methods().ByName(protoreflect.Name(method[strings.LastIndexByte(method, '/')+1:]))
	if m == nil {
		return nil
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(m.Input().FullName())
	if err != nil {
		return nil
	}
	msg := mt.New()
	fields := m.Input().Fields()
	for name, value := range map[protoreflect.Name]string{"collection_name": q.CollectionName, "db_name": q.DBName} {
		if f := fields.ByName(name); f != nil && f.Kind() == protoreflect.StringKind && !f.IsList() && value != "" {
			msg.Set(f, protoreflect.ValueOfString(value))
		}
	}
	if f := fields.ByName("collection_names"); f != nil && q.CollectionName != "" {
		msg.Mutable(f).List().Append(protoreflect.ValueOfString(q.CollectionName))
	}
	if f := fields.ByName("nq"); f != nil && f.Kind() == protoreflect.Int64Kind && q.nq > 0 {
		msg.Set(f, protoreflect.ValueOfInt64(q.nq))
	}
	b, _ := proto.Marshal(msg.Interface())
	return [][]byte{b}
}

// filterNames keeps the names of a list reply ({"code":0,"data":[...]}) that
// keep accepts; any other reply passes unchanged.
func filterNames(body []byte, keep func(string) bool) []byte {
	var r struct {
		Code int32           `json:"code"`
		Data json.RawMessage `json:"data"`
	}
	if json.Unmarshal(body, &r) != nil || r.Code != 0 {
		return body
	}
	var names []string
	if json.Unmarshal(r.Data, &names) != nil {
		return body
	}
	names = slices.DeleteFunc(names, func(n string) bool { return !keep(n) })
	if names == nil {
		names = []string{}
	}
	out, err := json.Marshal(reply{Code: 0, Data: names})
	if err != nil {
		return body
	}
	return out
}
