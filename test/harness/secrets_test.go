package harness

import "testing"

func TestContainsToken(t *testing.T) {
	for line, want := range map[string]bool{
		`password=Milvus`:                        true,
		`token "Milvus" refused`:                 true,
		`Milvus`:                                 true,
		`/milvus.proto.milvus.MilvusService/Get`: false,
		`NotMilvus`:                              false,
	} {
		if got := containsToken(line, "Milvus"); got != want {
			t.Errorf("containsToken(%q) = %v, want %v", line, got, want)
		}
	}
}
