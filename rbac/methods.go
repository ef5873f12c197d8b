// Package rbac decides, for every call, whether the caller's roles allow it,
// as Milvus's PrivilegeInterceptor does with authorizationEnabled on: which
// privilege a method needs comes from the milvus-proto descriptors, the
// object and database from the request's own bytes, and the grants from
// the credential store.
package rbac

import (
	"fmt"
	"slices"
	"strings"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/authproxy/authproxy/privilege"
)

// Rule is what one method needs: a privilege on an object, and where in the
// request the object's name and the database are.
type Rule struct {
	Method    string // full gRPC name, /milvus.proto.milvus.MilvusService/Search
	Object    string // privilege.Collection, Global or User
	Privilege string // API name: Search, CreateOwnership
	// NameField holds the object's name (0: every object, "*"). When
	// NameInMessage, it is a message whose field 1 is the name
	// (SelectUserRequest.user).
	NameField     protowire.Number
	NameInMessage bool
	// NamesField holds several names, all of which must be allowed (Flush).
	NamesField protowire.Number
	// DBField is the request's db_name (0: none; the metadata decides).
	DBField protowire.Number
	// SelfExempt lets a user act on the User object naming herself (her
	// own password, her own description) without the privilege.
	SelfExempt bool
}

// notSelfExempt are the User-object methods where acting on oneself needs
// the privilege like acting on anyone: a user who could change her own
// tags could re-tag herself into another tenant's rows (issue 32).
var notSelfExempt = []string{"AddUserTags", "DeleteUserTags"}

// SelfExempt reports whether a user may call method, a User-object method
// of MilvusService, on herself without its privilege. The user API answered
// by the proxy asks it too, so that the exemption is decided here only.
func SelfExempt(method string) bool {
	return !slices.Contains(notSelfExempt, strings.TrimPrefix(method, "/"+Service+"/"))
}

// Service is MilvusService's full name.
const Service = "milvus.proto.milvus.MilvusService"

// adminOnly are MilvusService methods without a privilege that Milvus still
// leaves open to any user, reviewed and restricted to admin: the CDC write
// path and the 2.6 replication streams.
var adminOnly = []string{"ReplicateMessage", "CreateReplicateStream", "DumpMessages"}

// Table is the method table of the linked milvus-proto.
type Table struct {
	rules     map[string]*Rule
	open      map[string]bool // MilvusService methods with no privilege
	adminOnly map[string]bool
}

// NewTable reads every MilvusService method's input message for the
// privilege_ext_obj option.
func NewTable() (*Table, error) {
	t := &Table{rules: map[string]*Rule{}, open: map[string]bool{}, adminOnly: map[string]bool{}}
	svc := milvuspb.File_milvus_proto.Services().ByName("MilvusService")
	if svc == nil {
		return nil, fmt.Errorf("milvus-proto has no MilvusService")
	}
	for i := range svc.Methods().Len() {
		m := svc.Methods().Get(i)
		full := "/" + string(svc.FullName()) + "/" + string(m.Name())
		in := m.Input()
		if !proto.HasExtension(in.Options(), commonpb.E_PrivilegeExtObj) {
			if slices.Contains(adminOnly, string(m.Name())) {
				t.adminOnly[full] = true
			} else {
				t.open[full] = true
			}
			continue
		}
		ext := proto.GetExtension(in.Options(), commonpb.E_PrivilegeExtObj).(*commonpb.PrivilegeExt)
		r := &Rule{
			Method:    full,
			Object:    ext.GetObjectType().String(),
			Privilege: privilege.FromEnumName(ext.GetObjectPrivilege().String()),
		}
		if idx := ext.GetObjectNameIndex(); idx > 0 {
			f := in.Fields().ByNumber(protoreflect.FieldNumber(idx))
			if f == nil {
				return nil, fmt.Errorf("%s: object name field %d not in %s", full, idx, in.FullName())
			}
			r.NameField = protowire.Number(idx)
			r.NameInMessage = f.Kind() == protoreflect.MessageKind
		}
		if idx := ext.GetObjectNameIndexs(); idx > 0 {
			r.NamesField = protowire.Number(idx)
		}
		if f := in.Fields().ByName("db_name"); f != nil {
			r.DBField = protowire.Number(f.Number())
		}
		r.SelfExempt = r.Object == privilege.User && SelfExempt(full)
		t.rules[full] = r
	}
	return t, nil
}

// Rule returns the rule of a method, if it needs a privilege.
func (t *Table) Rule(method string) (*Rule, bool) {
	r, ok := t.rules[method]
	return r, ok
}

// privileges lists the privileges the rules need.
func (t *Table) privileges() []string {
	var out []string
	for _, r := range t.rules {
		if !slices.Contains(out, r.Privilege) {
			out = append(out, r.Privilege)
		}
	}
	return out
}

// Golden renders the table, one method a line, sorted: the file the tests
// compare with, so that a milvus-proto bump shows its diff in review.
func (t *Table) Golden() string {
	var lines []string
	for _, r := range t.rules {
		name := "*"
		switch {
		case r.NameField > 0 && r.NameInMessage:
			name = fmt.Sprintf("#%d.1", r.NameField)
		case r.NameField > 0:
			name = fmt.Sprintf("#%d", r.NameField)
		case r.NamesField > 0:
			name = fmt.Sprintf("#%d[]", r.NamesField)
		}
		db := "metadata"
		if r.DBField > 0 {
			db = fmt.Sprintf("#%d", r.DBField)
		}
		line := fmt.Sprintf("%s\t%s\t%s\tname=%s\tdb=%s", strings.TrimPrefix(r.Method, "/"+Service+"/"), r.Object, r.Privilege, name, db)
		if r.SelfExempt {
			line += "\tself-exempt"
		}
		lines = append(lines, line)
	}
	for m := range t.open {
		lines = append(lines, strings.TrimPrefix(m, "/"+Service+"/")+"\t-\topen")
	}
	for m := range t.adminOnly {
		lines = append(lines, strings.TrimPrefix(m, "/"+Service+"/")+"\t-\tadmin only")
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n") + "\n"
}
