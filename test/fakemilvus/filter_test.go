package fakemilvus

import (
	"reflect"
	"strings"
	"testing"

	"github.com/milvus-io/milvus-proto/go-api/v2/schemapb"
)

// tenants is a collection of five rows over two tenants, with a dynamic
// field.
func tenants(t testing.TB) *collection {
	t.Helper()
	c, err := newCollection(1, &schemapb.CollectionSchema{EnableDynamicField: true, Fields: []*schemapb.FieldSchema{
		{Name: "id", DataType: schemapb.DataType_Int64, IsPrimaryKey: true},
		{Name: "tenant", DataType: schemapb.DataType_VarChar},
		{Name: "score", DataType: schemapb.DataType_Double},
		{Name: "public", DataType: schemapb.DataType_Bool},
	}})
	if err != nil {
		t.Fatal(err)
	}
	row := func(id int64, tenant string, score float64, public bool, meta string) []any {
		return []any{id, tenant, score, public, []byte(meta)}
	}
	c.put([][]any{
		row(1, "acme", 0.5, true, `{"region": "eu", "n": 1, "tags": ["a", "b"]}`),
		row(2, "globex", 1.5, false, `{"region": "us", "n": 2}`),
		row(3, "acme", 2.5, false, `{"region": "us", "n": 3.5}`),
		row(4, `it's "q"`, 3, true, `{}`),
		row(5, "globex", -1, false, `{"region": "eu", "nested": {"k": "v"}}`),
	}, "_default")
	return c
}

func ids(c *collection, pos []int) []int64 {
	out := []int64{}
	for _, p := range pos {
		out = append(out, c.rows[p][0].(int64))
	}
	return out
}

func TestFilterEvaluates(t *testing.T) {
	c := tenants(t)
	for filter, want := range map[string][]int64{
		``:                                       {1, 2, 3, 4, 5},
		`tenant == "acme" or tenant == "globex"`: {1, 2, 3, 5},
		`tenant == 'acme' and score > 1`:         {3},
		`tenant == "acme" or tenant == "globex" and score > 1`:   {1, 2, 3}, // and binds tighter
		`(tenant == "acme" or tenant == "globex") and score > 1`: {2, 3},
		`not (tenant == "acme")`:                                 {2, 4, 5},
		`!(tenant == "acme") && public`:                          {4},
		`tenant != "acme" || id == 1`:                            {1, 2, 4, 5},
		`id in [1, 3, 99]`:                                       {1, 3},
		`id not in [1, 3]`:                                       {2, 4, 5},
		`tenant in ["globex", 'acme',]`:                          {1, 2, 3, 5},
		`id in []`:                                               {},
		`tenant like "gl%"`:                                      {2, 5},
		`tenant like "_cme"`:                                     {1, 3},
		`tenant == 'it\'s "q"'`:                                  {4},
		`tenant == "it's \"q\""`:                                 {4},
		`1 < id <= 3`:                                            {2, 3},
		`4 >= id > 2`:                                            {3, 4},
		`score >= -1 and score < 1`:                              {1, 5},
		`score == 3`:                                             {4},
		`public == true`:                                         {1, 4},
		`public`:                                                 {1, 4},
		`region == "eu"`:                                         {1, 5},
		`$meta["region"] == "us"`:                                {2, 3},
		`n > 1.5`:                                                {2, 3},
		`n == 1`:                                                 {1},
		`tags[0] == "a"`:                                         {1},
		`nested["k"] like "v%"`:                                  {5},
		`region is null`:                                         {4},
		`region is not null and id >= 2`:                         {2, 3, 5},
		`id == 0x3 or id == 0b101 or id == 02`:                   {2, 3, 5},
		`AND_x == 1`:                                             {},
	} {
		pos, err := c.match(filter)
		if err != nil {
			t.Errorf("%s: %v", filter, err)
			continue
		}
		if got := ids(c, pos); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: ids %v, want %v", filter, got, want)
		}
	}
}

func TestFilterRefusesWhatItCannotEvaluate(t *testing.T) {
	c := tenants(t)
	for filter, why := range map[string]string{
		`tenant == "acme`:              "token recognition error",
		`x) or (1==1`:                  "invalid expression",
		`(tenant == "acme"`:            "mismatched input '<EOF>'",
		`id + 1 == 2`:                  "does not evaluate operator +",
		`id == {x}`:                    "template {x}",
		`json_contains(tags, "a")`:     "the function json_contains",
		`exists region`:                "operator exists",
		`tenant == 1`:                  "comparisons between string and number",
		`id like "1%"`:                 "like operation on non-string",
		`1 == 1`:                       "two constants",
		`true`:                         "a constant filter",
		`tenant == $current_user_name`: "token recognition error",
		`tenant == "acme" -- comment`:  "",
		`id in [1, id]`:                "must be constants",
		`not id == 1`:                  "operator not as a value",
		`score["k"] == 1`:              "not supported accessed with []",
		"tenant ==\u00a0\"acme\"":      "token recognition error",
		`a["k"]["" ] == 1`:             "",
		`id == 1 /* x */`:              "",
		`st_within(id, "POINT (0 0)")`: "the function st_within",
		`text_match(tenant, "x", minimum_should_match = 1)`: "the function text_match",
	} {
		_, err := c.match(filter)
		if err == nil || !strings.HasPrefix(err.Error(), "failed to create query plan: cannot parse expression: "+filter+", error: ") ||
			!strings.Contains(err.Error(), why) {
			t.Errorf("%s: %v, want a refusal saying %q", filter, err, why)
		}
	}
}

func TestFilterParsesWithMilvusPrecedence(t *testing.T) {
	for filter, want := range map[string]string{
		`a or b and c`:           `(or a (and b c))`,
		`not a == 1`:             `(== (unary not a) 1)`,
		`not a like "x"`:         `(unary not (like a "x"))`,
		`a == 1 and b in [1, 2]`: `(and (== a 1) (in b (array 1 2)))`,
		`-a ** 2`:                `(unary - (** a 2))`,
		`1 < a < 2 or b`:         `(or (range 1 < a < 2) b)`,
		`a & b == c`:             `(& a (== b c))`,
		`(x) and (y is null)`:    `(and x (is null y))`,
		`a not in [ ]`:           `(not in a (array))`,
	} {
		tree, err := parseFilter(filter)
		if err != nil {
			t.Errorf("%s: %v", filter, err)
			continue
		}
		if got := dump(tree); got != want {
			t.Errorf("%s parsed as %s, want %s", filter, got, want)
		}
	}
}

// dump writes a parse tree as an s-expression.
func dump(e *fexpr) string {
	switch e.op {
	case "lit", "field", "json", "template":
		return e.tok.text
	case "range":
		return "(range " + dump(e.args[0]) + " " + e.args[1].op + " " + e.tok.text + " " + e.args[2].op + " " + dump(e.args[3]) + ")"
	}
	parts := []string{e.op}
	if e.op == "call" {
		parts[0] = e.tok.text
	}
	for _, a := range e.args {
		parts = append(parts, dump(a))
	}
	return "(" + strings.Join(parts, " ") + ")"
}
