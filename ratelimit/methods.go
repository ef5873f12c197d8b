package ratelimit

import (
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// rate is what a limit counts.
type rate uint8

const (
	rateInsertMB rate = iota
	rateUpsertMB
	rateDeleteMB
	rateSearchVectors
	rateQueryCalls
	rateDMLCalls
	rateDQLCalls
	rateDDLCalls
	rateAllCalls
)

// rateByName maps config.RateNames to what is counted.
var rateByName = map[string]rate{
	"dml.insertRate": rateInsertMB,
	"dml.upsertRate": rateUpsertMB,
	"dml.deleteRate": rateDeleteMB,
	"dql.searchRate": rateSearchVectors,
	"dql.queryRate":  rateQueryCalls,
	"dml.callRate":   rateDMLCalls,
	"dql.callRate":   rateDQLCalls,
	"ddl.callRate":   rateDDLCalls,
	"callRate":       rateAllCalls,
}

// mb is milvus.yaml's MB: quotaAndLimits' megaBytes2Bytes multiplies by
// 1024 * 1024 (pkg/util/paramtable/quota_param.go, Milvus 2.5.24).
const mb = 1 << 20

// ddlMethods are the methods Milvus 2.5 counts as DDL for its own limits
// (internal/proxy/util.go GetRequestInfo, v2.5.24: RateType_DDLCollection,
// DDLPartition, DDLIndex, DDLFlush, DDLCompaction, DDLDB).
var ddlMethods = []string{
	"CreateCollection", "DropCollection", "LoadCollection", "ReleaseCollection",
	"CreatePartition", "DropPartition", "LoadPartitions", "ReleasePartitions",
	"CreateIndex", "DropIndex", "Flush", "ManualCompaction",
	"CreateDatabase", "DropDatabase", "AlterDatabase",
}

// method is what the limits need to know of one MilvusService method.
type method struct {
	full  string
	rates []rate // counted by a call of it, callRate included
	// nqField is SearchRequest's nq (Search only): dql.searchRate counts
	// vectors, as Milvus's limiter charges r.GetNq().
	nqField protowire.Number
	// statusField is the response's Status field, 0 when the response
	// is a Status itself; hasStatus is false when it has none.
	statusField protowire.Number
	hasStatus   bool
}

// Service is MilvusService's full name.
const Service = "milvus.proto.milvus.MilvusService"

// methods indexes MilvusService by full method name
// (/milvus.proto.milvus.MilvusService/Search), from its descriptor.
var methods = buildMethods()

func buildMethods() map[string]*method {
	sd := milvuspb.File_milvus_proto.Services().ByName(protoreflect.Name("MilvusService"))
	out := map[string]*method{}
	ms := sd.Methods()
	for i := range ms.Len() {
		md := ms.Get(i)
		name := string(md.Name())
		m := &method{full: "/" + Service + "/" + name, rates: []rate{rateAllCalls}}
		switch name {
		case "Insert":
			m.rates = append(m.rates, rateInsertMB, rateDMLCalls)
		case "Upsert":
			m.rates = append(m.rates, rateUpsertMB, rateDMLCalls)
		case "Delete":
			m.rates = append(m.rates, rateDeleteMB, rateDMLCalls)
		case "Search":
			m.rates = append(m.rates, rateSearchVectors, rateDQLCalls)
			m.nqField = md.Input().Fields().ByName("nq").Number()
		case "Query":
			m.rates = append(m.rates, rateQueryCalls, rateDQLCalls)
		case "HybridSearch":
			m.rates = append(m.rates, rateDQLCalls)
		}
		for _, d := range ddlMethods {
			if d == name {
				m.rates = append(m.rates, rateDDLCalls)
			}
		}
		resp := md.Output()
		if resp.FullName() == "milvus.proto.common.Status" {
			m.hasStatus = true
		} else if f := resp.Fields().ByName("status"); f != nil && f.Message() != nil && f.Message().FullName() == "milvus.proto.common.Status" {
			m.hasStatus, m.statusField = true, f.Number()
		}
		out[m.full] = m
	}
	return out
}

// ReadsFields are the top-level request fields the limits read besides
// the size, for a decision on a prefix of the message (the frame relay):
// Search's nq.
func ReadsFields(fullMethod string) []protowire.Number {
	if m := methods[fullMethod]; m != nil && m.nqField != 0 {
		return []protowire.Number{m.nqField}
	}
	return nil
}

// NQ reads a Search request's nq as a protobuf parser does (the last
// occurrence wins); ok is false when the message is malformed.
// Other methods have none: 0, true.
func NQ(fullMethod string, msg [][]byte) (nq int64, ok bool) {
	m := methods[fullMethod]
	if m == nil || m.nqField == 0 {
		return 0, true
	}
	var b []byte
	switch len(msg) {
	case 0:
		return 0, true
	case 1:
		b = msg[0]
	default:
		for _, part := range msg {
			b = append(b, part...)
		}
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, false
		}
		b = b[n:]
		if num == m.nqField && typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0, false
			}
			nq, b = int64(v), b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, false
		}
		b = b[n:]
	}
	return nq, true
}
