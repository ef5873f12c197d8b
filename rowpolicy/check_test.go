package rowpolicy

import (
	"reflect"
	"strings"
	"testing"

	"github.com/milvus-io/milvus-proto/go-api/v2/schemapb"
)

func varchar(name string, v ...string) *schemapb.FieldData {
	return &schemapb.FieldData{FieldName: name, Type: schemapb.DataType_VarChar, Field: &schemapb.FieldData_Scalars{
		Scalars: &schemapb.ScalarField{Data: &schemapb.ScalarField_StringData{StringData: &schemapb.StringArray{Data: v}}}}}
}

func int64s(name string, v ...int64) *schemapb.FieldData {
	return &schemapb.FieldData{FieldName: name, Type: schemapb.DataType_Int64, Field: &schemapb.FieldData_Scalars{
		Scalars: &schemapb.ScalarField{Data: &schemapb.ScalarField_LongData{LongData: &schemapb.LongArray{Data: v}}}}}
}

func TestCheck(t *testing.T) {
	rows := []*schemapb.FieldData{
		int64s("id", 1, 2, 3, 4),
		varchar("tenant", "acme", "globex", "acme", "acme"),
		int64s("level", 1, 1, 5, 2),
	}
	lowLevel := Policy{Name: "low", Restrictive: true, Check: mustCompile(t, "level <= 2 and not (id in [4])")}
	for _, c := range []struct {
		name     string
		policies []Policy
		caller   Caller
		want     []Violation
	}{
		{"own tenant only", []Policy{tenantPolicy(t)}, alice, []Violation{{Row: 1}}},
		{"restrictive names itself", []Policy{tenantPolicy(t), lowLevel}, alice,
			[]Violation{{Row: 1}, {Row: 2, Policy: "low"}, {Row: 3, Policy: "low"}}},
		{"missing tag: every row fails", []Policy{tenantPolicy(t)}, Caller{Name: "bob"},
			[]Violation{{Row: 0}, {Row: 1}, {Row: 2}, {Row: 3}}},
		{"no policy: every row fails", nil, alice,
			[]Violation{{Row: 0}, {Row: 1}, {Row: 2}, {Row: 3}}},
		{"permissive OR", []Policy{tenantPolicy(t), {Name: "g", Check: mustCompile(t, "'globex' == tenant")}}, alice, nil},
		{"type mismatch is false, not coerced", []Policy{{Name: "m", Check: mustCompile(t, "tenant == 1 or level == '1'")}}, alice,
			[]Violation{{Row: 0}, {Row: 1}, {Row: 2}, {Row: 3}}},
		{"true", []Policy{{Name: "all", Check: mustCompile(t, "true")}}, alice, nil},
		{"signed numbers", []Policy{{Name: "s", Check: mustCompile(t, "-2 < level and level < + 5 and level != -0x1")}}, alice,
			[]Violation{{Row: 2}}},
		{"numbers as Milvus reads them", []Policy{{Name: "n", Check: mustCompile(t, "level in [0x1, 0b10, 1.5e0, 06]")}}, alice,
			[]Violation{{Row: 2}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Check(c.policies, c.caller, rows, 4)
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Fatalf("Check = %v, %v; want %v", got, err, c.want)
			}
		})
	}
}

func TestCheckNulls(t *testing.T) {
	// A nullable column sent densely (only valid values) and one sent with
	// every row: NULL is UNKNOWN, and not UNKNOWN is still not TRUE.
	dense := varchar("tenant", "acme", "acme")
	dense.ValidData = []bool{true, false, true}
	full := varchar("tenant", "acme", "", "acme")
	full.ValidData = []bool{true, false, true}
	for _, fd := range []*schemapb.FieldData{dense, full} {
		for _, expr := range []string{"tenant == 'acme'", "not (tenant == 'globex')"} {
			got, err := Check([]Policy{{Name: "p", Check: mustCompile(t, expr)}}, alice, []*schemapb.FieldData{fd}, 3)
			if err != nil || !reflect.DeepEqual(got, []Violation{{Row: 1}}) {
				t.Errorf("%s on %d values: %v, %v; want row 1 refused", expr, len(fd.GetScalars().GetStringData().GetData()), got, err)
			}
		}
	}
}

func TestCheckErrors(t *testing.T) {
	p := []Policy{tenantPolicy(t)}
	for _, c := range []struct {
		name   string
		fields []*schemapb.FieldData
		why    string
	}{
		{"field missing", []*schemapb.FieldData{int64s("id", 1)}, `field "tenant" is not a scalar column`},
		{"short column", []*schemapb.FieldData{varchar("tenant")}, "has 0 values for 1 rows"},
	} {
		if _, err := Check(p, alice, c.fields, 1); err == nil || !strings.Contains(err.Error(), c.why) {
			t.Errorf("%s: %v, want %q", c.name, err, c.why)
		}
	}
}

func BenchmarkCheck1000Rows(b *testing.B) {
	tenant := make([]string, 1000)
	for i := range tenant {
		tenant[i] = "acme"
	}
	fields := []*schemapb.FieldData{varchar("tenant", tenant...)}
	p := []Policy{tenantPolicy(b)}
	for b.Loop() {
		if v, err := Check(p, alice, fields, 1000); err != nil || len(v) != 0 {
			b.Fatal(v, err)
		}
	}
}
