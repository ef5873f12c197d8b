package rbac

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/methods.golden from the linked milvus-proto")

// The method table comes from the descriptors of the linked milvus-proto;
// the golden file makes a bump show its diff in review. Run
// `go test ./rbac -run Golden -update` after a bump, and read the diff.
func TestMethodTableMatchesGolden(t *testing.T) {
	table, err := NewTable()
	if err != nil {
		t.Fatal(err)
	}
	got := table.Golden()
	const path = "testdata/methods.golden"
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("the method table differs from %s (run with -update and review the diff):\n%s", path, diff(string(want), got))
	}
}

func diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	inWant := map[string]bool{}
	for _, l := range w {
		inWant[l] = true
	}
	inGot := map[string]bool{}
	var out []string
	for _, l := range g {
		inGot[l] = true
		if !inWant[l] {
			out = append(out, "+ "+l)
		}
	}
	for _, l := range w {
		if !inGot[l] {
			out = append(out, "- "+l)
		}
	}
	return strings.Join(out, "\n")
}

// Spot checks against the reference table of milvus-proto (shared/reference
// privilege-map-go-api-v2.6.18.tsv), where the db field is not field 2.
func TestMethodTableSpotChecks(t *testing.T) {
	table, err := NewTable()
	if err != nil {
		t.Fatal(err)
	}
	for method, want := range map[string]Rule{
		"Search":           {Object: "Collection", Privilege: "Search", NameField: 3, DBField: 2},
		"GetLoadState":     {Object: "Collection", Privilege: "GetLoadState", NameField: 2, DBField: 4},
		"Import":           {Object: "Collection", Privilege: "Import", NameField: 1, DBField: 7},
		"Flush":            {Object: "Collection", Privilege: "Flush", NamesField: 3, DBField: 2},
		"SelectUser":       {Object: "User", Privilege: "SelectUser", NameField: 2, NameInMessage: true, SelfExempt: true},
		"AddUserTags":      {Object: "User", Privilege: "UpdateUser", NameField: 2},
		"CreateCredential": {Object: "Global", Privilege: "CreateOwnership"},
	} {
		r, ok := table.Rule("/" + Service + "/" + method)
		want.Method = "/" + Service + "/" + method
		if !ok || *r != want {
			t.Errorf("%s: %+v, want %+v", method, r, want)
		}
	}
	for _, open := range []string{"ShowCollections", "ListDatabases", "GetVersion", "HasCollection"} {
		if !table.open["/"+Service+"/"+open] {
			t.Errorf("%s should need no privilege", open)
		}
	}
	if !table.adminOnly["/"+Service+"/ReplicateMessage"] {
		t.Error("ReplicateMessage must be admin only")
	}
}
