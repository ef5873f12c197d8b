package relay

import (
	"encoding/binary"
	"testing"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/authproxy/authproxy/rbac"
	"github.com/authproxy/authproxy/rbac/rbactest"
)

// streamedDecision replays what the client reader does with a first
// request message arriving in DATA frames (clientConn.decide, then the
// tail check on each later frame): the bytes the decision was taken on,
// or refused when the relay would refuse the call before the backend got
// the whole message.
func streamedDecision(frames [][]byte, wanted []protowire.Number, limit int) (payload []byte, refused bool) {
	var gate []byte
	var tail *tailCheck
	decided := false
	for i, f := range frames {
		last := i == len(frames)-1
		if decided {
			if tail != nil && tail.feed(f) != nil {
				return nil, true
			}
			continue
		}
		gate = append(gate, f...)
		msg, complete, err := firstMessage(gate, "", limit)
		if err != nil {
			return nil, true
		}
		if !complete && !last {
			n, ok := decisionPrefix(gate, wanted)
			if !ok {
				continue
			}
			msg = gate[5 : 5+n]
			tail = newTailCheck(wanted, int(binary.BigEndian.Uint32(gate[1:5]))-n)
			if tail.feed(gate[5+n:]) != nil {
				return nil, true
			}
		}
		payload, decided = msg, true
	}
	return payload, false
}

// cutFrames cuts b into DATA frames at the points sizes names (each a
// frame's length, 0 read as 1), the rest in one last frame.
func cutFrames(b []byte, sizes []byte) [][]byte {
	var out [][]byte
	for _, s := range sizes {
		if len(b) == 0 {
			break
		}
		n := min(max(int(s), 1), len(b))
		out = append(out, b[:n])
		b = b[n:]
	}
	if len(b) > 0 || len(out) == 0 {
		out = append(out, b)
	}
	return out
}

// FuzzStreamedDecisionReadsAsTheBackend: for every method whose decision
// reads the request, a message cut into DATA frames at any points is
// either refused before the backend gets all of it, or decided on a
// prefix (or the whole) that names the same collection, names and
// database as proto.Unmarshal of the whole message.
func FuzzStreamedDecisionReadsAsTheBackend(f *testing.F) {
	table, err := rbac.NewTable()
	if err != nil {
		f.Fatal(err)
	}
	methods := rbactest.NamedMethods(table)
	insert, _ := proto.Marshal(&milvuspb.InsertRequest{DbName: "db", CollectionName: "books", NumRows: 3})
	insert = protowire.AppendBytes(protowire.AppendTag(insert, 5, protowire.BytesType), make([]byte, 300))
	lateSecret := protowire.AppendString(protowire.AppendTag(append([]byte(nil), insert...), 3, protowire.BytesType), "secret")
	lateDB := protowire.AppendString(protowire.AppendTag(append([]byte(nil), insert...), 2, protowire.BytesType), "b")
	search, _ := proto.Marshal(&milvuspb.SearchRequest{CollectionName: "books", DbName: "db2"})
	for i, m := range methods {
		for _, seed := range [][]byte{insert, lateSecret, lateDB, search} {
			f.Add(uint16(i), []byte{5, 20, 1, 1, 255, 3}, seed)
		}
		if m == "/"+rbac.Service+"/Insert" {
			f.Add(uint16(i), []byte{40, 40}, lateSecret)
		}
	}
	f.Fuzz(func(t *testing.T, which uint16, sizes, msg []byte) {
		method := methods[int(which)%len(methods)]
		rule, _ := table.Rule(method)
		wanted, _ := table.MessageFields(method)
		frames := cutFrames(grpcFrame(msg), sizes)
		payload, refused := streamedDecision(frames, wanted, 1<<20)
		want, parsed := rbactest.BackendReads(rule, msg)
		if refused || !parsed {
			return
		}
		got, err := rbac.Scan(rule, [][]byte{payload})
		if err != nil {
			return // the authorizer refuses it
		}
		if d := rbactest.Diff(rule, got, want); d != "" {
			t.Fatalf("%s, message %x in frames of %v: decided on %d bytes: %s", method, msg, sizes, len(payload), d)
		}
	})
}
