package rbac

import (
	"fmt"
	"slices"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// What Milvus's RootCoord filters, and authproxy must, since the backend
// behind it has RBAC off: ShowCollections and ListDatabases answer only
// what the caller may see, and DescribeCollection and DescribeDatabase
// refuse what it may not (Milvus 2.5.12).

var (
	methodShowCollections    = "/" + Service + "/ShowCollections"
	methodListDatabases      = "/" + Service + "/ListDatabases"
	methodDescribeCollection = "/" + Service + "/DescribeCollection"
	methodDescribeDatabase   = "/" + Service + "/DescribeDatabase"
)

// Visibility checks a call against what the caller may see, and returns a
// filter for its reply when the reply lists objects. c has passed
// Authorize.
func (a *Authorizer) Visibility(c Call) (filter func(reply []byte) ([]byte, error), err error) {
	switch c.Method {
	case methodShowCollections, methodListDatabases, methodDescribeCollection, methodDescribeDatabase:
	default:
		return nil, nil
	}
	s := a.policy().subjectOf(c.Principal)
	if s.all {
		return nil, nil
	}
	t, err := Scan(&Rule{NameField: nameFieldOf(c.Method), DBField: dbFieldOf(c.Method)}, c.Message)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, "authproxy: "+err.Error())
	}
	db := string(t.DB)
	if db == "" {
		db = c.MetadataDB
	}
	if db == "" {
		db = DefaultDB
	}
	switch c.Method {
	case methodDescribeCollection:
		// Milvus looks the collection up before it checks visibility, so a
		// name that exists nowhere is "collection not found" for anyone
		// (what the ORM's has_collection relies on) and only an existing
		// collection is refused: the call goes to the backend and its
		// answer decides, which leaks no more than Milvus does.
		if name := string(t.Name); name != "" {
			return func(reply []byte) ([]byte, error) { return a.describedCollection(c, s, db, name, reply) }, nil
		}
	case methodDescribeDatabase:
		// Milvus checks visibility first: the backend's answer is not
		// needed, and none of it reaches the caller.
		if !s.seesDatabase(db) {
			refusal := a.notVisible(c, "database", db, db)
			return func([]byte) ([]byte, error) {
				return proto.Marshal(&milvuspb.DescribeDatabaseResponse{Status: refusal})
			}, nil
		}
	case methodShowCollections:
		return func(reply []byte) ([]byte, error) { return filterCollections(s, db, reply) }, nil
	case methodListDatabases:
		return func(reply []byte) ([]byte, error) { return filterDatabases(s, reply) }, nil
	}
	return nil, nil
}

// describedCollection answers a DescribeCollection as Milvus 2.5.12+
// does: the backend's refusal (collection not found) as it is, and a
// collection the caller may not see as an OK reply whose status is
// ErrPrivilegeNotPermitted. Visibility is of the collection the backend
// found (through an alias, the aliased one), as RootCoord checks it.
func (a *Authorizer) describedCollection(c Call, s *subject, db, name string, reply []byte) ([]byte, error) {
	var r milvuspb.DescribeCollectionResponse
	if err := proto.Unmarshal(reply, &r); err != nil {
		return nil, fmt.Errorf("authproxy: read DescribeCollection reply: %w", err)
	}
	if r.GetStatus().GetCode() != 0 || r.GetStatus().GetErrorCode() != commonpb.ErrorCode_Success {
		return reply, nil
	}
	found := r.GetSchema().GetName()
	if found == "" {
		found = name
	}
	if s.seesCollection(db, found) {
		return reply, nil
	}
	return proto.Marshal(&milvuspb.DescribeCollectionResponse{Status: a.notVisible(c, "collection", name, db)})
}

// CollectionRefusal is describedCollection for the REST adapter, whose
// reply is JSON: nil when who may see the collection name of db (which
// the backend found), else the status to answer.
func (a *Authorizer) CollectionRefusal(c Call, db, name string) *commonpb.Status {
	s := a.policy().subjectOf(c.Principal)
	if s.seesCollection(db, name) {
		return nil
	}
	return a.notVisible(c, "collection", name, db)
}

// DatabaseRefusal is Visibility's refusal of DescribeDatabase for the REST
// adapter: nil when who may see db.
func (a *Authorizer) DatabaseRefusal(c Call, db string) *commonpb.Status {
	if a.policy().subjectOf(c.Principal).seesDatabase(db) {
		return nil
	}
	return a.notVisible(c, "database", db, db)
}

// notVisible is RootCoord's refusal (describe_collection_task.go,
// describe_db_task.go): merr.WrapErrPrivilegeNotPermitted, code 1401, in
// the reply's status rather than as a gRPC error.
func (a *Authorizer) notVisible(c Call, kind, name, db string) *commonpb.Status {
	a.metrics.decisions.WithLabelValues("denied", "visibility").Inc()
	a.logger.Warn("audit: call denied", "user", c.User, "source", sourceOf(c.Principal), "method", c.Method, "privilege", "visibility", "object", kind, "name", name, "db", db)
	return &commonpb.Status{
		ErrorCode: commonpb.ErrorCode_UnexpectedError,
		Code:      CodePrivilegeNotPermitted,
		Reason:    fmt.Sprintf("not allowed to access %s, %s name: %s: privilege not permitted", kind, dbOrCollection(kind), name),
	}
}

// CodePrivilegeNotPermitted is merr.ErrPrivilegeNotPermitted's code.
const CodePrivilegeNotPermitted = 1401

func dbOrCollection(kind string) string {
	if kind == "database" {
		return "db"
	}
	return kind
}

// nameFieldOf and dbFieldOf are where these requests name their
// collection and database, read from the descriptors.
func nameFieldOf(method string) protowire.Number {
	if method == methodDescribeCollection {
		return fieldNumber(&milvuspb.DescribeCollectionRequest{}, "collection_name")
	}
	return 0
}

func dbFieldOf(method string) protowire.Number {
	switch method {
	case methodShowCollections:
		return fieldNumber(&milvuspb.ShowCollectionsRequest{}, "db_name")
	case methodDescribeCollection:
		return fieldNumber(&milvuspb.DescribeCollectionRequest{}, "db_name")
	case methodDescribeDatabase:
		return fieldNumber(&milvuspb.DescribeDatabaseRequest{}, "db_name")
	}
	return 0
}

func fieldNumber(m proto.Message, name protoreflect.Name) protowire.Number {
	if f := m.ProtoReflect().Descriptor().Fields().ByName(name); f != nil {
		return f.Number()
	}
	return 0
}

// filterCollections keeps the collections s may see, every parallel array
// together.
func filterCollections(s *subject, db string, reply []byte) ([]byte, error) {
	var r milvuspb.ShowCollectionsResponse
	if err := proto.Unmarshal(reply, &r); err != nil {
		return nil, fmt.Errorf("authproxy: filter ShowCollections reply: %w", err)
	}
	keep := make([]bool, len(r.CollectionNames))
	for i, name := range r.CollectionNames {
		keep[i] = s.seesCollection(db, name)
	}
	pickParallel(&r, keep)
	return proto.Marshal(&r)
}

func filterDatabases(s *subject, reply []byte) ([]byte, error) {
	var r milvuspb.ListDatabasesResponse
	if err := proto.Unmarshal(reply, &r); err != nil {
		return nil, fmt.Errorf("authproxy: filter ListDatabases reply: %w", err)
	}
	keep := make([]bool, len(r.DbNames))
	for i, name := range r.DbNames {
		keep[i] = s.seesDatabase(name)
	}
	pickParallel(&r, keep)
	return proto.Marshal(&r)
}

// pickParallel keeps, in every repeated field of m as long as keep, the
// entries keep marks: the names and each array that runs beside them
// (ids, timestamps, shards, and any a newer proto adds). A repeated field
// of another length is not parallel to the names and is cleared rather
// than left misaligned.
func pickParallel(m proto.Message, keep []bool) {
	r := m.ProtoReflect()
	fields := r.Descriptor().Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		if !f.IsList() {
			continue
		}
		list := r.Mutable(f).List()
		if list.Len() != len(keep) {
			r.Clear(f)
			continue
		}
		kept := 0
		for j := range list.Len() {
			if keep[j] {
				list.Set(kept, list.Get(j))
				kept++
			}
		}
		list.Truncate(kept)
	}
}

// MessageFields are the top-level fields of method's request message that
// a decision reads (Authorize and Visibility), and whether it reads the
// message at all. The frame relay decides on a prefix of the message that
// holds them, and refuses the call if one of them comes again after it.
func (a *Authorizer) MessageFields(method string) ([]protowire.Number, bool) {
	return a.Table().MessageFields(method)
}

// MessageFields: see Authorizer.MessageFields.
// Visibility reads the database of ShowCollections, which names no object.
func (t *Table) MessageFields(method string) ([]protowire.Number, bool) {
	rule, named := t.Rule(method)
	if !named {
		rule = &Rule{}
	}
	if !named && nameFieldOf(method) == 0 && dbFieldOf(method) == 0 {
		return nil, false
	}
	var out []protowire.Number
	for _, n := range []protowire.Number{rule.NameField, rule.NamesField, rule.DBField, nameFieldOf(method), dbFieldOf(method)} {
		if n != 0 && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, true
}
