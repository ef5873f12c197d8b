package relay

import (
	"encoding/binary"
	"errors"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// The authorizer reads a few top-level fields of a call's first request
// message (the collection, the database). Every protobuf encoder writes
// fields in number order, so in an Insert they come before the vectors:
// the relay decides on the leading fields, as soon as they are whole, and
// forwards the rest as it comes instead of gathering megabytes first.
//
// A parser lets the last occurrence of a field win, so a client could name
// one collection up front and another after the vectors. tailCheck follows
// the rest of the message's fields as they pass and refuses the call
// before the frame that would carry such a field is forwarded: the backend
// never gets a whole message that names something else.

// decisionPrefix returns how many bytes of the gathered first message
// (gRPC framing included) the decision may be taken on: the leading whole
// fields, when the first field that is not whole comes after every field
// the decision reads (wanted) and is not one of them. ok is false while
// that cannot be told yet, and for compressed messages.
func decisionPrefix(gate []byte, wanted []protowire.Number) (n int, ok bool) {
	if len(gate) < 5 || gate[0]&1 != 0 {
		return 0, false
	}
	msg := gate[5:]
	if size := int(binary.BigEndian.Uint32(gate[1:5])); len(msg) > size {
		msg = msg[:size]
	}
	last := protowire.Number(0)
	for _, w := range wanted {
		last = max(last, w)
	}
	for n < len(msg) {
		num, typ, tagLen := protowire.ConsumeTag(msg[n:])
		if tagLen < 0 {
			return 0, false
		}
		valLen := protowire.ConsumeFieldValue(num, typ, msg[n+tagLen:])
		if valLen < 0 {
			// Not whole yet (or malformed: then the whole message is
			// awaited, and the authorizer says so).
			return n, num > last && !slices.Contains(wanted, num)
		}
		n += tagLen + valLen
	}
	return 0, false // whole: decided on the whole message
}

var errLateDecisionField = errors.New("authproxy: a field the authorization read comes again later in the request message; the call is refused")

// tailCheck follows the top-level fields of the rest of a first message
// decided on its prefix, and refuses any field the decision read.
type tailCheck struct {
	wanted []protowire.Number
	left   int // bytes of the message still to come
	state  tailState
	v      uint64 // the varint being read
	shift  uint
	skip   uint64 // value bytes to pass over
}

type tailState int

const (
	readTag tailState = iota
	readVarintValue
	readLength
	skipValue
)

func newTailCheck(wanted []protowire.Number, left int) *tailCheck {
	return &tailCheck{wanted: wanted, left: left}
}

// done says whether the whole message has passed.
func (t *tailCheck) done() bool { return t.left == 0 }

// feed checks the next bytes of the stream (beyond the message: ignored).
func (t *tailCheck) feed(b []byte) error {
	if len(b) > t.left {
		b = b[:t.left]
	}
	t.left -= len(b)
	for len(b) > 0 {
		if t.state == skipValue {
			k := min(uint64(len(b)), t.skip)
			t.skip -= k
			b = b[k:]
			if t.skip == 0 {
				t.state = readTag
			}
			continue
		}
		c := b[0]
		b = b[1:]
		if t.shift >= 64 {
			return errMalformedTail
		}
		t.v |= uint64(c&0x7f) << t.shift
		t.shift += 7
		if c >= 0x80 {
			continue
		}
		v := t.v
		t.v, t.shift = 0, 0
		switch t.state {
		case readTag:
			num, typ := protowire.Number(v>>3), protowire.Type(v&7)
			if num <= 0 || num > protowire.MaxValidNumber {
				return errMalformedTail
			}
			if slices.Contains(t.wanted, num) {
				return errLateDecisionField
			}
			switch typ {
			case protowire.VarintType:
				t.state = readVarintValue
			case protowire.Fixed32Type:
				t.state, t.skip = skipValue, 4
			case protowire.Fixed64Type:
				t.state, t.skip = skipValue, 8
			case protowire.BytesType:
				t.state = readLength
			default:
				return errMalformedTail
			}
		case readVarintValue:
			t.state = readTag
		case readLength:
			if v > uint64(t.left+len(b)) {
				return errMalformedTail
			}
			t.state, t.skip = skipValue, v
			if v == 0 {
				t.state = readTag
			}
		}
	}
	if t.left == 0 && (t.state != readTag || t.shift != 0) {
		return errMalformedTail
	}
	return nil
}

var errMalformedTail = errors.New("authproxy: malformed request message")
