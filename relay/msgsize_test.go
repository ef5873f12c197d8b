package relay

import "testing"

// The sizes are read from each message's prefix however the DATA cuts
// it, and the first message over the limit is found where it begins.
func TestMessageSizes(t *testing.T) {
	var stream []byte
	for _, n := range []int{3, 0, 5, 10, 2} {
		stream = append(stream, grpcFrame(make([]byte, n))...)
	}
	overAt := 5 + 3 + 5 + 0 + 5 + 5 // the 10-byte message's prefix
	for _, chunk := range []int{1, 2, 4, 7, len(stream)} {
		var m messageSizes
		found := false
		for off := 0; off < len(stream) && !found; off += chunk {
			b := stream[off:min(off+chunk, len(stream))]
			size, at, over := m.feed(b, 5)
			if !over {
				continue
			}
			found = true
			if size != 10 {
				t.Errorf("chunks of %d: size %d, want 10", chunk, size)
			}
			if want := max(overAt-off, 0); at != want {
				t.Errorf("chunks of %d: at %d, want %d", chunk, at, want)
			}
		}
		if !found {
			t.Errorf("chunks of %d: the 10-byte message passed a limit of 5", chunk)
		}
		var whole messageSizes
		if _, _, over := whole.feed(stream, 10); over {
			t.Errorf("a limit of 10 refused a message of 10")
		}
	}
}
