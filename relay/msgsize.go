package relay

import (
	"encoding/binary"
	"fmt"
)

// messageSizes follows the gRPC messages of one direction of a call as
// its DATA passes, without holding them: the 5-byte prefix of each (which
// may straddle frames) and how much of its body is still to come. grpc-go
// refuses a message over its size limit on that prefix (rpc_util.go,
// recvMsg), and the grpc-go core does so for requests (the server's
// MaxRecvMsgSize) and replies (the backend client's MaxCallRecvMsgSize);
// the relay does the same in both directions.
type messageSizes struct {
	prefix [5]byte
	have   int    // prefix bytes gathered
	left   uint64 // body bytes of the current message still to pass
}

// feed follows b. For the first message whose declared size is over
// limit, it returns that size, and where in b the message begins (0 when
// its prefix began in an earlier buffer): what comes before it is whole
// messages that may still pass.
func (m *messageSizes) feed(b []byte, limit int) (size uint32, at int, over bool) {
	for i := 0; i < len(b); {
		if m.left > 0 {
			k := min(m.left, uint64(len(b)-i))
			m.left -= k
			i += int(k)
			continue
		}
		start := max(i-m.have, 0)
		k := copy(m.prefix[m.have:], b[i:])
		m.have += k
		i += k
		if m.have < len(m.prefix) {
			break
		}
		m.have = 0
		n := binary.BigEndian.Uint32(m.prefix[1:])
		if int64(n) > int64(limit) {
			return n, start, true
		}
		m.left = uint64(n)
	}
	return 0, 0, false
}

// tooLarge is grpc-go's refusal of such a message, to the letter.
func tooLarge(size uint32, limit int) string {
	return fmt.Sprintf("grpc: received message larger than max (%d vs. %d)", size, limit)
}
