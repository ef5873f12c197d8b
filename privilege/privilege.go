// Package privilege is Milvus's catalogue of privileges and privilege
// groups: their names, the object type each applies to, what each group
// holds and at which level. The names come from the commonpb.ObjectPrivilege
// enum of the linked milvus-proto; which privilege a v1 grant may name per
// object type, and the groups' contents, are Milvus server rules that the
// protos do not carry (pkg/util/constant.go and configs/milvus.yaml of
// Milvus 2.5.27), copied here.
package privilege

import (
	"slices"
	"strings"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
)

// Object types, as commonpb.ObjectType names them.
const (
	Collection = "Collection"
	Global     = "Global"
	User       = "User"
)

// All is the privilege that covers every privilege; Any ("*") too, as a name.
const (
	All = "All"
	Any = "*"
)

// Levels of a privilege: the scope a grant of it may have.
const (
	LevelCluster    = "Cluster"
	LevelDatabase   = "Database"
	LevelCollection = "Collection"
)

// apiNames maps the API names (Load, CollectionReadOnly) to the enum.
var apiNames = func() map[string]commonpb.ObjectPrivilege {
	out := map[string]commonpb.ObjectPrivilege{}
	for v, name := range commonpb.ObjectPrivilege_name {
		out[apiName(name)] = commonpb.ObjectPrivilege(v)
	}
	return out
}()

// apiName drops the enum's prefix: PrivilegeLoad → Load,
// PrivilegeGroupReadOnly → ReadOnly (util.MetaStore2API).
func apiName(enum string) string {
	if s, ok := strings.CutPrefix(enum, "PrivilegeGroup"); ok {
		return s
	}
	return strings.TrimPrefix(enum, "Privilege")
}

// Known reports whether name is a privilege or built-in group of the linked
// protos (by its API name).
func Known(name string) bool {
	_, ok := apiNames[name]
	return ok
}

// EnumName is the name Milvus puts in a denial ("PrivilegeLoad"): the enum
// value's name.
func EnumName(api string) string {
	if v, ok := apiNames[api]; ok {
		return v.String()
	}
	return "Privilege" + api
}

// FromEnumName is the API name of an enum name found in a descriptor.
func FromEnumName(enum string) string { return apiName(enum) }

// Names lists every privilege and built-in group by API name, sorted.
func Names() []string {
	out := make([]string, 0, len(apiNames))
	for n := range apiNames {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// v1 grants: which privilege each object type accepts (util.ObjectPrivileges).
var v1Grantable = map[string][]string{
	Collection: {"Load", "Release", "Compaction", "Insert", "Delete", "Upsert", "GetStatistics", "CreateIndex",
		"IndexDetail", "DropIndex", "Search", "Flush", "Query", "LoadBalance", "Import", "GetLoadingProgress",
		"GetLoadState", "CreatePartition", "DropPartition", "ShowPartitions", "HasPartition", "GetFlushState",
		"AddCollectionField", "ReadOnly", "ReadWrite"},
	Global: {All, "CreateCollection", "DropCollection", "DescribeCollection", "ShowCollections", "RenameCollection",
		"CreateOwnership", "DropOwnership", "SelectOwnership", "ManageOwnership", "BackupRBAC", "RestoreRBAC",
		"CreateResourceGroup", "UpdateResourceGroups", "DropResourceGroup", "DescribeResourceGroup",
		"ListResourceGroups", "TransferReplica", "TransferNode", "FlushAll", "CreateDatabase", "DropDatabase",
		"ListDatabases", "AlterDatabase", "DescribeDatabase", "CreateAlias", "DropAlias", "DescribeAlias",
		"ListAliases", "Admin", "CreatePrivilegeGroup", "DropPrivilegeGroup", "ListPrivilegeGroups",
		"OperatePrivilegeGroup"},
	User: {"UpdateUser", "SelectUser"},
}

// ObjectTypes lists the object types a grant may name.
func ObjectTypes() []string { return []string{Collection, Global, User} }

// V1Grantable reports whether OperatePrivilege (v1) accepts privilege on an
// object of type objectType; "*" is accepted for every type.
func V1Grantable(objectType, privilege string) bool {
	return privilege == Any || slices.Contains(v1Grantable[objectType], privilege)
}

// ObjectTypeOf is the object type a privilege applies to
// (util.GetObjectType): Collection or User for those, Global otherwise.
func ObjectTypeOf(privilege string) string {
	for _, t := range []string{Collection, User} {
		if slices.Contains(v1Grantable[t], privilege) && !IsGroup(privilege) {
			return t
		}
	}
	return Global
}

// Legacy groups, evaluated at check time in Milvus (2.4.10+).
var (
	legacyReadOnly = []string{"Query", "Search", "IndexDetail", "GetFlushState", "GetLoadState",
		"GetLoadingProgress", "HasPartition", "ShowPartitions", "ShowCollections", "ListAliases",
		"ListDatabases", "DescribeCollection", "DescribeDatabase", "DescribeAlias", "GetStatistics"}
	legacyReadWrite = append(slices.Clone(legacyReadOnly), "CreateIndex", "DropIndex", "CreatePartition",
		"DropPartition", "Load", "Release", "Insert", "Delete", "Upsert", "Import", "Flush", "Compaction",
		"LoadBalance", "RenameCollection", "CreateAlias", "DropAlias")
	legacyAdmin = append(slices.Clone(legacyReadWrite), "CreateCollection", "DropCollection",
		"CreateOwnership", "DropOwnership", "SelectOwnership", "ManageOwnership", "SelectUser", "UpdateUser",
		"BackupRBAC", "RestoreRBAC", "CreateResourceGroup", "DropResourceGroup", "UpdateResourceGroups",
		"DescribeResourceGroup", "ListResourceGroups", "TransferNode", "TransferReplica", "CreateDatabase",
		"DropDatabase", "AlterDatabase", "FlushAll", "CreatePrivilegeGroup", "DropPrivilegeGroup",
		"ListPrivilegeGroups", "OperatePrivilegeGroup")
)

// The nine v2 built-in groups (configs/milvus.yaml, 2.5.27 defaults).
var (
	clusterReadOnly     = []string{"ListDatabases", "SelectOwnership", "SelectUser", "DescribeResourceGroup", "ListResourceGroups", "ListPrivilegeGroups"}
	clusterReadWrite    = append(slices.Clone(clusterReadOnly), "FlushAll", "TransferNode", "TransferReplica", "UpdateResourceGroups")
	clusterAdmin        = append(slices.Clone(clusterReadWrite), "BackupRBAC", "RestoreRBAC", "CreateDatabase", "DropDatabase", "CreateOwnership", "DropOwnership", "ManageOwnership", "CreateResourceGroup", "DropResourceGroup", "UpdateUser", "RenameCollection", "CreatePrivilegeGroup", "DropPrivilegeGroup", "OperatePrivilegeGroup")
	databaseReadOnly    = []string{"ShowCollections", "DescribeDatabase"}
	databaseReadWrite   = append(slices.Clone(databaseReadOnly), "AlterDatabase")
	databaseAdmin       = append(slices.Clone(databaseReadWrite), "CreateCollection", "DropCollection")
	collectionReadOnly  = []string{"Query", "Search", "IndexDetail", "GetFlushState", "GetLoadState", "GetLoadingProgress", "HasPartition", "ShowPartitions", "DescribeCollection", "DescribeAlias", "GetStatistics", "ListAliases"}
	collectionReadWrite = append(slices.Clone(collectionReadOnly), "Load", "Release", "Insert", "Delete", "Upsert", "Import", "Flush", "Compaction", "LoadBalance", "CreateIndex", "DropIndex", "CreatePartition", "DropPartition")
	collectionAdmin     = append(slices.Clone(collectionReadWrite), "CreateAlias", "DropAlias")
)

// builtinGroups in the order ListPrivilegeGroups shows them.
var builtinGroups = []struct {
	name    string
	members []string
}{
	{"ClusterReadOnly", clusterReadOnly}, {"ClusterReadWrite", clusterReadWrite}, {"ClusterAdmin", clusterAdmin},
	{"DatabaseReadOnly", databaseReadOnly}, {"DatabaseReadWrite", databaseReadWrite}, {"DatabaseAdmin", databaseAdmin},
	{"CollectionReadOnly", collectionReadOnly}, {"CollectionReadWrite", collectionReadWrite}, {"CollectionAdmin", collectionAdmin},
}

var legacyGroups = map[string][]string{"ReadOnly": legacyReadOnly, "ReadWrite": legacyReadWrite, "Admin": legacyAdmin}

// BuiltinGroup returns the members of a v2 built-in group.
func BuiltinGroup(name string) ([]string, bool) {
	for _, g := range builtinGroups {
		if g.name == name {
			return g.members, true
		}
	}
	return nil, false
}

// BuiltinGroups lists the nine v2 built-in groups with their members.
func BuiltinGroups() []Group {
	out := make([]Group, len(builtinGroups))
	for i, g := range builtinGroups {
		out[i] = Group{Name: g.name, Privileges: slices.Clone(g.members)}
	}
	return out
}

// Group is a named set of privileges.
type Group struct {
	Name       string
	Privileges []string
}

// LegacyGroup returns the members of ReadOnly, ReadWrite or Admin.
func LegacyGroup(name string) ([]string, bool) {
	m, ok := legacyGroups[name]
	return m, ok
}

// IsGroup reports whether name is a built-in group, legacy or v2.
func IsGroup(name string) bool {
	if _, ok := legacyGroups[name]; ok {
		return true
	}
	_, ok := BuiltinGroup(name)
	return ok
}

// Level is the level of a privilege (util.GetPrivilegeLevel): the level of
// the smallest v2 admin group that holds it; "" for one no group holds.
func Level(privilege string) string {
	switch {
	case slices.Contains(collectionAdmin, privilege):
		return LevelCollection
	case slices.Contains(databaseAdmin, privilege):
		return LevelDatabase
	case slices.Contains(clusterAdmin, privilege):
		return LevelCluster
	}
	return ""
}

// GroupLevel is the level of a group: the level of its first member.
func GroupLevel(members []string) string {
	if len(members) == 0 {
		return ""
	}
	return Level(members[0])
}

// IsClusterLevel reports whether a privilege is checked against every
// database (db "*"), as Milvus master does: it has no database scope.
func IsClusterLevel(privilege string) bool { return Level(privilege) == LevelCluster }

// Related are the privileges Milvus grants and revokes along with another
// (util.RelatedPrivileges).
func Related(privilege string) []string {
	switch privilege {
	case "Load":
		return []string{"GetLoadState", "GetLoadingProgress"}
	case "Flush":
		return []string{"GetFlushState"}
	}
	return nil
}
