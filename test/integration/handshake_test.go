package integration

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/authproxy/authproxy/test/harness"
)

// A client may wait for the server's acknowledgement of its SETTINGS
// before its first request (RFC 9113 §6.5.3: the receiver acknowledges at
// once). Such a client gets the ACK at once and its first request, gRPC
// or REST, is served by the right side: on the grpc core the port's
// sniffer, which waits for that request, acknowledges itself; it used to
// stall for the 10 s sniff timeout and then hand the connection to REST.
func TestClientWaitingForSettingsAckIsServed(t *testing.T) {
	overBoth(t, "", func(t *testing.T, dir, extra string, k *pki) {
		_, p := startPair(t, harness.Options{Dir: dir, Extra: extra})
		harness.Password("root", "Milvus")
		dial := func() *rawH2 {
			if k != nil {
				return dialH2TLS(t, p.Addr, k.clientTLS(false))
			}
			return dialH2(t, p.Addr)
		}
		// The sniff timeout is 10 s: 5 s tells an answer from a stall
		// even on a loaded machine.
		const bound = 5 * time.Second

		t.Run("grpc", func(t *testing.T) {
			c := dial()
			waitSettingsAck(t, c, bound)
			must(t, c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: grpcHeaderBlock(floodGetVersion, "root:Milvus"), EndHeaders: true}))
			must(t, c.fr.WriteData(1, true, make([]byte, 5))) // an empty GetVersionRequest
			trailers, _ := readResponse(t, c, bound)
			if st := trailers["grpc-status"]; st != "0" {
				t.Fatalf("GetVersion after the SETTINGS ACK: grpc-status %q (%s), want 0", st, trailers["grpc-message"])
			}
		})
		t.Run("rest", func(t *testing.T) {
			c := dial()
			waitSettingsAck(t, c, bound)
			var block bytes.Buffer
			enc := hpack.NewEncoder(&block)
			for _, f := range [][2]string{
				{":method", "POST"}, {":scheme", "https"}, {":path", "/v2/vectordb/users/list"}, {":authority", "proxy"},
				{"content-type", "application/json"}, {"authorization", "Bearer root:Milvus"},
			} {
				_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
			}
			must(t, c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndHeaders: true}))
			must(t, c.fr.WriteData(1, true, []byte("{}")))
			headers, body := readResponse(t, c, bound)
			var reply struct {
				Code int      `json:"code"`
				Data []string `json:"data"`
			}
			if headers[":status"] != "200" || json.Unmarshal(body, &reply) != nil || reply.Code != 0 || !strings.Contains(strings.Join(reply.Data, ","), "root") {
				t.Fatalf("users/list after the SETTINGS ACK: %v %s, want 200 with code 0 and root", headers, body)
			}
		})
	})
}

// waitSettingsAck sends the client's SETTINGS and reads until the server
// acknowledges them, within bound; it acknowledges the server's SETTINGS.
func waitSettingsAck(t *testing.T, c *rawH2, bound time.Duration) {
	t.Helper()
	start := time.Now()
	_ = c.conn.SetDeadline(start.Add(bound))
	must(t, c.fr.WriteSettings())
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("no SETTINGS ACK within %v: %v", bound, err)
		}
		if s, ok := f.(*http2.SettingsFrame); ok {
			if s.IsAck() {
				t.Logf("SETTINGS ACK after %v", time.Since(start).Round(time.Millisecond))
				return
			}
			must(t, c.fr.WriteSettingsAck())
		}
	}
}

// readResponse reads stream 1's response within bound: every header field
// (response headers and trailers together) and the body. It acknowledges
// SETTINGS and fails on a GOAWAY or RST_STREAM.
func readResponse(t *testing.T, c *rawH2, bound time.Duration) (map[string]string, []byte) {
	t.Helper()
	_ = c.conn.SetDeadline(time.Now().Add(bound))
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fields := map[string]string{}
	var body []byte
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("no response within %v: %v (so far %v %q)", bound, err, fields, body)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				must(t, c.fr.WriteSettingsAck())
			}
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v %q", f.ErrCode, f.DebugData())
		case *http2.RSTStreamFrame:
			t.Fatalf("RST_STREAM %v", f.ErrCode)
		case *http2.MetaHeadersFrame:
			for _, hf := range f.Fields {
				fields[hf.Name] = hf.Value
			}
			if f.StreamEnded() {
				return fields, body
			}
		case *http2.DataFrame:
			body = append(body, f.Data()...)
			if f.StreamEnded() {
				return fields, body
			}
		}
	}
}

// A connection that starts like the HTTP/2 preface but deviates from it,
// or that is neither HTTP/2 nor HTTP/1, is closed without an answer (RFC
// 9113 §3.4: an invalid preface is a connection error); an HTTP/1.1
// request, short ones included, still reaches REST over HTTP/1.1.
func TestBrokenPrefaceIsClosedAndHTTP1IsServed(t *testing.T) {
	_, p := startPair(t, harness.Options{})
	exchange := func(t *testing.T, send string) string {
		conn, err := net.DialTimeout("tcp", p.Addr, 5*time.Second)
		must(t, err)
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Write([]byte(send))
		must(t, err)
		start := time.Now()
		got, err := io.ReadAll(conn)
		t.Logf("%q: %q after %v", send, got, time.Since(start).Round(time.Millisecond))
		if err != nil {
			t.Fatalf("after %q: %v (read %q), want the connection closed or answered within 5 s", send, err, got)
		}
		return string(got)
	}
	for _, send := range []string{
		"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n",
		"INVALID CONNECTION PREFACE\r\n\r\n",
	} {
		if got := exchange(t, send); got != "" {
			t.Errorf("after %q the proxy answered %q, want the connection closed", send, got)
		}
	}
	if got := exchange(t, "GET /v2/vectordb/users/list HTTP/1.0\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.0 ") && !strings.HasPrefix(got, "HTTP/1.1 ") {
		t.Errorf("a short HTTP/1.0 request got %q, want an HTTP/1 answer", got)
	}
}
