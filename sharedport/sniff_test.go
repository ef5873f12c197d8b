package sharedport

import (
	"bytes"
	"errors"
	"fmt"
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
		{"a preface that deviates", []byte("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"), other, 64},
		{"preface, then silent", []byte(http2.ClientPreface), broken, 64},
		{"silent", nil, broken, 0},
		{"DATA before headers", clientBytes(t, func(f *http2.Framer) {
			_ = f.WriteSettings()
			for range 1000 {
				_ = f.WriteData(1, false, big)
			}
		}), broken, 64 << 10},
		{"CONTINUATION flood", clientBytes(t, func(f *http2.Framer) {
			_ = f.WriteSettings()
			_ = f.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: grpcHeaders[:5]})
			for range 1000 {
				_ = f.WriteContinuation(1, false, big)
			}
		}), broken, 64 << 10},
		{"CONTINUATION without HEADERS", clientBytes(t, func(f *http2.Framer) {
			_ = f.WriteSettings()
			_ = f.WriteContinuation(1, true, grpcHeaders)
		}), broken, 1 << 10},
		{"one long header value", clientBytes(t, func(f *http2.Framer) {
			_ = f.WriteSettings()
			_ = f.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: headerBlock("content-type", "application/grpc", "x-long", strings.Repeat("v", 15<<10)), EndHeaders: true})
		}), broken, 64 << 10},
		{"control frame flood", clientBytes(t, func(f *http2.Framer) {
			_ = f.WriteSettings()
			for range 10000 {
				_ = f.WritePing(false, [8]byte{})
			}
		}), broken, 1 << 10},
		{"oversized frame", clientBytes(t, func(f *http2.Framer) {
			_ = f.WriteSettings()
			_ = f.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: bytes.Repeat([]byte{0}, 1<<20), EndHeaders: true})
		}), broken, 64 << 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &countingReader{r: bytes.NewReader(c.in)}
			if got := sniff(io.Discard, r, nil); got != c.want {
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

// written describes the frames the sniffer wrote.
func written(t *testing.T, b []byte) []string {
	t.Helper()
	fr := http2.NewFramer(nil, bytes.NewReader(b))
	var out []string
	for {
		f, err := fr.ReadFrame()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("the sniffer wrote a broken frame: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			var ss []string
			_ = f.ForeachSetting(func(s http2.Setting) error {
				ss = append(ss, s.String())
				return nil
			})
			out = append(out, fmt.Sprintf("SETTINGS ack=%t %v", f.IsAck(), ss))
		case *http2.PingFrame:
			out = append(out, fmt.Sprintf("PING ack=%t %v", f.IsAck(), f.Data))
		case *http2.GoAwayFrame:
			out = append(out, fmt.Sprintf("GOAWAY %v %q", f.ErrCode, f.DebugData()))
		default:
			out = append(out, f.Header().String())
		}
	}
}

// The sniffer answers as an HTTP/2 server while it waits for the first
// request: its SETTINGS after the client's, an ACK for each SETTINGS and
// PING, in order.
func TestSniffAnswersAtOnce(t *testing.T) {
	in := clientBytes(t, func(f *http2.Framer) {
		_ = f.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
		_ = f.WritePing(false, [8]byte{1, 2, 3})
		_ = f.WriteSettings()
		_ = f.WriteRawFrame(0x16, 0, 0, []byte("an extension")) // ignored
		_ = f.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: headerBlock(":method", "GET"), EndHeaders: true})
	})
	var out bytes.Buffer
	own := []http2.Setting{{ID: http2.SettingMaxConcurrentStreams, Val: 250}}
	if v := sniff(&out, bytes.NewReader(in), own); v != other {
		t.Fatalf("sniff = %v, want other", v)
	}
	got := strings.Join(written(t, out.Bytes()), "; ")
	want := "SETTINGS ack=false [[MAX_CONCURRENT_STREAMS = 250]]; SETTINGS ack=true []; PING ack=true [1 2 3 0 0 0 0 0]; SETTINGS ack=true []"
	if got != want {
		t.Fatalf("the sniffer wrote\n%s\nwant\n%s", got, want)
	}
}

// What breaks the protocol before the first request ends the connection
// with a GOAWAY that names the error (RFC 9113 §5.4.1).
func TestSniffRefusesWithGoAway(t *testing.T) {
	cases := []struct {
		name   string
		frames func(f *http2.Framer)
		code   http2.ErrCode
	}{
		{"first frame not SETTINGS", func(f *http2.Framer) { _ = f.WritePing(false, [8]byte{}) }, http2.ErrCodeProtocol},
		{"ENABLE_PUSH 2", func(f *http2.Framer) {
			_ = f.WriteSettings(http2.Setting{ID: http2.SettingEnablePush, Val: 2})
		}, http2.ErrCodeProtocol},
		{"INITIAL_WINDOW_SIZE over 2^31-1", func(f *http2.Framer) {
			_ = f.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 31})
		}, http2.ErrCodeFlowControl},
		{"connection window over 2^31-1", func(f *http2.Framer) {
			_ = f.WriteSettings()
			_ = f.WriteWindowUpdate(0, 1<<31-1)
		}, http2.ErrCodeFlowControl},
		{"WINDOW_UPDATE on an idle stream", func(f *http2.Framer) {
			_ = f.WriteSettings()
			_ = f.WriteWindowUpdate(1, 1)
		}, http2.ErrCodeProtocol},
		{"DATA", func(f *http2.Framer) {
			_ = f.WriteSettings()
			_ = f.WriteData(1, true, []byte("x"))
		}, http2.ErrCodeProtocol},
		{"connection-specific field", func(f *http2.Framer) {
			_ = f.WriteSettings()
			_ = f.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: headerBlock(":method", "GET", "connection", "keep-alive"), EndHeaders: true})
		}, http2.ErrCodeProtocol},
		{"te other than trailers", func(f *http2.Framer) {
			_ = f.WriteSettings()
			_ = f.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: headerBlock("content-type", "application/grpc", "te", "gzip"), EndHeaders: true})
		}, http2.ErrCodeProtocol},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			if v := sniff(&out, bytes.NewReader(clientBytes(t, c.frames)), nil); v != broken {
				t.Fatalf("sniff = %v, want broken", v)
			}
			fs := written(t, out.Bytes())
			if len(fs) == 0 || !strings.HasPrefix(fs[len(fs)-1], "GOAWAY "+c.code.String()+" ") {
				t.Fatalf("the sniffer wrote %v, want a GOAWAY %v last", fs, c.code)
			}
			t.Log(fs[len(fs)-1])
		})
	}
}

// A short HTTP/1 request is told from HTTP/2 by its first byte that
// differs from the preface, not after the sniff timeout.
func TestSniffTellsShortHTTP1AtOnce(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	go func() { _, _ = client.Write([]byte("GET / HTTP/1.0\r\n\r\n")) }()
	_ = server.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if v := sniff(io.Discard, server, nil); v != other || time.Since(start) > 4*time.Second {
		t.Fatalf("sniff = %v after %v, want other at once", v, time.Since(start))
	}
}
