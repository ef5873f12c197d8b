package relay

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// grpcFrame is a gRPC length-prefixed message.
func grpcFrame(msg []byte) []byte {
	out := []byte{0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(out[1:], uint32(len(msg)))
	return append(out, msg...)
}

func field(b []byte, num protowire.Number, v string) []byte {
	return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), v)
}

// An Insert's collection (3) and database (2) come before its vectors (5):
// the decision may be taken once they are whole, and not before.
func TestDecisionPrefix(t *testing.T) {
	wanted := []protowire.Number{3, 2}
	head := field(field(field(nil, 1, "base"), 2, "db"), 3, "books")
	msg := field(head, 5, string(make([]byte, 100000)))
	frame := grpcFrame(msg)
	if n, ok := decisionPrefix(frame[:5+len(head)+10], wanted); !ok || n != len(head) {
		t.Fatalf("vectors under way: %d %v, want %d true", n, ok, len(head))
	}
	if _, ok := decisionPrefix(frame[:5+len(head)-2], wanted); ok {
		t.Fatal("decided before the collection was whole")
	}
	if _, ok := decisionPrefix(frame, wanted); ok {
		t.Fatal("a whole message is decided on as a whole, not on a prefix")
	}
	// A big field that comes before the collection: wait for all of it.
	early := grpcFrame(field(field(nil, 1, string(make([]byte, 100000))), 3, "books"))
	if _, ok := decisionPrefix(early[:1000], wanted); ok {
		t.Fatal("decided before the collection came")
	}
	compressed := append([]byte{1}, frame[1:]...)
	if _, ok := decisionPrefix(compressed[:5+len(head)+10], wanted); ok {
		t.Fatal("decided on a compressed message")
	}
}

// The rest of the message passes the check, in chunks of any size, unless
// a field the decision read comes again.
func TestTailCheck(t *testing.T) {
	wanted := []protowire.Number{3, 2}
	tail := field(nil, 5, string(bytes.Repeat([]byte{7}, 3000)))
	tail = protowire.AppendVarint(protowire.AppendTag(tail, 7, protowire.VarintType), 1<<40)
	tail = protowire.AppendFixed32(protowire.AppendTag(tail, 8, protowire.Fixed32Type), 1)
	tail = protowire.AppendFixed64(protowire.AppendTag(tail, 9, protowire.Fixed64Type), 1)
	for _, chunk := range []int{1, 7, 1000, len(tail)} {
		tc := newTailCheck(wanted, len(tail))
		for b := tail; len(b) > 0; {
			k := min(chunk, len(b))
			if err := tc.feed(b[:k]); err != nil {
				t.Fatalf("chunks of %d: %v", chunk, err)
			}
			b = b[k:]
		}
		if !tc.done() {
			t.Fatalf("chunks of %d: not done", chunk)
		}
	}
	// Bytes past the message (the next one of a stream) are not checked.
	tc := newTailCheck(wanted, len(tail))
	if err := tc.feed(append(append([]byte(nil), tail...), field(nil, 3, "secret")...)); err != nil {
		t.Fatalf("the next message was checked: %v", err)
	}
	late := field(tail, 3, "secret")
	for _, chunk := range []int{1, len(late)} {
		tc := newTailCheck(wanted, len(late))
		var err error
		for b := late; len(b) > 0 && err == nil; b = b[min(chunk, len(b)):] {
			err = tc.feed(b[:min(chunk, len(b))])
		}
		if !errors.Is(err, errLateDecisionField) {
			t.Fatalf("collection again after the vectors, chunks of %d: %v", chunk, err)
		}
	}
	overlong := protowire.AppendVarint(protowire.AppendTag(nil, 5, protowire.BytesType), 1000)
	if err := newTailCheck(wanted, len(overlong)+10).feed(overlong); !errors.Is(err, errMalformedTail) {
		t.Fatalf("a length past the message's end: %v", err)
	}
	cut := field(nil, 5, "abc")
	if err := newTailCheck(wanted, len(cut)).feed(cut[:len(cut)-1]); err != nil {
		t.Fatalf("a message still under way: %v", err)
	}
}
