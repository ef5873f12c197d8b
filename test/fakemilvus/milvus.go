package fakemilvus

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus-proto/go-api/v2/schemapb"
	"github.com/milvus-io/milvus/pkg/v2/util/merr"
	"google.golang.org/protobuf/proto"
)

// entry is a collection with the metadata Milvus reports about it.
type entry struct {
	*collection
	req        *milvuspb.CreateCollectionRequest
	schema     *schemapb.CollectionSchema
	created    time.Time
	loaded     bool
	indexes    []*milvuspb.IndexDescription
	partitions []partition // _default first
}

// milvusService is the in-memory MilvusService. Collections live in
// databases (namespace.go), chosen by the request's db_name, else the
// dbname metadata, else default. Calls it does not implement, the
// credential RPCs among them, answer Unimplemented.
type milvusService struct {
	milvuspb.UnimplementedMilvusServiceServer
	version string

	mu     sync.Mutex
	dbs    map[string]*database
	nextID int64 // for databases, collections, partitions, indexes, auto-ID keys and Connect identifiers
}

func newMilvusService(version string) *milvusService {
	m := &milvusService{version: version, dbs: map[string]*database{}, nextID: 1}
	m.dbs[defaultDB] = newDatabase(m.id(), defaultDB, nil)
	return m
}

// id must be called with m.mu held.
func (m *milvusService) id() int64 {
	m.nextID++
	return m.nextID
}

// ts is a Milvus hybrid timestamp: physical milliseconds shifted by 18 bits.
func ts(t time.Time) uint64 { return uint64(t.UnixMilli()) << 18 }

func ok() *commonpb.Status { return merr.Success() }

func fail(err error) *commonpb.Status { return merr.Status(err) }

// errStatus keeps a merr error's code (partition not found, ...) and
// makes any other error a parameter error.
func errStatus(err error) *commonpb.Status {
	if merr.Code(err) != merr.Code(errors.New("")) {
		return fail(err)
	}
	return invalid("%v", err)
}

func invalid(format string, args ...any) *commonpb.Status {
	return fail(merr.WrapErrParameterInvalidMsg(format, args...))
}

func (m *milvusService) Connect(context.Context, *milvuspb.ConnectRequest) (*milvuspb.ConnectResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return &milvuspb.ConnectResponse{
		Status: ok(),
		ServerInfo: &commonpb.ServerInfo{
			BuildTags:  m.version,
			BuildTime:  time.Now().Format(time.RFC3339),
			GoVersion:  runtime.Version(),
			DeployMode: "fake",
		},
		Identifier: m.id(),
	}, nil
}

func (m *milvusService) GetVersion(context.Context, *milvuspb.GetVersionRequest) (*milvuspb.GetVersionResponse, error) {
	return &milvuspb.GetVersionResponse{Status: ok(), Version: m.version}, nil
}

func (m *milvusService) CheckHealth(context.Context, *milvuspb.CheckHealthRequest) (*milvuspb.CheckHealthResponse, error) {
	return &milvuspb.CheckHealthResponse{Status: ok(), IsHealthy: true}, nil
}

func (m *milvusService) CreateCollection(ctx context.Context, req *milvuspb.CreateCollectionRequest) (*commonpb.Status, error) {
	schema := &schemapb.CollectionSchema{}
	if err := proto.Unmarshal(req.GetSchema(), schema); err != nil {
		return invalid("bad schema: %v", err), nil
	}
	schema.Name = req.GetCollectionName()
	// Milvus numbers user fields from 100.
	for i, f := range schema.GetFields() {
		f.FieldID = int64(100 + i)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	d, st := m.database(ctx, req.GetDbName())
	if st != nil {
		return st, nil
	}
	if _, exists := d.colls[req.GetCollectionName()]; exists {
		return invalid("collection %s already exists", req.GetCollectionName()), nil
	}
	if _, isAlias := d.aliases[req.GetCollectionName()]; isAlias {
		return invalid("collection name [%s] conflicts with an existing alias, please choose a unique name", req.GetCollectionName()), nil
	}
	if req.GetNumPartitions() > 0 {
		return invalid("fakemilvus has no partition keys (num_partitions)"), nil
	}
	c, err := newCollection(m.id(), schema)
	if err != nil {
		return invalid("%v", err), nil
	}
	now := time.Now()
	d.colls[req.GetCollectionName()] = &entry{collection: c, req: req, schema: schema, created: now,
		partitions: []partition{{name: defaultPartition, id: m.id(), created: now}}}
	return ok(), nil
}

func (m *milvusService) DescribeCollection(ctx context.Context, req *milvuspb.DescribeCollectionRequest) (*milvuspb.DescribeCollectionResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if req.GetCollectionName() == "" {
		return &milvuspb.DescribeCollectionResponse{Status: invalid("fakemilvus describes collections by name, not by id")}, nil
	}
	db := dbName(ctx, req.GetDbName())
	e, st := m.get(ctx, db, req.GetCollectionName())
	if st != nil && merr.Code(merr.Error(st)) == merr.Code(merr.ErrCollectionNotFound) {
		// Milvus 2.5's proxy answers this itself (CachedProxyServiceProvider,
		// internal/proxy/service_provider.go): the legacy code only.
		st = &commonpb.Status{ErrorCode: commonpb.ErrorCode_CollectionNotExists,
			Reason:    fmt.Sprintf("can't find collection[database=%s][collection=%s]", db, req.GetCollectionName()),
			ExtraInfo: map[string]string{merr.InputErrorFlagKey: "true"}}
	}
	if st != nil {
		return &milvuspb.DescribeCollectionResponse{Status: st}, nil
	}
	d := m.dbs[db]
	ch := fmt.Sprintf("fake-dml_0_%dv0", e.id)
	return &milvuspb.DescribeCollectionResponse{
		Status:               ok(),
		Schema:               e.schema,
		CollectionID:         e.id,
		CollectionName:       req.GetCollectionName(),
		VirtualChannelNames:  []string{ch},
		PhysicalChannelNames: []string{"fake-dml_0"},
		CreatedTimestamp:     ts(e.created),
		CreatedUtcTimestamp:  uint64(e.created.UnixMilli()),
		UpdateTimestamp:      ts(e.created),
		ShardsNum:            max(e.req.GetShardsNum(), 1),
		ConsistencyLevel:     e.req.GetConsistencyLevel(),
		Properties:           e.req.GetProperties(),
		DbName:               d.name,
		NumPartitions:        int64(len(e.partitions)),
		Aliases:              d.aliasesOf(e.schema.GetName()),
	}, nil
}

func (m *milvusService) HasCollection(ctx context.Context, req *milvuspb.HasCollectionRequest) (*milvuspb.BoolResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, st := m.database(ctx, req.GetDbName())
	if st != nil {
		return &milvuspb.BoolResponse{Status: st}, nil
	}
	_, found := d.colls[req.GetCollectionName()]
	_, isAlias := d.aliases[req.GetCollectionName()]
	return &milvuspb.BoolResponse{Status: ok(), Value: found || isAlias}, nil
}

func (m *milvusService) ShowCollections(ctx context.Context, req *milvuspb.ShowCollectionsRequest) (*milvuspb.ShowCollectionsResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(req.GetCollectionNames()) > 0 {
		return &milvuspb.ShowCollectionsResponse{Status: invalid("fakemilvus lists every collection; it does not filter by collection_names")}, nil
	}
	d, st := m.database(ctx, req.GetDbName())
	if st != nil {
		return &milvuspb.ShowCollectionsResponse{Status: st}, nil
	}
	resp := &milvuspb.ShowCollectionsResponse{Status: ok()}
	for _, n := range slices.Sorted(maps.Keys(d.colls)) {
		e := d.colls[n]
		resp.CollectionNames = append(resp.CollectionNames, n)
		resp.CollectionIds = append(resp.CollectionIds, e.id)
		resp.CreatedTimestamps = append(resp.CreatedTimestamps, ts(e.created))
		resp.CreatedUtcTimestamps = append(resp.CreatedUtcTimestamps, uint64(e.created.UnixMilli()))
		resp.QueryServiceAvailable = append(resp.QueryServiceAvailable, e.loaded)
		resp.ShardsNum = append(resp.ShardsNum, max(e.req.GetShardsNum(), 1))
	}
	return resp, nil
}

func (m *milvusService) DropCollection(ctx context.Context, req *milvuspb.DropCollectionRequest) (*commonpb.Status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, st := m.database(ctx, req.GetDbName())
	if st != nil {
		return ok(), nil // as in Milvus: nothing to drop
	}
	name := req.GetCollectionName()
	if _, isAlias := d.aliases[name]; isAlias {
		return fail(fmt.Errorf("cannot drop the collection via alias = %s", name)), nil
	}
	if aliases := d.aliasesOf(name); len(aliases) > 0 {
		return fail(fmt.Errorf("unable to drop the collection [%s] because it has associated aliases %v, please remove all aliases before dropping the collection", name, aliases)), nil
	}
	// As in Milvus, dropping a missing collection succeeds.
	delete(d.colls, name)
	return ok(), nil
}

func (m *milvusService) GetCollectionStatistics(ctx context.Context, req *milvuspb.GetCollectionStatisticsRequest) (*milvuspb.GetCollectionStatisticsResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, st := m.get(ctx, req.GetDbName(), req.GetCollectionName())
	if st != nil {
		return &milvuspb.GetCollectionStatisticsResponse{Status: st}, nil
	}
	return &milvuspb.GetCollectionStatisticsResponse{
		Status: ok(),
		Stats:  []*commonpb.KeyValuePair{{Key: "row_count", Value: strconv.Itoa(len(e.rows))}},
	}, nil
}

// Loading is instantaneous, and the fake searches unloaded collections too.
func (m *milvusService) setLoaded(ctx context.Context, db, name string, loaded bool) *commonpb.Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, st := m.get(ctx, db, name)
	if st != nil {
		return st
	}
	e.loaded = loaded
	return ok()
}

func (m *milvusService) LoadCollection(ctx context.Context, req *milvuspb.LoadCollectionRequest) (*commonpb.Status, error) {
	return m.setLoaded(ctx, req.GetDbName(), req.GetCollectionName(), true), nil
}

func (m *milvusService) ReleaseCollection(ctx context.Context, req *milvuspb.ReleaseCollectionRequest) (*commonpb.Status, error) {
	return m.setLoaded(ctx, req.GetDbName(), req.GetCollectionName(), false), nil
}

func (m *milvusService) GetLoadState(ctx context.Context, req *milvuspb.GetLoadStateRequest) (*milvuspb.GetLoadStateResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, st := m.get(ctx, req.GetDbName(), req.GetCollectionName())
	if st != nil {
		return &milvuspb.GetLoadStateResponse{Status: st}, nil
	}
	state := commonpb.LoadState_LoadStateNotLoad
	if e.loaded {
		state = commonpb.LoadState_LoadStateLoaded
	}
	return &milvuspb.GetLoadStateResponse{Status: ok(), State: state}, nil
}

func (m *milvusService) GetLoadingProgress(ctx context.Context, req *milvuspb.GetLoadingProgressRequest) (*milvuspb.GetLoadingProgressResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, st := m.get(ctx, req.GetDbName(), req.GetCollectionName())
	if st != nil {
		return &milvuspb.GetLoadingProgressResponse{Status: st}, nil
	}
	if !e.loaded {
		return &milvuspb.GetLoadingProgressResponse{Status: fail(merr.WrapErrCollectionNotLoaded(req.GetCollectionName()))}, nil
	}
	return &milvuspb.GetLoadingProgressResponse{Status: ok(), Progress: 100, RefreshProgress: 100}, nil
}

// Indexes are only metadata: every index is built at once and search stays
// brute force.
func (m *milvusService) CreateIndex(ctx context.Context, req *milvuspb.CreateIndexRequest) (*commonpb.Status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, st := m.get(ctx, req.GetDbName(), req.GetCollectionName())
	if st != nil {
		return st, nil
	}
	if _, found := e.idx[req.GetFieldName()]; !found {
		return invalid("field %s does not exist", req.GetFieldName()), nil
	}
	name := req.GetIndexName()
	if name == "" {
		name = req.GetFieldName()
	}
	for _, d := range e.indexes {
		if d.GetIndexName() == name {
			return invalid("index %s already exists", name), nil
		}
	}
	e.indexes = append(e.indexes, &milvuspb.IndexDescription{
		IndexName: name,
		IndexID:   m.id(),
		Params:    req.GetExtraParams(),
		FieldName: req.GetFieldName(),
		State:     commonpb.IndexState_Finished,
	})
	return ok(), nil
}

func (m *milvusService) DescribeIndex(ctx context.Context, req *milvuspb.DescribeIndexRequest) (*milvuspb.DescribeIndexResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, st := m.get(ctx, req.GetDbName(), req.GetCollectionName())
	if st != nil {
		return &milvuspb.DescribeIndexResponse{Status: st}, nil
	}
	resp := &milvuspb.DescribeIndexResponse{Status: ok()}
	for _, d := range e.indexes {
		if (req.GetIndexName() != "" && d.GetIndexName() != req.GetIndexName()) ||
			(req.GetFieldName() != "" && d.GetFieldName() != req.GetFieldName()) {
			continue
		}
		d := proto.CloneOf(d)
		d.TotalRows, d.IndexedRows = int64(len(e.rows)), int64(len(e.rows))
		resp.IndexDescriptions = append(resp.IndexDescriptions, d)
	}
	if len(resp.IndexDescriptions) == 0 {
		resp.Status = fail(merr.WrapErrIndexNotFound(req.GetIndexName()))
	}
	return resp, nil
}

// write stores an insert or upsert into a partition (_default if none is
// named); both replace rows with the same key.
func (m *milvusService) write(ctx context.Context, db, name, part string, fields []*schemapb.FieldData, n uint32) *milvuspb.MutationResult {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, st := m.get(ctx, db, name)
	if st != nil {
		return &milvuspb.MutationResult{Status: st}
	}
	if part == "" {
		part = defaultPartition
	}
	if _, err := e.partitionSet([]string{part}); err != nil {
		return &milvuspb.MutationResult{Status: fail(err)}
	}
	rows, err := e.toRows(fields, int(n), m.id)
	if err != nil {
		return &milvuspb.MutationResult{Status: invalid("%v", err)}
	}
	e.put(rows, part)
	pks := make([]any, len(rows))
	succ := make([]uint32, len(rows))
	for i, r := range rows {
		pks[i], succ[i] = r[e.pk], uint32(i)
	}
	return &milvuspb.MutationResult{Status: ok(), IDs: e.ids(pks), SuccIndex: succ, Timestamp: ts(time.Now())}
}

func (m *milvusService) Insert(ctx context.Context, req *milvuspb.InsertRequest) (*milvuspb.MutationResult, error) {
	res := m.write(ctx, req.GetDbName(), req.GetCollectionName(), req.GetPartitionName(), req.GetFieldsData(), req.GetNumRows())
	res.InsertCnt = int64(len(res.GetSuccIndex()))
	return res, nil
}

func (m *milvusService) Upsert(ctx context.Context, req *milvuspb.UpsertRequest) (*milvuspb.MutationResult, error) {
	res := m.write(ctx, req.GetDbName(), req.GetCollectionName(), req.GetPartitionName(), req.GetFieldsData(), req.GetNumRows())
	res.UpsertCnt = int64(len(res.GetSuccIndex()))
	return res, nil
}

func (m *milvusService) Delete(ctx context.Context, req *milvuspb.DeleteRequest) (*milvuspb.MutationResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, st := m.get(ctx, req.GetDbName(), req.GetCollectionName())
	if st != nil {
		return &milvuspb.MutationResult{Status: st}, nil
	}
	pos, err := e.match(req.GetExpr())
	if err != nil {
		return &milvuspb.MutationResult{Status: invalid("%v", err)}, nil
	}
	var names []string
	if req.GetPartitionName() != "" {
		names = []string{req.GetPartitionName()}
	}
	parts, err := e.partitionSet(names)
	if err != nil {
		return &milvuspb.MutationResult{Status: fail(err)}, nil
	}
	pos = e.inPartitions(pos, parts)
	pks := make([]any, len(pos))
	for i, p := range pos {
		pks[i] = e.rows[p][e.pk]
	}
	e.remove(pos)
	return &milvuspb.MutationResult{Status: ok(), IDs: e.ids(pks), DeleteCnt: int64(len(pos)), Timestamp: ts(time.Now())}, nil
}

// Flush has nothing to persist; it answers with an empty segment list that
// GetFlushState then reports flushed.
func (m *milvusService) Flush(ctx context.Context, req *milvuspb.FlushRequest) (*milvuspb.FlushResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	resp := &milvuspb.FlushResponse{
		Status:          ok(),
		DbName:          dbName(ctx, req.GetDbName()),
		CollSegIDs:      map[string]*schemapb.LongArray{},
		FlushCollSegIDs: map[string]*schemapb.LongArray{},
		CollSealTimes:   map[string]int64{},
		CollFlushTs:     map[string]uint64{},
	}
	now := time.Now()
	for _, name := range req.GetCollectionNames() {
		if _, st := m.get(ctx, req.GetDbName(), name); st != nil {
			return &milvuspb.FlushResponse{Status: st}, nil
		}
		resp.CollSegIDs[name] = &schemapb.LongArray{}
		resp.FlushCollSegIDs[name] = &schemapb.LongArray{}
		resp.CollSealTimes[name] = now.Unix()
		resp.CollFlushTs[name] = ts(now)
	}
	return resp, nil
}

func (m *milvusService) GetFlushState(context.Context, *milvuspb.GetFlushStateRequest) (*milvuspb.GetFlushStateResponse, error) {
	return &milvuspb.GetFlushStateResponse{Status: ok(), Flushed: true}, nil
}

func param(kvs []*commonpb.KeyValuePair, key string) string {
	for _, kv := range kvs {
		if kv.GetKey() == key {
			return kv.GetValue()
		}
	}
	return ""
}

func intParam(kvs []*commonpb.KeyValuePair, key string, def int) (int, error) {
	v := param(kvs, key)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad %s %q", key, v)
	}
	return n, nil
}

// outputs resolves requested output field names to columns: the primary key
// always, "*" for every schema field, and the dynamic $meta column for names
// outside the schema.
func (e *entry) outputs(requested []string) (cols []int, err error) {
	seen := map[int]bool{}
	add := func(i int) {
		if !seen[i] {
			seen[i] = true
			cols = append(cols, i)
		}
	}
	add(e.pk)
	for _, name := range requested {
		if name == "*" {
			for i, f := range e.cols {
				if !f.GetIsDynamic() {
					add(i)
				}
			}
			if dyn, found := e.idx[dynamicField]; found {
				add(dyn)
			}
			continue
		}
		i, found := e.idx[name]
		if !found {
			if i, found = e.idx[dynamicField]; !found {
				return nil, fmt.Errorf("field %s does not exist", name)
			}
		}
		add(i)
	}
	return cols, nil
}

func (e *entry) columns(cols []int, rows [][]any) []*schemapb.FieldData {
	out := make([]*schemapb.FieldData, len(cols))
	for i, c := range cols {
		out[i] = fieldData(e.cols[c], c, rows)
	}
	return out
}

func (m *milvusService) Search(ctx context.Context, req *milvuspb.SearchRequest) (*milvuspb.SearchResults, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, st := m.get(ctx, req.GetDbName(), req.GetCollectionName())
	if st != nil {
		return &milvuspb.SearchResults{Status: st}, nil
	}
	res, err := e.search(req)
	if err != nil {
		return &milvuspb.SearchResults{Status: errStatus(err)}, nil
	}
	return &milvuspb.SearchResults{Status: ok(), Results: res, CollectionName: req.GetCollectionName()}, nil
}

func (e *entry) search(req *milvuspb.SearchRequest) (*schemapb.SearchResultData, error) {
	sp := req.GetSearchParams()
	topK, err := intParam(sp, "topk", 10)
	if err != nil {
		return nil, err
	}
	offset, err := intParam(sp, "offset", 0)
	if err != nil {
		return nil, err
	}
	field := param(sp, "anns_field")
	if field == "" {
		for _, f := range e.cols {
			if f.GetDataType() == schemapb.DataType_FloatVector {
				field = f.GetName()
				break
			}
		}
	}
	col, found := e.idx[field]
	if !found || e.cols[col].GetDataType() != schemapb.DataType_FloatVector {
		return nil, fmt.Errorf("fakemilvus searches float vector fields only, not %q", field)
	}
	metric := param(sp, "metric_type")
	for _, d := range e.indexes {
		if metric == "" && d.GetFieldName() == field {
			metric = param(d.GetParams(), "metric_type")
		}
	}
	if metric == "" {
		metric = "L2"
	}
	var group commonpb.PlaceholderGroup
	if err := proto.Unmarshal(req.GetPlaceholderGroup(), &group); err != nil {
		return nil, fmt.Errorf("bad placeholder group: %v", err)
	}
	if len(group.GetPlaceholders()) != 1 || group.GetPlaceholders()[0].GetType() != commonpb.PlaceholderType_FloatVector {
		return nil, errors.New("fakemilvus searches with one group of float vectors only")
	}
	candidates, err := e.match(req.GetDsl())
	if err != nil {
		return nil, err
	}
	parts, err := e.partitionSet(req.GetPartitionNames())
	if err != nil {
		return nil, err
	}
	candidates = e.inPartitions(candidates, parts)
	bounds, err := rangeOf(param(sp, "params"))
	if err != nil {
		return nil, err
	}
	cols, err := e.outputs(req.GetOutputFields())
	if err != nil {
		return nil, err
	}

	queries := group.GetPlaceholders()[0].GetValues()
	res := &schemapb.SearchResultData{NumQueries: int64(len(queries)), TopK: int64(topK), PrimaryFieldName: e.cols[e.pk].GetName()}
	var pks []any
	var rows [][]any
	for _, q := range queries {
		// Checked against the schema, not only the stored rows, so an
		// empty collection refuses a wrong dim too.
		if d := dim(e.cols[col]); len(q) != 4*d {
			return nil, fmt.Errorf("query vector has dim %d, field %q has %d", len(q)/4, field, d)
		}
		hits, err := e.collection.search(col, metric, bytesToFloats(q), candidates, bounds, topK, offset)
		if err != nil {
			return nil, err
		}
		res.Topks = append(res.Topks, int64(len(hits)))
		for _, h := range hits {
			r := e.rows[h.row]
			pks = append(pks, r[e.pk])
			rows = append(rows, r)
			res.Scores = append(res.Scores, h.score)
		}
	}
	res.Ids = e.ids(pks)
	res.FieldsData = e.columns(cols, rows)
	for _, c := range cols {
		res.OutputFields = append(res.OutputFields, e.cols[c].GetName())
	}
	return res, nil
}

// rangeOf reads radius and range_filter from the search params' "params"
// JSON; other keys (nprobe, ef, ...) tune real indexes and are ignored.
func rangeOf(params string) (scoreRange, error) {
	var r scoreRange
	if params == "" {
		return r, nil
	}
	var p map[string]any
	if err := json.Unmarshal([]byte(params), &p); err != nil {
		return r, fmt.Errorf("bad search params %q: %v", params, err)
	}
	for key, dst := range map[string]struct {
		v   *float64
		has *bool
	}{"radius": {&r.radius, &r.hasRadius}, "range_filter": {&r.rangeFilter, &r.hasRangeFilter}} {
		v, found := p[key]
		if !found {
			continue
		}
		f, isNum := v.(float64)
		if !isNum {
			return r, fmt.Errorf("search param %s must be a number, not %v", key, v)
		}
		*dst.v, *dst.has = f, true
	}
	return r, nil
}

func (m *milvusService) Query(ctx context.Context, req *milvuspb.QueryRequest) (*milvuspb.QueryResults, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, st := m.get(ctx, req.GetDbName(), req.GetCollectionName())
	if st != nil {
		return &milvuspb.QueryResults{Status: st}, nil
	}
	res, err := e.query(req)
	if err != nil {
		return &milvuspb.QueryResults{Status: errStatus(err)}, nil
	}
	return res, nil
}

func (e *entry) query(req *milvuspb.QueryRequest) (*milvuspb.QueryResults, error) {
	pos, err := e.match(req.GetExpr())
	if err != nil {
		return nil, err
	}
	parts, err := e.partitionSet(req.GetPartitionNames())
	if err != nil {
		return nil, err
	}
	pos = e.inPartitions(pos, parts)
	res := &milvuspb.QueryResults{Status: ok(), CollectionName: req.GetCollectionName(), PrimaryFieldName: e.cols[e.pk].GetName()}
	if slices.Equal(req.GetOutputFields(), []string{"count(*)"}) {
		res.OutputFields = []string{"count(*)"}
		res.FieldsData = []*schemapb.FieldData{{
			Type: schemapb.DataType_Int64, FieldName: "count(*)",
			Field: &schemapb.FieldData_Scalars{Scalars: &schemapb.ScalarField{Data: &schemapb.ScalarField_LongData{LongData: &schemapb.LongArray{Data: []int64{int64(len(pos))}}}}},
		}}
		return res, nil
	}
	offset, err := intParam(req.GetQueryParams(), "offset", 0)
	if err != nil {
		return nil, err
	}
	limit, err := intParam(req.GetQueryParams(), "limit", len(pos))
	if err != nil {
		return nil, err
	}
	pos = pos[min(offset, len(pos)):]
	pos = pos[:min(limit, len(pos))]
	cols, err := e.outputs(req.GetOutputFields())
	if err != nil {
		return nil, err
	}
	rows := make([][]any, len(pos))
	for i, p := range pos {
		rows[i] = e.rows[p]
	}
	res.FieldsData = e.columns(cols, rows)
	// The SDK names its result columns after these: schema fields plus the
	// requested dynamic keys, which it extracts from $meta.
	for _, c := range cols {
		if !e.cols[c].GetIsDynamic() {
			res.OutputFields = append(res.OutputFields, e.cols[c].GetName())
		}
	}
	for _, name := range req.GetOutputFields() {
		if _, found := e.idx[name]; !found {
			res.OutputFields = append(res.OutputFields, name)
		}
	}
	return res, nil
}

func bytesToFloats(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[i*4:]))
	}
	return out
}
