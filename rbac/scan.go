package rbac

import (
	"errors"

	"google.golang.org/protobuf/encoding/protowire"
)

// Target is what a request names: the object, several objects (Flush) and
// the database, as the backend's protobuf parser will read them.
type Target struct {
	Name    []byte
	HasName bool
	Names   [][]byte
	DB      []byte
}

var errMalformed = errors.New("malformed request message")

// Scan reads rule's fields from the top level of a request message, given
// as the buffers it arrived in, without decoding the rest: an Insert's
// vectors are skipped over, not copied. As in every protobuf parser, the
// last occurrence of a field wins, so a client cannot show the proxy one
// collection and the backend another; a field with an unexpected wire type
// is ignored, as a parser ignores it. Single-buffer messages allocate
// nothing unless the request names several objects.
func Scan(rule *Rule, msg [][]byte) (Target, error) {
	var t Target
	c := cursor{bufs: msg}
	for !c.done() {
		tag, ok := c.varint()
		if !ok {
			return t, errMalformed
		}
		// Checked before the conversion to Number (int32) could wrap a
		// huge number onto a wanted one; parsers refuse it too.
		if tag>>3 > uint64(protowire.MaxValidNumber) {
			return t, errMalformed
		}
		num, typ := protowire.Number(tag>>3), protowire.Type(tag&7)
		if num <= 0 {
			return t, errMalformed
		}
		wanted := num == rule.NameField || num == rule.DBField || num == rule.NamesField
		if typ != protowire.BytesType || !wanted {
			if !c.skipValue(typ) {
				return t, errMalformed
			}
			continue
		}
		n, ok := c.varint()
		if !ok || n > uint64(c.remaining()) {
			return t, errMalformed
		}
		v, ok := c.take(int(n))
		if !ok {
			return t, errMalformed
		}
		switch num {
		case rule.NameField:
			if !rule.NameInMessage {
				t.Name, t.HasName = v, true
				continue
			}
			// Messages merge: a later occurrence replaces the name only
			// if it carries one.
			inner, err := Scan(&Rule{NameField: 1}, [][]byte{v})
			if err != nil {
				return t, err
			}
			if inner.HasName {
				t.Name, t.HasName = inner.Name, true
			}
		case rule.DBField:
			t.DB = v
		case rule.NamesField:
			t.Names = append(t.Names, v)
		}
	}
	return t, nil
}

// cursor reads a message spread over buffers.
type cursor struct {
	bufs [][]byte
	i    int // current buffer
	off  int // offset in it
}

func (c *cursor) normalize() {
	for c.i < len(c.bufs) && c.off >= len(c.bufs[c.i]) {
		c.i++
		c.off = 0
	}
}

func (c *cursor) done() bool {
	c.normalize()
	return c.i >= len(c.bufs)
}

func (c *cursor) remaining() int {
	n := 0
	for j := c.i; j < len(c.bufs); j++ {
		n += len(c.bufs[j])
	}
	return n - c.off
}

func (c *cursor) byte() (byte, bool) {
	c.normalize()
	if c.i >= len(c.bufs) {
		return 0, false
	}
	b := c.bufs[c.i][c.off]
	c.off++
	return b, true
}

func (c *cursor) varint() (uint64, bool) {
	var v uint64
	for shift := uint(0); shift < 64; shift += 7 {
		b, ok := c.byte()
		if !ok {
			return 0, false
		}
		v |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return v, true
		}
	}
	return 0, false
}

// take returns the next n bytes: a slice of the buffer when they lie in one,
// a copy when they straddle two.
func (c *cursor) take(n int) ([]byte, bool) {
	c.normalize()
	if n == 0 {
		return []byte{}, true
	}
	if c.i < len(c.bufs) && c.off+n <= len(c.bufs[c.i]) {
		v := c.bufs[c.i][c.off : c.off+n : c.off+n]
		c.off += n
		return v, true
	}
	out := make([]byte, 0, n)
	for len(out) < n {
		c.normalize()
		if c.i >= len(c.bufs) {
			return nil, false
		}
		k := min(n-len(out), len(c.bufs[c.i])-c.off)
		out = append(out, c.bufs[c.i][c.off:c.off+k]...)
		c.off += k
	}
	return out, true
}

func (c *cursor) skip(n uint64) bool {
	for n > 0 {
		c.normalize()
		if c.i >= len(c.bufs) {
			return false
		}
		k := min(n, uint64(len(c.bufs[c.i])-c.off))
		c.off += int(k)
		n -= k
	}
	return true
}

func (c *cursor) skipValue(typ protowire.Type) bool {
	switch typ {
	case protowire.VarintType:
		_, ok := c.varint()
		return ok
	case protowire.Fixed32Type:
		return c.skip(4)
	case protowire.Fixed64Type:
		return c.skip(8)
	case protowire.BytesType:
		n, ok := c.varint()
		return ok && n <= uint64(c.remaining()) && c.skip(n)
	}
	// Groups are not used by any Milvus message; a parser that met one
	// where it expects none would fail as well.
	return false
}
