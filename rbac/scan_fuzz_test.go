package rbac_test

import (
	"testing"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/authproxy/authproxy/rbac"
	"github.com/authproxy/authproxy/rbac/rbactest"
)

// scanSeeds are request messages of the kinds the tests send, and the
// tricks a client may play: a name twice, a wrong wire type, an unknown
// field, a name in a nested message, several names.
func scanSeeds() [][]byte {
	var out [][]byte
	add := func(m proto.Message) {
		b, _ := proto.Marshal(m)
		out = append(out, b)
	}
	add(&milvuspb.SearchRequest{CollectionName: "books", DbName: "db2", SearchInput: &milvuspb.SearchRequest_PlaceholderGroup{PlaceholderGroup: []byte{1, 2, 3}}})
	add(&milvuspb.InsertRequest{CollectionName: "books", DbName: "a", PartitionName: "p"})
	add(&milvuspb.FlushRequest{DbName: "db2", CollectionNames: []string{"books", "films"}})
	add(&milvuspb.SelectUserRequest{User: &milvuspb.UserEntity{Name: "alice"}})
	add(&milvuspb.OperatePrivilegeRequest{Entity: &milvuspb.GrantEntity{ObjectName: "books", DbName: "db2", Object: &milvuspb.ObjectEntity{Name: "Collection"}}})
	add(&milvuspb.DescribeCollectionRequest{Base: &commonpb.MsgBase{MsgID: 7}, CollectionName: "secret"})
	twice, _ := proto.Marshal(&milvuspb.SearchRequest{CollectionName: "books"})
	twice = protowire.AppendString(protowire.AppendTag(twice, 3, protowire.BytesType), "secret")
	out = append(out, twice)
	wrongType := protowire.AppendVarint(protowire.AppendTag(append([]byte(nil), twice...), 3, protowire.VarintType), 5)
	out = append(out, wrongType)
	group := protowire.AppendTag(protowire.AppendTag(nil, 99, protowire.StartGroupType), 99, protowire.EndGroupType)
	out = append(out, append(group, twice...))
	return append(out, nil, []byte{0x1a, 0x80, 0x80, 0x80, 0x80, 0x10})
}

// FuzzScanReadsAsTheBackend: for every method whose decision reads the
// request, and any bytes cut into two buffers anywhere, Scan either
// refuses the message or reads the same collection, names and database as
// proto.Unmarshal into the generated milvus-proto type (the backend's
// parser), whenever that parser accepts the bytes.
func FuzzScanReadsAsTheBackend(f *testing.F) {
	table, err := rbac.NewTable()
	if err != nil {
		f.Fatal(err)
	}
	methods := rbactest.NamedMethods(table)
	for i := range methods {
		for _, seed := range scanSeeds() {
			f.Add(uint16(i), uint16(len(seed)/2), seed)
		}
	}
	f.Fuzz(func(t *testing.T, which, cut uint16, msg []byte) {
		rule, _ := table.Rule(methods[int(which)%len(methods)])
		at := int(cut) % (len(msg) + 1)
		got, err := rbac.Scan(rule, [][]byte{msg[:at], msg[at:]})
		want, parsed := rbactest.BackendReads(rule, msg)
		if err != nil || !parsed {
			return // the proxy refuses, or so does the backend
		}
		if d := rbactest.Diff(rule, got, want); d != "" {
			t.Fatalf("%s, message %x cut at %d: %s", rule.Method, msg, at, d)
		}
	})
}
