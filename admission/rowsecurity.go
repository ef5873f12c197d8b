package admission

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus-proto/go-api/v2/schemapb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/authproxy/authproxy/credentials"
	"github.com/authproxy/authproxy/rbac"
	"github.com/authproxy/authproxy/rowpolicy"
)

// rowActions maps the data methods row policies govern to the
// RowPolicyAction they are: the iterators, Get by id and count(*) are
// Query and Search calls too, as the SDKs send them.
var rowActions = map[string]string{
	"/" + rbac.Service + "/Search":       "Search",
	"/" + rbac.Service + "/HybridSearch": "Search",
	"/" + rbac.Service + "/Query":        "Query",
	"/" + rbac.Service + "/Delete":       "Delete",
	"/" + rbac.Service + "/Insert":       "Insert",
	"/" + rbac.Service + "/Upsert":       "Upsert",
}

// RowScope is row-level security on one call: the policies that apply to
// the caller for its action on its collection. A call with a RowScope is
// forwarded only as RewriteMessage (gRPC) or RewriteJSON (REST) rewrites
// it, read whole: its filter combined with the policies, its rows checked.
type RowScope struct {
	Action     string
	Collection string
	Caller     rowpolicy.Caller
	Policies   []rowpolicy.Policy
}

// compiledPolicy is a stored policy compiled once per store snapshot.
type compiledPolicy struct {
	actions, roles []string
	policy         rowpolicy.Policy
	err            error // the stored text does not compile: its collection is closed
}

type collectionKey struct{ db, collection string }

// compiledPolicies are a snapshot's policies by collection.
type compiledPolicies struct {
	set    *credentials.Set
	byColl map[collectionKey][]compiledPolicy
}

// rowPolicyCache compiles a snapshot's policies once, not per call.
type rowPolicyCache struct {
	mu  sync.Mutex
	cur atomic.Pointer[compiledPolicies]
}

func (c *rowPolicyCache) of(set *credentials.Set) *compiledPolicies {
	if p := c.cur.Load(); p != nil && p.set == set {
		return p
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.cur.Load(); p != nil && p.set == set {
		return p
	}
	p := &compiledPolicies{set: set, byColl: map[collectionKey][]compiledPolicy{}}
	for _, sp := range set.AllRowPolicies() {
		cp := compiledPolicy{actions: sp.Actions, roles: sp.Roles, policy: rowpolicy.Policy{Name: sp.Name}}
		cp.policy.Using, cp.err = compileOptional(sp.UsingExpr)
		if cp.err == nil {
			cp.policy.Check, cp.err = compileOptional(sp.CheckExpr)
		}
		if cp.err != nil {
			cp.err = fmt.Errorf("row policy %s on collection %s cannot be enforced: %w", sp.Name, sp.Collection, cp.err)
		}
		k := collectionKey{sp.DB, sp.Collection}
		p.byColl[k] = append(p.byColl[k], cp)
	}
	c.cur.Store(p)
	return p
}

func compileOptional(src string) (*rowpolicy.Expr, error) {
	if src == "" {
		return nil, nil
	}
	return rowpolicy.Compile(src)
}

// rowSecurity puts the row policies that apply to the call in the
// Decision (Decision.Rows). A collection with policies is under row
// security for everyone but admin (Milvus's design: admin bypasses; the
// v2.6.18 wire API has no bypass privilege of its own). Which policies
// apply: those naming the action and one of the caller's roles; none at
// all leaves the scope empty, which reads no row and writes none.
func (a *Admitter) rowSecurity(d *Decision) error {
	action, governed := rowActions[d.Call.Method]
	if a.authz == nil || !governed {
		return nil
	}
	t, err := d.Target()
	if err != nil {
		return err
	}
	set := a.authz.Snapshot()
	stored := a.rowPolicies.of(set).byColl[collectionKey{t.Database, t.Collection}]
	if len(stored) == 0 || a.authz.IsAdmin(d.Principal()) {
		return nil
	}
	if action == "Upsert" {
		return writeRefusal(fmt.Sprintf("upsert is refused on collection %s, which has row policies: an upsert replaces the row of its primary key whichever tenant's it is, and the proxy cannot see that row; delete (filtered by your policies) then insert", t.Collection))
	}
	roles := d.Roles()
	scope := &RowScope{Action: action, Collection: t.Collection,
		Caller: rowpolicy.Caller{Name: d.Principal().User, Tags: a.authz.TagsOf(d.Principal())}}
	for _, cp := range stored {
		if !slices.Contains(cp.actions, action) || !slices.ContainsFunc(cp.roles, func(r string) bool { return slices.Contains(roles, r) }) {
			continue
		}
		if cp.err != nil {
			return status.Error(codes.PermissionDenied, "authproxy: "+cp.err.Error())
		}
		scope.Policies = append(scope.Policies, cp.policy)
	}
	d.Rows = scope
	return nil
}

// MayRewrite says whether the decision on c may put it under row
// security (a Decision with Rows), before its message is read: the frame
// relay then holds the whole first message instead of deciding on its
// leading fields, as the rewrite needs it whole.
func (a *Admitter) MayRewrite(c *Call) bool {
	if _, governed := rowActions[c.Method]; !governed || a.authz == nil || !a.Enabled() || c.Local || !c.Authenticated {
		return false
	}
	return len(a.rowPolicies.of(a.authz.Snapshot()).byColl) > 0 && !a.authz.IsAdmin(c.Principal())
}

// filter is the filter to send for a caller's filter; noRows says no row
// can match (answer with an empty reply, forward nothing).
func (s *RowScope) filter(callerFilter string) (combined string, noRows bool, err error) {
	combined, err = rowpolicy.Combine(s.Policies, s.Caller, callerFilter)
	if errors.Is(err, rowpolicy.ErrNoRows) {
		return "", true, nil
	}
	var fe *rowpolicy.FilterError
	if errors.As(err, &fe) {
		return "", false, filterRefusal(fe)
	}
	return combined, false, err
}

// check refuses a write any of whose rows the policies refuse, naming the
// first such row and the policy.
func (s *RowScope) check(fields []*schemapb.FieldData, numRows int) error {
	violations, err := rowpolicy.Check(s.Policies, s.Caller, fields, numRows)
	if err != nil {
		return writeRefusal(fmt.Sprintf("row-level security cannot check the rows of this %s on collection %s: %v", strings.ToLower(s.Action), s.Collection, err))
	}
	if len(violations) == 0 {
		return nil
	}
	v := violations[0]
	why := fmt.Sprintf("row %d of %d satisfies no row policy of collection %s for %s", v.Row, numRows, s.Collection, s.Action)
	if v.Policy != "" {
		why = fmt.Sprintf("row %d of %d violates row policy %s of collection %s", v.Row, numRows, v.Policy, s.Collection)
	}
	if len(violations) > 1 {
		why += fmt.Sprintf(" (%d rows refused)", len(violations))
	}
	return writeRefusal(why + "; nothing was written")
}

// writeRefusal is a write the policies refuse: PermissionDenied, as
// Milvus refuses a privilege (REST: 403 and merr's code for a status).
func writeRefusal(why string) *Refusal {
	return statusRefusal(status.Error(codes.PermissionDenied, "authproxy: "+why))
}

// filterRefusal is a caller's filter refused before combining:
// Milvus's answer to a filter it cannot parse, ErrParameterInvalid (1100)
// in the reply's status, InvalidArgument on gRPC.
func filterRefusal(fe *rowpolicy.FilterError) *Refusal {
	msg := "failed to create query plan: cannot parse expression: " + fe.Error()
	return &Refusal{Status: status.New(codes.InvalidArgument, msg), HTTP: http.StatusOK, Code: codeParameterInvalid, Message: msg}
}

// codeParameterInvalid is merr's ErrParameterInvalid.
const codeParameterInvalid = 1100

// RewriteMessage rewrites a gRPC request message, read whole: the filter
// of a read or delete combined with the policies, or the rows of a write
// checked. reply, when not nil, is the answer to send instead of
// forwarding: no row can match, and the reply is the method's own empty
// result.
func (s *RowScope) RewriteMessage(method string, msg []byte) (request, reply []byte, err error) {
	switch method[strings.LastIndex(method, "/")+1:] {
	case "Search":
		var r milvuspb.SearchRequest
		if err := proto.Unmarshal(msg, &r); err != nil {
			return nil, nil, undecodable(err)
		}
		f, none, err := s.filter(r.Dsl)
		if err != nil || none {
			return nil, emptySearch(r.GetNq(), none), err
		}
		r.Dsl = f
		return marshalRequest(&r)
	case "HybridSearch":
		var r milvuspb.HybridSearchRequest
		if err := proto.Unmarshal(msg, &r); err != nil {
			return nil, nil, undecodable(err)
		}
		for _, sub := range r.Requests {
			f, none, err := s.filter(sub.Dsl)
			if err != nil || none {
				return nil, emptySearch(sub.GetNq(), none), err
			}
			sub.Dsl = f
		}
		return marshalRequest(&r)
	case "Query":
		var r milvuspb.QueryRequest
		if err := proto.Unmarshal(msg, &r); err != nil {
			return nil, nil, undecodable(err)
		}
		f, none, err := s.filter(r.Expr)
		if err != nil || none {
			return nil, emptyQuery(&r, none), err
		}
		r.Expr = f
		return marshalRequest(&r)
	case "Delete":
		var r milvuspb.DeleteRequest
		if err := proto.Unmarshal(msg, &r); err != nil {
			return nil, nil, undecodable(err)
		}
		f, none, err := s.filter(r.Expr)
		if err != nil || none {
			return nil, emptyMutation(none), err
		}
		r.Expr = f
		return marshalRequest(&r)
	case "Insert":
		var r milvuspb.InsertRequest
		if err := proto.Unmarshal(msg, &r); err != nil {
			return nil, nil, undecodable(err)
		}
		return msg, nil, s.check(r.FieldsData, int(r.NumRows))
	case "Upsert":
		var r milvuspb.UpsertRequest
		if err := proto.Unmarshal(msg, &r); err != nil {
			return nil, nil, undecodable(err)
		}
		return msg, nil, s.check(r.FieldsData, int(r.NumRows))
	}
	return nil, nil, status.Errorf(codes.Internal, "authproxy: row-level security has no rewrite for %s", method)
}

func undecodable(err error) error {
	return status.Error(codes.InvalidArgument, "authproxy: request message does not decode: "+err.Error())
}

func marshalRequest(m proto.Message) (request, reply []byte, err error) {
	b, err := proto.Marshal(m)
	return b, nil, err
}

// The empty results are what Milvus answers a read no row matches
// (status success): the reply types' own, so that SDKs read "no rows".
func emptySearch(nq int64, none bool) []byte {
	if !none {
		return nil
	}
	b, _ := proto.Marshal(&milvuspb.SearchResults{Status: &commonpb.Status{},
		Results: &schemapb.SearchResultData{NumQueries: nq, Topks: make([]int64, nq), Ids: &schemapb.IDs{}}})
	return b
}

func emptyQuery(r *milvuspb.QueryRequest, none bool) []byte {
	if !none {
		return nil
	}
	out := &milvuspb.QueryResults{Status: &commonpb.Status{}, CollectionName: r.CollectionName, OutputFields: r.OutputFields}
	if len(r.OutputFields) == 1 && strings.EqualFold(r.OutputFields[0], "count(*)") {
		// count(*) over no row is 0, one column of one row.
		out.FieldsData = []*schemapb.FieldData{{Type: schemapb.DataType_Int64, FieldName: "count(*)",
			Field: &schemapb.FieldData_Scalars{Scalars: &schemapb.ScalarField{Data: &schemapb.ScalarField_LongData{LongData: &schemapb.LongArray{Data: []int64{0}}}}}}}
	}
	b, _ := proto.Marshal(out)
	return b
}

func emptyMutation(none bool) []byte {
	if !none {
		return nil
	}
	b, _ := proto.Marshal(&milvuspb.MutationResult{Status: &commonpb.Status{}, IDs: &schemapb.IDs{}})
	return b
}
