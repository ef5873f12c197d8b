package fakemilvus

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus/pkg/v2/util/merr"
	"google.golang.org/grpc/metadata"
)

// Databases, partitions and aliases, kept as Milvus 2.5's RootCoord keeps
// them (internal/rootcoord/meta_table.go and the *_task.go files): every
// database has its own collections and aliases, "default" always exists
// and cannot be dropped, and a collection starts with partition _default.

const (
	defaultDB        = "default"
	defaultPartition = "_default"
)

// database is one namespace of collections and aliases.
type database struct {
	id      int64
	name    string
	created time.Time
	props   []*commonpb.KeyValuePair
	colls   map[string]*entry
	aliases map[string]string // alias -> collection name
}

func newDatabase(id int64, name string, props []*commonpb.KeyValuePair) *database {
	return &database{id: id, name: name, created: time.Now(), props: props, colls: map[string]*entry{}, aliases: map[string]string{}}
}

// partition is one partition of a collection; rows name theirs.
type partition struct {
	name    string
	id      int64
	created time.Time
}

// dbName is the database of a request as Milvus's DatabaseInterceptor
// sets it: the request's db_name, else the dbname metadata, else default.
func dbName(ctx context.Context, fromBody string) string {
	if fromBody != "" {
		return fromBody
	}
	if v := metadata.ValueFromIncomingContext(ctx, "dbname"); len(v) > 0 && v[0] != "" {
		return v[0]
	}
	return defaultDB
}

// database returns the request's database, or database-not-found. It must
// be called with m.mu held.
func (m *milvusService) database(ctx context.Context, fromBody string) (*database, *commonpb.Status) {
	name := dbName(ctx, fromBody)
	d, found := m.dbs[name]
	if !found {
		return nil, fail(merr.WrapErrDatabaseNotFound(name))
	}
	return d, nil
}

// get returns the named collection (or the one an alias names) of the
// request's database, or a not-found status. It must be called with m.mu
// held.
func (m *milvusService) get(ctx context.Context, db, name string) (*entry, *commonpb.Status) {
	d, st := m.database(ctx, db)
	if st != nil {
		return nil, st
	}
	if target, isAlias := d.aliases[name]; isAlias {
		name = target
	}
	e, found := d.colls[name]
	if !found {
		return nil, fail(merr.WrapErrCollectionNotFoundWithDB(d.name, name))
	}
	return e, nil
}

func (m *milvusService) CreateDatabase(ctx context.Context, req *milvuspb.CreateDatabaseRequest) (*commonpb.Status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	name := req.GetDbName()
	if name == "" {
		return fail(merr.WrapErrDatabaseNameInvalid(name, "database name couldn't be empty")), nil
	}
	if _, exists := m.dbs[name]; exists {
		return fail(fmt.Errorf("database already exist: %s", name)), nil
	}
	m.dbs[name] = newDatabase(m.id(), name, req.GetProperties())
	return ok(), nil
}

func (m *milvusService) DropDatabase(_ context.Context, req *milvuspb.DropDatabaseRequest) (*commonpb.Status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	name := req.GetDbName()
	d, found := m.dbs[name]
	switch {
	case name == defaultDB:
		return fail(errors.New("can not drop default database")), nil
	case !found:
		return ok(), nil // as in Milvus: dropping a missing database succeeds
	case len(d.colls) > 0:
		return fail(fmt.Errorf("database:%s not empty, must drop all collections before drop database", name)), nil
	}
	delete(m.dbs, name)
	return ok(), nil
}

func (m *milvusService) ListDatabases(context.Context, *milvuspb.ListDatabasesRequest) (*milvuspb.ListDatabasesResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	resp := &milvuspb.ListDatabasesResponse{Status: ok()}
	for _, name := range slices.Sorted(maps.Keys(m.dbs)) {
		d := m.dbs[name]
		resp.DbNames = append(resp.DbNames, name)
		resp.DbIds = append(resp.DbIds, d.id)
		resp.CreatedTimestamp = append(resp.CreatedTimestamp, ts(d.created))
	}
	return resp, nil
}

func (m *milvusService) DescribeDatabase(ctx context.Context, req *milvuspb.DescribeDatabaseRequest) (*milvuspb.DescribeDatabaseResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, st := m.database(ctx, req.GetDbName())
	if st != nil {
		return &milvuspb.DescribeDatabaseResponse{Status: st}, nil
	}
	return &milvuspb.DescribeDatabaseResponse{Status: ok(), DbName: d.name, DbID: d.id, CreatedTimestamp: ts(d.created), Properties: d.props}, nil
}

// AlterDatabase sets properties; deleting keys (delete_keys) is refused.
func (m *milvusService) AlterDatabase(ctx context.Context, req *milvuspb.AlterDatabaseRequest) (*commonpb.Status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(req.GetDeleteKeys()) > 0 {
		return invalid("fakemilvus does not delete database properties"), nil
	}
	d, st := m.database(ctx, req.GetDbName())
	if st != nil {
		return st, nil
	}
	for _, kv := range req.GetProperties() {
		i := slices.IndexFunc(d.props, func(p *commonpb.KeyValuePair) bool { return p.GetKey() == kv.GetKey() })
		if i < 0 {
			d.props = append(d.props, kv)
		} else {
			d.props[i] = kv
		}
	}
	return ok(), nil
}

// partitionSet resolves partition names to a set; none names every
// partition. It must be called with m.mu held.
func (e *entry) partitionSet(names []string) (map[string]bool, error) {
	if len(names) == 0 {
		return nil, nil
	}
	set := map[string]bool{}
	for _, n := range names {
		if !e.hasPartition(n) {
			return nil, merr.WrapErrPartitionNotFound(n)
		}
		set[n] = true
	}
	return set, nil
}

func (e *entry) hasPartition(name string) bool {
	return slices.ContainsFunc(e.partitions, func(p partition) bool { return p.name == name })
}

// inPartitions keeps the row positions that lie in set (nil: every one).
func (e *entry) inPartitions(pos []int, set map[string]bool) []int {
	if set == nil {
		return pos
	}
	return slices.DeleteFunc(pos, func(i int) bool { return !set[e.partitionOf(i)] })
}

func (m *milvusService) CreatePartition(ctx context.Context, req *milvuspb.CreatePartitionRequest) (*commonpb.Status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, st := m.get(ctx, req.GetDbName(), req.GetCollectionName())
	if st != nil {
		return st, nil
	}
	name := req.GetPartitionName()
	if name == "" {
		return invalid("partition name should not be empty"), nil
	}
	// As in Milvus, creating an existing partition succeeds.
	if !e.hasPartition(name) {
		e.partitions = append(e.partitions, partition{name: name, id: m.id(), created: time.Now()})
	}
	return ok(), nil
}

func (m *milvusService) DropPartition(ctx context.Context, req *milvuspb.DropPartitionRequest) (*commonpb.Status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, st := m.get(ctx, req.GetDbName(), req.GetCollectionName())
	if st != nil {
		return st, nil
	}
	name := req.GetPartitionName()
	if name == defaultPartition {
		return fail(errors.New("default partition cannot be deleted")), nil
	}
	i := slices.IndexFunc(e.partitions, func(p partition) bool { return p.name == name })
	if i < 0 {
		return ok(), nil // as in Milvus: dropping a missing partition succeeds
	}
	e.partitions = slices.Delete(e.partitions, i, i+1)
	var rows []int
	for r := range e.rows {
		if e.partitionOf(r) == name {
			rows = append(rows, r)
		}
	}
	e.remove(rows)
	return ok(), nil
}

func (m *milvusService) HasPartition(ctx context.Context, req *milvuspb.HasPartitionRequest) (*milvuspb.BoolResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, st := m.get(ctx, req.GetDbName(), req.GetCollectionName())
	if st != nil {
		return &milvuspb.BoolResponse{Status: st}, nil
	}
	has := e.hasPartition(req.GetPartitionName())
	return &milvuspb.BoolResponse{Status: ok(), Value: has}, nil
}

func (m *milvusService) ShowPartitions(ctx context.Context, req *milvuspb.ShowPartitionsRequest) (*milvuspb.ShowPartitionsResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, st := m.get(ctx, req.GetDbName(), req.GetCollectionName())
	if st != nil {
		return &milvuspb.ShowPartitionsResponse{Status: st}, nil
	}
	if len(req.GetPartitionNames()) > 0 {
		return &milvuspb.ShowPartitionsResponse{Status: invalid("fakemilvus lists every partition; it does not filter by partition_names")}, nil
	}
	resp := &milvuspb.ShowPartitionsResponse{Status: ok()}
	for _, p := range e.partitions {
		resp.PartitionNames = append(resp.PartitionNames, p.name)
		resp.PartitionIDs = append(resp.PartitionIDs, p.id)
		resp.CreatedTimestamps = append(resp.CreatedTimestamps, ts(p.created))
		resp.CreatedUtcTimestamps = append(resp.CreatedUtcTimestamps, uint64(p.created.UnixMilli()))
		resp.InMemoryPercentages = append(resp.InMemoryPercentages, 100)
	}
	return resp, nil
}

// LoadPartitions and ReleasePartitions load or release the collection:
// the fake searches unloaded collections anyway.
func (m *milvusService) LoadPartitions(ctx context.Context, req *milvuspb.LoadPartitionsRequest) (*commonpb.Status, error) {
	return m.setPartitionsLoaded(ctx, req.GetDbName(), req.GetCollectionName(), req.GetPartitionNames(), true), nil
}

func (m *milvusService) ReleasePartitions(ctx context.Context, req *milvuspb.ReleasePartitionsRequest) (*commonpb.Status, error) {
	return m.setPartitionsLoaded(ctx, req.GetDbName(), req.GetCollectionName(), req.GetPartitionNames(), false), nil
}

func (m *milvusService) setPartitionsLoaded(ctx context.Context, db, coll string, names []string, loaded bool) *commonpb.Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, st := m.get(ctx, db, coll)
	if st != nil {
		return st
	}
	if _, err := e.partitionSet(names); err != nil {
		return fail(err)
	}
	e.loaded = loaded
	return ok()
}

func (m *milvusService) CreateAlias(ctx context.Context, req *milvuspb.CreateAliasRequest) (*commonpb.Status, error) {
	return m.setAlias(ctx, req.GetDbName(), req.GetAlias(), req.GetCollectionName(), true), nil
}

func (m *milvusService) AlterAlias(ctx context.Context, req *milvuspb.AlterAliasRequest) (*commonpb.Status, error) {
	return m.setAlias(ctx, req.GetDbName(), req.GetAlias(), req.GetCollectionName(), false), nil
}

// setAlias points alias at coll: a new alias (create), or an existing one
// moved, with MetaTable.CreateAlias's and AlterAlias's checks.
func (m *milvusService) setAlias(ctx context.Context, db, alias, coll string, create bool) *commonpb.Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, st := m.database(ctx, db)
	if st != nil {
		return st
	}
	_, isColl := d.colls[alias]
	_, exists := d.aliases[alias]
	switch {
	case isColl:
		return fail(merr.WrapErrAliasCollectionNameConflict(d.name, alias))
	case d.colls[coll] == nil && create:
		return fail(merr.WrapErrCollectionNotFoundWithDB(d.name, coll)) // an alias of an alias too
	case d.colls[coll] == nil:
		return fail(merr.WrapErrCollectionNotFound(coll))
	case create && exists:
		return fail(merr.WrapErrAliasAlreadyExist(d.name, alias))
	case !create && !exists:
		return fail(merr.WrapErrAliasNotFound(d.name, alias))
	}
	d.aliases[alias] = coll
	return ok()
}

func (m *milvusService) DropAlias(ctx context.Context, req *milvuspb.DropAliasRequest) (*commonpb.Status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, st := m.database(ctx, req.GetDbName())
	if st != nil {
		return st, nil
	}
	delete(d.aliases, req.GetAlias()) // as in Milvus: dropping a missing alias succeeds
	return ok(), nil
}

func (m *milvusService) DescribeAlias(ctx context.Context, req *milvuspb.DescribeAliasRequest) (*milvuspb.DescribeAliasResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, st := m.database(ctx, req.GetDbName())
	if st != nil {
		return &milvuspb.DescribeAliasResponse{Status: st}, nil
	}
	coll, found := d.aliases[req.GetAlias()]
	if !found {
		return &milvuspb.DescribeAliasResponse{Status: fail(merr.WrapErrAliasNotFound(d.name, req.GetAlias()))}, nil
	}
	return &milvuspb.DescribeAliasResponse{Status: ok(), DbName: d.name, Alias: req.GetAlias(), Collection: coll}, nil
}

func (m *milvusService) ListAliases(ctx context.Context, req *milvuspb.ListAliasesRequest) (*milvuspb.ListAliasesResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, st := m.database(ctx, req.GetDbName())
	if st != nil {
		return &milvuspb.ListAliasesResponse{Status: st}, nil
	}
	coll := req.GetCollectionName()
	if coll != "" && d.colls[coll] == nil {
		return &milvuspb.ListAliasesResponse{Status: fail(merr.WrapErrCollectionNotFound(coll))}, nil
	}
	resp := &milvuspb.ListAliasesResponse{Status: ok(), DbName: d.name, CollectionName: coll}
	for _, alias := range slices.Sorted(maps.Keys(d.aliases)) {
		if coll == "" || d.aliases[alias] == coll {
			resp.Aliases = append(resp.Aliases, alias)
		}
	}
	return resp, nil
}

// aliasesOf lists a collection's aliases, sorted.
func (d *database) aliasesOf(coll string) []string {
	var out []string
	for _, alias := range slices.Sorted(maps.Keys(d.aliases)) {
		if d.aliases[alias] == coll {
			out = append(out, alias)
		}
	}
	return out
}

func (m *milvusService) DropIndex(ctx context.Context, req *milvuspb.DropIndexRequest) (*commonpb.Status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, st := m.get(ctx, req.GetDbName(), req.GetCollectionName())
	if st != nil {
		return st, nil
	}
	if e.loaded {
		return fail(errors.New("index cannot be dropped, collection is loaded, please release it first")), nil
	}
	// As in Milvus, dropping an index that does not exist succeeds.
	e.indexes = slices.DeleteFunc(e.indexes, func(d *milvuspb.IndexDescription) bool {
		return (req.GetIndexName() == "" || d.GetIndexName() == req.GetIndexName()) &&
			(req.GetFieldName() == "" || d.GetFieldName() == req.GetFieldName())
	})
	return ok(), nil
}

// ManualCompaction has nothing to compact: it answers a compaction id that
// GetCompactionState reports completed.
func (m *milvusService) ManualCompaction(ctx context.Context, req *milvuspb.ManualCompactionRequest) (*milvuspb.ManualCompactionResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, st := m.get(ctx, req.GetDbName(), req.GetCollectionName()); st != nil {
		return &milvuspb.ManualCompactionResponse{Status: st}, nil
	}
	return &milvuspb.ManualCompactionResponse{Status: ok(), CompactionID: m.id(), CompactionPlanCount: 0}, nil
}

func (m *milvusService) GetCompactionState(context.Context, *milvuspb.GetCompactionStateRequest) (*milvuspb.GetCompactionStateResponse, error) {
	return &milvuspb.GetCompactionStateResponse{Status: ok(), State: commonpb.CompactionState_Completed}, nil
}
