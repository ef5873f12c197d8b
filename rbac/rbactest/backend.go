// Package rbactest reads request messages as the backend does, for the
// differential fuzz targets of rbac (Scan) and relay (the streamed
// decision): proto.Unmarshal into the generated milvus-proto type, the
// parser Milvus runs. Only tests import it.
package rbactest

import (
	"fmt"
	"slices"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/authproxy/authproxy/rbac"
)

// NamedMethods lists the MilvusService methods whose decision reads the
// request message, in the descriptor's order.
func NamedMethods(t *rbac.Table) []string {
	svc := milvuspb.File_milvus_proto.Services().ByName("MilvusService")
	var out []string
	for i := range svc.Methods().Len() {
		full := "/" + string(svc.FullName()) + "/" + string(svc.Methods().Get(i).Name())
		if _, named := t.Rule(full); named {
			out = append(out, full)
		}
	}
	return out
}

// NewRequest returns an empty request message of method.
func NewRequest(method string) proto.Message {
	svc := milvuspb.File_milvus_proto.Services().ByName("MilvusService")
	m := svc.Methods().ByName(protoreflect.Name(method[len("/"+rbac.Service+"/"):]))
	mt, err := protoregistry.GlobalTypes.FindMessageByName(m.Input().FullName())
	if err != nil {
		panic(err)
	}
	return mt.New().Interface()
}

// BackendReads decodes msg as the backend does and returns what it names
// for rule; ok is false when the backend's parser refuses the bytes.
func BackendReads(rule *rbac.Rule, msg []byte) (t rbac.Target, ok bool) {
	m := NewRequest(rule.Method)
	if proto.Unmarshal(msg, m) != nil {
		return t, false
	}
	r := m.ProtoReflect()
	fields := r.Descriptor().Fields()
	if rule.NameField > 0 {
		f := fields.ByNumber(rule.NameField)
		switch {
		case rule.NameInMessage && r.Has(f):
			inner := r.Get(f).Message()
			t.Name = []byte(inner.Get(inner.Descriptor().Fields().ByNumber(1)).String())
		case !rule.NameInMessage:
			t.Name = []byte(r.Get(f).String())
		}
	}
	if rule.DBField > 0 {
		t.DB = []byte(r.Get(fields.ByNumber(rule.DBField)).String())
	}
	if rule.NamesField > 0 {
		list := r.Get(fields.ByNumber(rule.NamesField)).List()
		for i := range list.Len() {
			t.Names = append(t.Names, []byte(list.Get(i).String()))
		}
	}
	return t, true
}

// Diff says how the proxy's reading differs from the backend's, "" when
// it does not: the name (absent and empty are one to the decision, as to
// proto3), the database and the list of names.
func Diff(rule *rbac.Rule, proxy, backend rbac.Target) string {
	if rule.NameField > 0 && string(proxy.Name) != string(backend.Name) {
		return fmt.Sprintf("name: proxy %q, backend %q", proxy.Name, backend.Name)
	}
	if rule.DBField > 0 && string(proxy.DB) != string(backend.DB) {
		return fmt.Sprintf("db: proxy %q, backend %q", proxy.DB, backend.DB)
	}
	if rule.NamesField > 0 && !slices.EqualFunc(proxy.Names, backend.Names, func(a, b []byte) bool { return string(a) == string(b) }) {
		return fmt.Sprintf("names: proxy %q, backend %q", proxy.Names, backend.Names)
	}
	return ""
}
