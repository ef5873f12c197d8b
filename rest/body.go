package rest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// dataRequest holds the fields of a data route's body that name what it
// touches, with the JSON names of Milvus's REST v2 request structs
// (internal/distributed/proxy/httpserver/request_v2.go).
type dataRequest struct {
	CollectionName string `json:"collectionName"`
	DBName         string `json:"dbName"`
	// nq is a search's vectors (len of data), read apart for the limits.
	nq int64
}

// decodeDataRequest reads a data route's body as Milvus 2.5's REST v2 reads
// it, or refuses it. Milvus binds with gin's binding.JSON, which is
// json.NewDecoder(body).Decode (gin's internal/json is encoding/json: Milvus
// builds with the tags dynamic,sonic, and gin takes sonic only with avx
// too): keys match the struct's case-insensitively and the last of
// duplicate keys wins, as here. Where that decoder and a stricter one
// would disagree, the body is refused rather than guessed at:
//   - anything but white space after the first JSON value (the Decoder
//     ignores it, so `{"dbName":"db2"} x` searches db2; json.Unmarshal,
//     used here, refuses it);
//   - a body that does not bind (a name that is no string, no object):
//     the backend refuses it too, and no default is decided on instead;
//   - a name that is not valid UTF-8 or holds U+FFFD (an invalid escape
//     becomes U+FFFD in encoding/json; another decoder may keep it, refuse
//     it or replace it otherwise).
func decodeDataRequest(body []byte) (dataRequest, error) {
	var q dataRequest
	if len(body) == 0 {
		// The Decoder's io.EOF: Milvus answers with this wording.
		return q, errors.New("the request body should be nil, however {} is valid")
	}
	if err := json.Unmarshal(body, &q); err != nil {
		return q, fmt.Errorf("error: %w", err)
	}
	for _, f := range []struct{ key, v string }{{"collectionName", q.CollectionName}, {"dbName", q.DBName}} {
		if !utf8.ValidString(f.v) || strings.ContainsRune(f.v, utf8.RuneError) {
			return q, fmt.Errorf("error: %s is not valid UTF-8", f.key)
		}
	}
	return q, nil
}

// Blocks a body is read into: small first, so that the usual request of a
// few hundred bytes costs one small allocation, then up to bodyBlockMax.
const (
	bodyBlockMin = 32 << 10
	bodyBlockMax = 1 << 20
)

// errBodyTooLarge says a body went past the limit.
type errBodyTooLarge struct{ limit int64 }

func (e errBodyTooLarge) Error() string {
	return fmt.Sprintf("request body too large: the limit is %d bytes", e.limit)
}

// readBody reads a data route's body whole: the decision may hang on its
// last byte (the last of duplicate keys wins), and no byte may reach the
// backend before it. Milvus reads the body whole as well before binding
// it. What a body costs follows what arrived, not what was declared: it is
// read into blocks as its bytes come (a client that declares 64 MiB and
// sends nothing costs one block), never past limit, and joined once at
// the end; so a body costs at most twice its size while it is joined, and
// a body refused for its size at most the limit.
func readBody(r io.Reader, declared, limit int64) ([]byte, error) {
	if declared > limit {
		return nil, errBodyTooLarge{limit}
	}
	var blocks [][]byte
	var total int64
	size := int64(bodyBlockMin)
	for {
		n := size
		if declared >= 0 {
			// Never more than the declared rest, and one byte beyond it
			// to see a body longer than declared.
			n = min(n, declared-total+1)
		}
		n = min(n, limit-total+1)
		block := make([]byte, n)
		k, err := io.ReadFull(r, block)
		total += int64(k)
		if k > 0 {
			blocks = append(blocks, block[:k])
		}
		if total > limit {
			return nil, errBodyTooLarge{limit}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return nil, err
		}
		size = min(size*2, bodyBlockMax)
	}
	switch len(blocks) {
	case 0:
		return []byte{}, nil
	case 1:
		return blocks[0], nil
	}
	out := make([]byte, 0, total)
	for i, b := range blocks {
		out = append(out, b...)
		blocks[i] = nil // collectable while the rest is copied
	}
	return out, nil
}
