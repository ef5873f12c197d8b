package sharedport

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// clientBytes builds what a client sends: the preface and frames.
func clientBytes(t *testing.T, frames func(f *http2.Framer)) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteString(http2.ClientPreface)
	frames(http2.NewFramer(&buf, nil))
	return buf.Bytes()
}

func headerBlock(fields ...string) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for i := 0; i+1 < len(fields); i += 2 {
		_ = enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return buf.Bytes()
}

// countingReader counts what the matcher read.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestMatchGRPC(t *testing.T) {
	grpcHeaders := headerBlock(":method", "POST", ":path", "/milvus.proto.milvus.MilvusService/GetVersion", "content-type", "application/grpc")
	big := bytes.Repeat([]byte{'x'}, 16<<10)
	cases := []struct {
		name    string
		in      []byte
		want    verdict
		maxRead int // the matcher reads no more than this
	}{
		{"grpc", clientBytes(t, func(f *http2.Framer) {
			_ = f.WriteSettings()
			_ = f.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: grpcHeaders, EndHeaders: true})
		}), isGRPC, 1 << 10},
		{"grpc with continuation", clientBytes(t, func(f *http2.Framer) {
			_ = f.WriteSettings()
			_ = f.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: grpcHeaders[:5]})
			_ = f.WriteContinuation(1, true, grpcHeaders[5:])
		}), isGRPC, 1 << 10},
		{"rest over h2", clientBytes(t, func(f *http2.Framer) {
			_ = f.WriteSettings()
			_ = f.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: headerBlock(":method", "POST", "content-type", "application/json"), EndHeaders: true})
		}), other, 1 << 10},
		{"http/1", []byte("POST /v2/vectordb/collections/list HTTP/1.1\r\nHost: x\r\n\r\n"), other, 64},
		{"silent", nil, broken, 0},
		{"DATA before headers", clientBytes(t, func(f *http2.Framer) {
			_ = f.WriteSettings()
			for range 1000 {
				_ = f.WriteData(1, false, big)
			}
		}), broken, 64 << 10},
		{"CONTINUATION flood", clientBytes(t, func(f *http2.Framer) {
			_ = f.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: grpcHeaders[:5]})
			for range 1000 {
				_ = f.WriteContinuation(1, false, big)
			}
		}), broken, 64 << 10},
		{"CONTINUATION without HEADERS", clientBytes(t, func(f *http2.Framer) {
			_ = f.WriteContinuation(1, true, grpcHeaders)
		}), broken, 1 << 10},
		{"one long header value", clientBytes(t, func(f *http2.Framer) {
			_ = f.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: headerBlock("content-type", "application/grpc", "x-long", strings.Repeat("v", 15<<10)), EndHeaders: true})
		}), broken, 64 << 10},
		{"control frame flood", clientBytes(t, func(f *http2.Framer) {
			for range 10000 {
				_ = f.WritePing(false, [8]byte{})
			}
		}), broken, 1 << 10},
		{"oversized frame", clientBytes(t, func(f *http2.Framer) {
			_ = f.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: bytes.Repeat([]byte{0}, 1<<20), EndHeaders: true})
		}), broken, 64 << 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &countingReader{r: bytes.NewReader(c.in)}
			if got := sniff(io.Discard, r); got != c.want {
				t.Fatalf("sniff = %v, want %v", got, c.want)
			}
			if r.n > c.maxRead+32 {
				t.Fatalf("read %d bytes, bound %d", r.n, c.maxRead)
			}
		})
	}
}

// errTemporary is an accept error like EMFILE.
type errTemporary struct{}

func (errTemporary) Error() string   { return "too many open files" }
func (errTemporary) Temporary() bool { return true }
func (errTemporary) Timeout() bool   { return false }

type failingListener struct {
	net.Listener
	calls atomic.Int32
}

func (l *failingListener) Accept() (net.Conn, error) {
	l.calls.Add(1)
	return nil, errTemporary{}
}

// cmux retries a temporary accept error at once; the port's listener waits
// first, doubling from 5 ms, so a lack of file descriptors does not spin.
func TestAcceptErrorsBackOff(t *testing.T) {
	inner := &failingListener{}
	l := &backoffListener{Listener: inner}
	start := time.Now()
	for time.Since(start) < 300*time.Millisecond {
		if _, err := l.Accept(); !errors.Is(err, errTemporary{}) {
			t.Fatalf("accept: %v", err)
		}
	}
	// 5+10+20+40+80+160 ms: at most 7 calls in 300 ms, where a busy loop
	// makes millions.
	if n := inner.calls.Load(); n > 8 {
		t.Fatalf("%d accepts in 300 ms: no backoff", n)
	}
}
