package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// searchReqV2 is the shape Milvus's REST v2 binds entities/search into
// (internal/distributed/proxy/httpserver/request_v2.go, 2.5), as far as
// its JSON names and types go: the backend's reading of a body.
type searchReqV2 struct {
	DbName         string         `json:"dbName"`
	CollectionName string         `json:"collectionName"`
	Data           []any          `json:"data"`
	AnnsField      string         `json:"annsField"`
	PartitionNames []string       `json:"partitionNames"`
	Filter         string         `json:"filter"`
	Limit          int32          `json:"limit"`
	Offset         int32          `json:"offset"`
	OutputFields   []string       `json:"outputFields"`
	SearchParams   map[string]any `json:"searchParams"`
}

// ginDecode is gin's binding.JSON (binding/json.go, decodeJSON):
// json.NewDecoder over the body, one Decode.
func ginDecode(body []byte) (searchReqV2, error) {
	var q searchReqV2
	err := json.NewDecoder(bytes.NewReader(body)).Decode(&q)
	return q, err
}

// FuzzDataRequestReadsAsGin: whatever the body, the proxy refuses it or
// reads the collection and database gin's binding reads into Milvus's
// request struct, whenever that binding accepts the body. readBody, fed
// the body in chunks of any size, returns it exactly, or refuses it as too
// large.
func FuzzDataRequestReadsAsGin(f *testing.F) {
	for _, seed := range []string{
		`{"collectionName":"books","data":[[0.1]],"limit":3}`,
		`{"collectionName":"books","dbName":"db2","data":[[0.1]]}`,
		`{"collectionName":"books","collectionName":"secret"}`,
		`{"collectionName":"books","COLLECTIONNAME":"secret"}`,
		`{"collectionName":"books","dbName":"db2"} x`,
		`{"collectionName":"books"} {"dbName":"db2"}`,
		`{"collectionName":"books","dbName":2}`,
		`{"collectionName":"books","dbName":"\ud800"}`,
		`{"collectionName":"b\u006foks","dbName":null}`,
		`{"dbName":"db2","data":[{"id":1,"vector":[0.1,0.2]}],"collectionName":"books"} ` + "\n",
		`[]`, `null`, ``, ` `,
	} {
		f.Add([]byte(seed), uint8(3))
	}
	f.Fuzz(func(t *testing.T, body []byte, chunk uint8) {
		const limit = 1 << 10
		r := iotest.OneByteReader(bytes.NewReader(body))
		if chunk > 1 {
			r = &chunkReader{b: body, n: int(chunk)}
		}
		read, err := readBody(r, -1, limit)
		var tooBig errBodyTooLarge
		switch {
		case len(body) > limit:
			if !errors.As(err, &tooBig) {
				t.Fatalf("a body of %d bytes over the limit of %d: %v", len(body), limit, err)
			}
		case err != nil || !bytes.Equal(read, body):
			t.Fatalf("readBody in chunks of %d: %q, %v; want the body %q", chunk, read, err, body)
		}

		got, err := decodeDataRequest(body)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("a refusal that names nothing")
			}
			return
		}
		want, err := ginDecode(body)
		if err != nil {
			return // the backend refuses the body too
		}
		if got.CollectionName != want.CollectionName || got.DBName != want.DbName {
			t.Fatalf("body %q: the proxy reads (%q, %q), gin (%q, %q)", body, got.CollectionName, got.DBName, want.CollectionName, want.DbName)
		}
	})
}

// chunkReader returns b n bytes at a time.
type chunkReader struct {
	b []byte
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), c.n)], c.b)
	c.b = c.b[k:]
	return k, nil
}
