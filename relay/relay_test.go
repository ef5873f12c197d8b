package relay

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"testing"
)

func frame(flag byte, msg []byte) []byte {
	out := []byte{flag, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(out[1:], uint32(len(msg)))
	return append(out, msg...)
}

func gz(t *testing.T, b []byte) []byte {
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	w.Write(b)
	w.Close()
	return z.Bytes()
}

// The authorizer gets the first message once it is whole, decompressed
// when it is gzip, and a length over the limit is refused before it is
// gathered.
func TestFirstMessage(t *testing.T) {
	msg := []byte("collection_name")
	whole := frame(0, msg)
	for i := 0; i < len(whole); i++ {
		if _, complete, err := firstMessage(whole[:i], "", 100); complete || err != nil {
			t.Fatalf("%d bytes: complete %v, %v", i, complete, err)
		}
	}
	if got, complete, err := firstMessage(append(whole, 9, 9), "", 100); !complete || err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("whole: %q %v %v", got, complete, err)
	}
	if got, complete, err := firstMessage(frame(1, gz(t, msg)), "gzip", 100); !complete || err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("gzip: %q %v %v", got, complete, err)
	}
	if _, _, err := firstMessage(frame(1, gz(t, msg)), "snappy", 100); err == nil {
		t.Fatal("an unknown compressor was read")
	}
	if _, _, err := firstMessage([]byte{0, 0, 0, 1, 0}, "", 100); err == nil {
		t.Fatal("a 256-byte message passed a 100-byte limit")
	}
	if _, _, err := firstMessage(frame(1, gz(t, bytes.Repeat([]byte{'a'}, 1000))), "gzip", 100); err == nil {
		t.Fatal("a gzip bomb passed the limit once decompressed")
	}
}

// A filtered reply is re-framed message by message, uncompressed.
func TestFilterReply(t *testing.T) {
	upper := func(b []byte) ([]byte, error) { return bytes.ToUpper(b), nil }
	in := append(frame(0, []byte("ab")), frame(1, gz(t, []byte("cd")))...)
	got, err := filterReply(in, upper)
	if err != nil || !bytes.Equal(got, append(frame(0, []byte("AB")), frame(0, []byte("CD"))...)) {
		t.Fatalf("%q %v", got, err)
	}
	if _, err := filterReply(in[:len(in)-1], upper); err == nil {
		t.Fatal("a truncated reply was filtered")
	}
}

func TestEncodeGrpcMessage(t *testing.T) {
	if got := encodeGrpcMessage("50% off\nnaïve"); got != "50%25 off%0Ana%C3%AFve" {
		t.Fatalf("%q", got)
	}
}
