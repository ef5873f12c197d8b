package relay

import (
	"bytes"
	"context"
	"errors"
	"net"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"
	"weak"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/authproxy/authproxy/auth"
	"github.com/authproxy/authproxy/edge"
)

// The frames of these tests are the relay's stream states at work
// (state.go): each test names the transitions it walks.

// idle → open → half-closed (remote) → closed: a unary call goes through,
// with the edge policy applied to its headers, and is forgotten once the
// reply's end has left.
func TestRelayForwardsACall(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		rt.call(1, []byte("query"), "authorization", "secret", "x-authproxy-user", "mallory", "dbname", "db1")
		b := rt.backend()
		h := b.wantHeaders()
		if h.StreamEnded() || h.PseudoValue("path") != testMethod || fieldValue(h, "te") != "trailers" || fieldValue(h, "dbname") != "db1" {
			t.Fatalf("upstream headers %v", h.Fields)
		}
		if fieldValue(h, "x-authproxy-user") != "" {
			t.Fatalf("an owned key passed: %v", h.Fields)
		}
		b.wantData(true, frame(0, []byte("query")))
		rt.wantOpen(1)
		rt.answered(b, h, 1, []byte("reply"), codes.OK)
		rt.quiet()
		rt.wantOpen(0)
		rt.wantObserved(codes.OK)
	})
}

// A finished call is not kept by connections that wait: the readers let
// go of the stream their last lookup found before they read again, so an
// idle client connection holds neither the call nor its request headers.
func TestRelayKeepsNoFinishedCall(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		b, h := rt.forwarded(nil, 1, []byte("q"), "authorization", "secret")
		var kept weak.Pointer[stream]
		rt.r.mu.Lock()
		for cc := range rt.r.conns {
			cc.smu.Lock()
			kept = weak.Make(cc.streams[1])
			cc.smu.Unlock()
		}
		rt.r.mu.Unlock()
		if kept.Value() == nil {
			rt.t.Fatal("the call is not open")
		}
		rt.answered(b, h, 1, []byte("reply"), codes.OK)
		rt.quiet()
		rt.wantOpen(0)
		runtime.GC()
		if kept.Value() != nil {
			rt.t.Fatal("a finished call is still reachable while its connection waits")
		}
	})
}

// The relay indexes no response header: a client's decoder needs no
// dynamic table (one that allows none reads every response), and an idle
// connection holds no table of them. A backend's SETTINGS_HEADER_TABLE_SIZE
// bounds the table of the requests' headers the relay keeps toward it.
func TestRelayIndexesNoResponseHeaders(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		dec := hpack.NewDecoder(0, nil)
		dec.SetAllowedMaxDynamicTableSize(0)
		rt.fr.ReadMetaHeaders = dec
		rt.call(1, []byte("q"))
		b := <-rt.dials
		upDec := hpack.NewDecoder(0, nil)
		upDec.SetAllowedMaxDynamicTableSize(0)
		b.fr.ReadMetaHeaders = upDec
		b.handshake(http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0})
		for _, id := range []uint32{1, 3, 5} {
			if id != 1 {
				rt.call(id, []byte("q"))
			}
			h := b.wantHeaders()
			b.wantData(true, frame(0, []byte("q")))
			rt.answered(b, h, id, []byte("reply"), codes.OK)
		}
	})
}

// open → half-closed (local) → closed: the backend answers before the
// client ends its side; what the client sends then is dropped, and it is
// told to stop with RST_STREAM NO_ERROR.
func TestRelayAnswerBeforeTheRequestEnds(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		b, h := rt.streaming(nil, 1, []byte("a"))
		rt.answered(b, h, 1, []byte("r"), codes.OK)
		rt.wantOpen(1) // half-closed (local): the client may still send
		rt.data(1, false, frame(0, []byte("b")))
		rt.wantRST(1, http2.ErrCodeNo)
		b.quiet()
		rt.wantOpen(0)
		// Trailers that end the client's side after the answer close the
		// stream, and go nowhere.
		b, h = rt.streaming(b, 3, []byte("a"))
		rt.answered(b, h, 3, nil, codes.OK)
		rt.headers(3, true, pairs("x-a", "1"))
		rt.quiet()
		b.quiet()
		rt.wantOpen(0)
		rt.wantObserved(codes.OK, codes.OK)
	})
}

// A streaming call: the client's trailers end its side and go upstream
// without the keys the proxy owns.
func TestRelayForwardsClientTrailers(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		b, h := rt.streaming(nil, 1, []byte("a"))
		rt.headers(1, true, pairs("x-end", "1", "x-authproxy-user", "mallory"))
		tr := b.wantHeaders()
		if !tr.StreamEnded() || fieldValue(tr, "x-end") != "1" || fieldValue(tr, "x-authproxy-user") != "" {
			t.Fatalf("trailers upstream %v", tr.Fields)
		}
		rt.answered(b, h, 1, []byte("r"), codes.OK)
		rt.wantOpen(0)
	})
}

// Trailers that break the rules reset the stream: pseudo-headers, no
// END_STREAM, or a second end.
func TestRelayRefusesBadTrailers(t *testing.T) {
	for name, tc := range map[string]struct {
		fields []hpack.HeaderField
		end    bool
		code   http2.ErrCode
	}{
		"pseudo":        {pairs(":path", "/x"), true, http2.ErrCodeProtocol},
		"no end":        {pairs("x-a", "1"), false, http2.ErrCodeProtocol},
		"after the end": {pairs("x-a", "1"), true, http2.ErrCodeStreamClosed},
	} {
		t.Run(name, func(t *testing.T) {
			runRelay(t, func(rt *relayTester) {
				rt.headers(1, false, request())
				if tc.code == http2.ErrCodeStreamClosed {
					rt.data(1, true, frame(0, []byte("a")))
				} else {
					rt.data(1, false, frame(0, []byte("a")))
				}
				b := rt.backend()
				b.wantHeaders()
				b.wantData(tc.code == http2.ErrCodeStreamClosed, frame(0, []byte("a")))
				rt.headers(1, tc.end, tc.fields)
				rt.wantRST(1, tc.code)
				b.wantRST(http2.ErrCodeCancel)
				rt.wantOpen(0)
				rt.wantObserved(codes.Canceled)
			})
		})
	}
}

// DATA after the client ended its side resets the stream (STREAM_CLOSED),
// upstream too.
func TestRelayRefusesDataAfterTheEnd(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		b, _ := rt.forwarded(nil, 1, []byte("a"))
		rt.data(1, false, []byte("more"))
		rt.wantRST(1, http2.ErrCodeStreamClosed)
		b.wantRST(http2.ErrCodeCancel)
		rt.wantOpen(0)
	})
}

// open → closed by the client's RST_STREAM: canceled upstream, counted once.
func TestRelayClientReset(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		rt.headers(1, false, request())
		b := rt.backend()
		h := b.wantHeaders()
		rt.must(rt.fr.WriteRSTStream(1, http2.ErrCodeCancel))
		b.wantRST(http2.ErrCodeCancel)
		rt.wantOpen(0)
		// The backend's late answer goes nowhere.
		b.answer(h.StreamID, []byte("late"), codes.OK)
		rt.quiet()
		rt.wantObserved(codes.Canceled)
	})
}

// open → closed by the backend's RST_STREAM: the client gets its code.
func TestRelayBackendReset(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		rt.headers(1, false, request())
		b := rt.backend()
		h := b.wantHeaders()
		b.must(b.fr.WriteRSTStream(h.StreamID, http2.ErrCodeRefusedStream))
		rt.wantRST(1, http2.ErrCodeRefusedStream)
		rt.wantOpen(0)
		rt.wantObserved(codes.Canceled)
		// Once the client was reset, more from the client is a closed stream's.
		rt.data(1, true, nil)
		rt.wantRST(1, http2.ErrCodeStreamClosed)
	})
}

// A reply message over MaxSendMsgSize is refused as grpc-go refuses it:
// the whole messages before it pass, the call is canceled upstream, and
// the client gets trailers after the headers it had.
func TestRelayRefusesAReplyOverTheLimit(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		b, h := rt.forwarded(nil, 1, []byte("q"))
		b.headers(h.StreamID, false, pairs(":status", "200", "content-type", "application/grpc"))
		big := append(frame(0, []byte("ok")), frame(0, make([]byte, 2000))...)
		b.must(b.fr.WriteData(h.StreamID, false, big[:1000]))
		if f, ok := rt.next().(*http2.MetaHeadersFrame); !ok || f.StreamEnded() {
			t.Fatalf("want response headers, got %v", f)
		}
		if d, ok := rt.next().(*http2.DataFrame); !ok || !bytes.Equal(d.Data(), frame(0, []byte("ok"))) {
			t.Fatalf("want the whole message before, got %v", d)
		}
		b.wantRST(http2.ErrCodeCancel)
		tr, ok := rt.next().(*http2.MetaHeadersFrame)
		if !ok || !tr.StreamEnded() || fieldValue(tr, "grpc-status") != "8" || fieldValue(tr, ":status") != "" {
			t.Fatalf("want trailers ResourceExhausted, got %v", tr)
		}
		if msg := fieldValue(tr, "grpc-message"); !strings.Contains(msg, "larger than max (2000 vs. 1024)") {
			t.Fatalf("message %q", msg)
		}
		rt.wantOpen(0)
		rt.wantObserved(codes.ResourceExhausted)
	})
}

// A request message over MaxRecvMsgSize: canceled upstream, refused as
// grpc-go refuses it.
func TestRelayRefusesARequestOverTheLimit(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		b, _ := rt.streaming(nil, 1, []byte("a"))
		rt.data(1, false, frame(0, make([]byte, 1025))[:100])
		b.wantRST(http2.ErrCodeCancel)
		if msg := rt.wantStatus(1, codes.ResourceExhausted); msg != tooLarge(1025, 1<<10) {
			t.Fatalf("message %q", msg)
		}
		rt.wantObserved(codes.ResourceExhausted)
	})
}

// The calls the relay refuses on their HEADERS, before dialling anything.
func TestRelayRefusesOnHeaders(t *testing.T) {
	for name, tc := range map[string]struct {
		fields []hpack.HeaderField
		code   codes.Code
		msg    string
	}{
		"not gRPC":         {pairs(":method", "GET", ":scheme", "http", ":path", "/", ":authority", "x"), codes.Unimplemented, "authproxy: not a gRPC request"},
		"malformed method": {append(pairs(":method", "POST", ":scheme", "http", ":path", "/a/b/c", ":authority", "x"), pairs("content-type", "application/grpc")...), codes.Unimplemented, `malformed method name: "/a/b/c"`},
		"headers too long": {request("x-big", strings.Repeat("a", maxHeaderListSize)), codes.ResourceExhausted, "authproxy: request headers over the limit"},
	} {
		t.Run(name, func(t *testing.T) {
			runRelay(t, func(rt *relayTester) {
				rt.headers(1, true, tc.fields)
				if got := rt.wantStatus(1, tc.code); got != encodeGrpcMessage(tc.msg) {
					t.Fatalf("message %q, want %q", got, tc.msg)
				}
				rt.noDial()
				rt.wantOpen(0)
				rt.wantObserved(tc.code)
			})
		})
	}
}

// A request that is not gRPC with headers over the limit, on a port that
// serves REST: 431, as an HTTP server answers.
func TestRelayRESTHeadersTooLong(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		rt.r.rest = func(conn, client net.Conn) { t.Error("REST was dialled") }
		rt.headers(1, true, pairs(":method", "GET", ":scheme", "http", ":path", "/v2/x", ":authority", "x", "x-big", strings.Repeat("a", maxHeaderListSize)))
		h, ok := rt.next().(*http2.MetaHeadersFrame)
		if !ok || !h.StreamEnded() || h.PseudoValue("status") != "431" {
			t.Fatalf("want 431, got %v %v", h, h.Fields)
		}
		rt.wantOpen(0)
		rt.wantObserved() // REST counts its own
	})
}

// Header blocks HTTP/2 calls malformed reset the stream with
// PROTOCOL_ERROR (RFC 9113 8.1.1), and the connection goes on.
func TestRelayRefusesMalformedHeaders(t *testing.T) {
	for name, fields := range map[string][]hpack.HeaderField{
		"no scheme":             pairs(":method", "POST", ":path", testMethod),
		"no method":             pairs(":scheme", "http", ":path", testMethod),
		"unknown pseudo":        append(request(), hpack.HeaderField{Name: ":x", Value: "1"}),
		"connection-specific":   request("connection", "keep-alive"),
		"te other than trailer": request("te", "gzip"),
		"bad content-length":    request("content-length", "x"),
		"two content-lengths":   request("content-length", "1", "content-length", "2"),
		"upper-case name":       request("X-Upper", "1"),
	} {
		t.Run(name, func(t *testing.T) {
			runRelay(t, func(rt *relayTester) {
				rt.headers(1, false, fields)
				rt.wantRST(1, http2.ErrCodeProtocol)
				rt.wantOpen(0)
				// The connection goes on.
				rt.call(3, []byte("q"))
				b := rt.backend()
				h := b.wantHeaders()
				b.wantData(true, frame(0, []byte("q")))
				rt.answered(b, h, 3, nil, codes.OK)
			})
		})
	}
}

// A body that does not match its content-length resets the stream.
func TestRelayChecksContentLength(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		rt.headers(1, true, request("content-length", "5"))
		rt.wantRST(1, http2.ErrCodeProtocol)
		rt.headers(3, false, request("content-length", "5"))
		b := rt.backend()
		b.wantHeaders()
		rt.data(3, true, []byte("abc"))
		rt.wantRST(3, http2.ErrCodeProtocol)
		b.wantRST(http2.ErrCodeCancel)
		rt.headers(5, false, request("content-length", "2"))
		b.wantHeaders()
		rt.data(5, false, []byte("abc"))
		rt.wantRST(5, http2.ErrCodeProtocol)
		b.wantRST(http2.ErrCodeCancel)
		rt.wantOpen(0)
	})
}

// Priority that names its own stream resets it (RFC 9113 5.3.1).
func TestRelayRefusesSelfDependency(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		rt.must(rt.fr.WritePriority(1, http2.PriorityParam{StreamDep: 1}))
		rt.wantRST(1, http2.ErrCodeProtocol)
		rt.must(rt.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: encode(rt.henc, &rt.hbuf, request()),
			EndHeaders: true, Priority: http2.PriorityParam{StreamDep: 3, Weight: 1}}))
		rt.wantRST(3, http2.ErrCodeProtocol)
		rt.noDial()
	})
}

// Frames that break the connection's rules end it with GOAWAY.
func TestRelayConnectionErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		send  func(rt *relayTester)
		code  http2.ErrCode
		debug string
	}{
		"DATA on an idle stream": {func(rt *relayTester) { rt.data(1, true, []byte("x")) }, http2.ErrCodeProtocol, ""},
		"RST on an idle stream":  {func(rt *relayTester) { rt.must(rt.fr.WriteRSTStream(1, http2.ErrCodeCancel)) }, http2.ErrCodeProtocol, ""},
		"WINDOW_UPDATE idle":     {func(rt *relayTester) { rt.must(rt.fr.WriteWindowUpdate(1, 1)) }, http2.ErrCodeProtocol, ""},
		"even stream":            {func(rt *relayTester) { rt.headers(2, true, request()) }, http2.ErrCodeProtocol, ""},
		"stream ID reused":       {func(rt *relayTester) { rt.headers(3, true, request()); rt.headers(1, true, request()) }, http2.ErrCodeStreamClosed, ""},
		"PUSH_PROMISE": {func(rt *relayTester) {
			rt.must(rt.fr.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, EndHeaders: true}))
		}, http2.ErrCodeProtocol, ""},
		"frame over the max size":    {func(rt *relayTester) { rt.headers(1, false, request()); rt.data(1, false, make([]byte, frameSize+1)) }, http2.ErrCodeFrameSize, ""},
		"connection window overflow": {func(rt *relayTester) { rt.must(rt.fr.WriteWindowUpdate(0, maxWindow)) }, http2.ErrCodeFlowControl, ""},
		"bad SETTINGS": {func(rt *relayTester) {
			rt.must(rt.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 31}))
		}, http2.ErrCodeFlowControl, ""},
		"too many resets": {func(rt *relayTester) {
			rt.headers(1, true, pairs(":method", "GET")) // reset at once (malformed)
			rt.wantRST(1, http2.ErrCodeProtocol)
			for range edge.FrameBurst + 1 {
				rt.must(rt.fr.WriteRSTStream(1, http2.ErrCodeCancel))
			}
		}, http2.ErrCodeEnhanceYourCalm, "too many stream resets"},
		"too many empty frames": {func(rt *relayTester) {
			for range edge.FrameBurst + 1 {
				rt.must(rt.fr.WritePriority(1, http2.PriorityParam{StreamDep: 0, Weight: 1}))
			}
		}, http2.ErrCodeEnhanceYourCalm, "too many frames that carry nothing"},
		"too many pings": {func(rt *relayTester) {
			for i := range edge.PingStrikes + 1 {
				rt.must(rt.fr.WritePing(false, [8]byte{byte(i)}))
				if p, ok := rt.next().(*http2.PingFrame); !ok || !p.IsAck() {
					rt.t.Fatalf("want a PING ACK, got %v", p)
				}
			}
			rt.must(rt.fr.WritePing(false, [8]byte{9}))
		}, http2.ErrCodeEnhanceYourCalm, "too_many_pings"},
	} {
		t.Run(name, func(t *testing.T) {
			runRelay(t, func(rt *relayTester) {
				tc.send(rt)
				rt.wantGoAway(tc.code, tc.debug)
			})
		})
	}
}

// Pings far enough apart, or with calls between them, are no strikes.
func TestRelayAllowsPings(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		// A first request ends the preface timeout.
		rt.headers(1, true, pairs(":method", "GET"))
		rt.wantRST(1, http2.ErrCodeProtocol)
		for i := range 2 * edge.PingStrikes {
			rt.must(rt.fr.WritePing(false, [8]byte{byte(i)}))
			if p, ok := rt.next().(*http2.PingFrame); !ok || !p.IsAck() || p.Data[0] != byte(i) {
				t.Fatalf("want a PING ACK, got %v", p)
			}
			time.Sleep(edge.PingMinInterval)
		}
		rt.quiet()
	})
}

// A stream window update past 2^31-1 resets the stream (RFC 9113 6.9.1).
func TestRelayStreamWindowOverflow(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		rt.headers(1, false, request())
		b := rt.backend()
		b.wantHeaders()
		rt.must(rt.fr.WriteWindowUpdate(1, maxWindow))
		rt.wantRST(1, http2.ErrCodeFlowControl)
		b.wantRST(http2.ErrCodeCancel)
		rt.wantOpen(0)
	})
}

// A client that sends past the stream window the relay advertised (the
// backend reads nothing, so nothing is refunded) has the stream reset.
func TestRelayStreamWindowEnforced(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		rt.headers(1, false, request())
		b := rt.backend()
		b.wantHeaders()
		chunk := make([]byte, frameSize)
		for range streamWindow / frameSize {
			rt.data(1, false, chunk)
		}
		rt.quiet()
		rt.data(1, false, []byte{0})
		rt.wantRST(1, http2.ErrCodeFlowControl)
		rt.wantOpen(0)
	})
}

// The reply waits for the client's window and leaves as it grows: by
// WINDOW_UPDATE, and by a larger SETTINGS_INITIAL_WINDOW_SIZE; the
// trailers follow the last byte, and only then is the stream closed.
func TestRelayReplyWaitsForTheClientsWindow(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		rt.must(rt.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 4}))
		if f := rt.next().(*http2.SettingsFrame); !f.IsAck() {
			t.Fatal("no SETTINGS ACK")
		}
		b, h := rt.forwarded(nil, 1, []byte("q"))
		b.answer(h.StreamID, []byte("0123456789"), codes.OK)
		if f, ok := rt.next().(*http2.MetaHeadersFrame); !ok || f.StreamEnded() {
			t.Fatalf("want headers, got %v", f)
		}
		msg := frame(0, []byte("0123456789"))
		got := rt.next().(*http2.DataFrame).Data()
		if !bytes.Equal(got, msg[:4]) {
			t.Fatalf("first DATA %q", got)
		}
		rt.quiet()
		rt.wantOpen(1) // the end waits
		rt.must(rt.fr.WriteWindowUpdate(1, 3))
		if got := rt.next().(*http2.DataFrame).Data(); !bytes.Equal(got, msg[4:7]) {
			t.Fatalf("second DATA %q", got)
		}
		rt.must(rt.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1000}))
		var rest []byte
		for {
			f := rt.next()
			if d, ok := f.(*http2.DataFrame); ok {
				rest = append(rest, d.Data()...)
				continue
			}
			if s, ok := f.(*http2.SettingsFrame); ok && s.IsAck() {
				continue
			}
			if tr, ok := f.(*http2.MetaHeadersFrame); !ok || !tr.StreamEnded() {
				t.Fatalf("want trailers, got %v", f)
			}
			break
		}
		if !bytes.Equal(rest, msg[7:]) {
			t.Fatalf("rest %q", rest)
		}
		rt.wantOpen(0)
	})
}

// What the client sends waits for the backend's window (65535 here) and
// leaves as it grows.
func TestRelayRequestWaitsForTheBackendsWindow(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		rt.headers(1, false, request())
		b := rt.backend()
		h := b.wantHeaders()
		body := frame(0, bytes.Repeat([]byte("0123456789abcdef"), 70000/16))
		for rest := body; len(rest) > 0; {
			n := min(len(rest), frameSize)
			rt.data(1, n == len(rest), rest[:n])
			rest = rest[n:]
		}
		var got []byte
		for len(got) < 65535 {
			got = append(got, b.read().(*http2.DataFrame).Data()...)
		}
		b.quiet()
		b.must(b.fr.WriteWindowUpdate(0, 10000))
		b.must(b.fr.WriteWindowUpdate(h.StreamID, 10000))
		for {
			d := b.read().(*http2.DataFrame)
			got = append(got, d.Data()...)
			if d.StreamEnded() {
				break
			}
		}
		if !bytes.Equal(got, body) {
			t.Fatalf("the backend got %d bytes, want %d", len(got), len(body))
		}
	}, func(o *Options) { o.MaxRecvMsgSize = 1 << 20 })
}

// backend unreachable: the call is refused Unavailable, naming it.
func TestRelayBackendUnreachable(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		rt.dialErr = errors.New("connection refused")
		rt.call(1, []byte("q"))
		msg := rt.wantStatus(1, codes.Unavailable)
		if want := encodeGrpcMessage("authproxy: backend backend.test:19530 unavailable: connection refused"); msg != want {
			t.Fatalf("message %q, want %q", msg, want)
		}
		rt.wantOpen(0)
		rt.wantObserved(codes.Unavailable)
	})
}

// The backend's connection fails: its calls end Unavailable, and the next
// call dials again.
func TestRelayBackendGone(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		rt.headers(1, false, request())
		b := rt.backend()
		b.wantHeaders()
		b.conn.Close()
		if msg := rt.wantStatus(1, codes.Unavailable); !strings.Contains(msg, "unavailable") {
			t.Fatalf("message %q", msg)
		}
		rt.wantOpen(1) // half-closed (local): the client may still send
		rt.data(1, true, frame(0, []byte("q")))
		rt.wantOpen(0)
		b2, h := rt.forwarded(nil, 3, []byte("q"))
		rt.answered(b2, h, 3, nil, codes.OK)
	})
}

// The backend's GOAWAY refuses the streams above its last ID, which the
// client may retry; the others finish; new calls go to a new connection.
func TestRelayBackendGoAway(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		rt.headers(1, false, request())
		b := rt.backend()
		h1 := b.wantHeaders()
		rt.headers(3, false, request())
		b.wantHeaders()
		b.must(b.fr.WriteGoAway(h1.StreamID, http2.ErrCodeNo, nil))
		if msg := rt.wantStatus(3, codes.Unavailable); !strings.Contains(msg, "GOAWAY") {
			t.Fatalf("message %q", msg)
		}
		rt.data(1, true, frame(0, []byte("q")))
		b.wantData(true, frame(0, []byte("q")))
		rt.answered(b, h1, 1, nil, codes.OK)
		b2, h := rt.forwarded(nil, 5, []byte("q"))
		rt.answered(b2, h, 5, nil, codes.OK)
		rt.wantObserved(codes.Unavailable, codes.OK, codes.OK)
	})
}

// A backend that allows one stream at a time gets a second connection
// for a second call.
func TestRelayBackendMaxStreams(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		rt.headers(1, false, request())
		p := <-rt.dials
		p.handshake(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 1})
		p.wantHeaders()
		synctest.Wait() // the relay read the backend's SETTINGS
		rt.headers(3, false, request())
		p2 := rt.backend()
		p2.wantHeaders()
		p.quiet()
	})
}

// Preface: a client that sends none in time, or a wrong one, is closed
// without a word.
func TestRelayPreface(t *testing.T) {
	t.Run("timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rt := newRelayTester(t)
			time.Sleep(prefaceTimeout - time.Second)
			rt.wantOpenConns(1)
			time.Sleep(2 * time.Second)
			rt.wantClosed()
		})
	})
	t.Run("first request timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rt := newRelayTester(t)
			rt.handshake()
			time.Sleep(prefaceTimeout)
			rt.wantClosed()
		})
	})
	t.Run("wrong", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rt := newRelayTester(t)
			rt.conn.Write([]byte(strings.Repeat("x", len(http2.ClientPreface))))
			rt.wantClosed()
		})
	})
}

// After GOAWAY (graceful stop), new streams are refused and the connection
// closes once the open ones are done.
func TestRelayGoAwayRefusesNewStreams(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		rt.headers(1, false, request())
		b := rt.backend()
		h := b.wantHeaders()
		stopped := make(chan struct{})
		go func() {
			rt.r.GracefulStop(context.Background())
			close(stopped)
		}()
		if f, ok := rt.next().(*http2.GoAwayFrame); !ok || f.ErrCode != http2.ErrCodeNo {
			t.Fatalf("want GOAWAY, got %v", f)
		}
		rt.headers(3, true, request())
		rt.wantRST(3, http2.ErrCodeRefusedStream)
		rt.data(1, true, frame(0, []byte("q")))
		b.wantData(true, frame(0, []byte("q")))
		rt.answered(b, h, 1, nil, codes.OK)
		rt.wantClosed()
		<-stopped
	})
}

// authentication ---------------------------------------------------------

// idle → refused: a call without credentials is answered Unauthenticated
// on its HEADERS, and nothing is dialled.
func TestRelayRefusesUnauthenticated(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		rt.call(1, []byte("q"))
		if msg := rt.wantStatus(1, codes.Unauthenticated); msg != encodeGrpcMessage(auth.MsgMissing) {
			t.Fatalf("message %q", msg)
		}
		rt.noDial()
		rt.quiet()
		rt.wantOpen(0)
		rt.wantObserved(codes.Unauthenticated)
	}, withAuthn(t))
}

// idle → authenticating → forwarding: a check that hashes runs off the
// reader; what the client sent meanwhile follows the HEADERS upstream,
// which carry the identity.
func TestRelayAuthenticatesOffTheReader(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		rt.call(1, []byte("q"), "authorization", token("alice", "pw"))
		b := rt.backend()
		h := b.wantHeaders()
		if fieldValue(h, "x-authproxy-user") != "alice" || fieldValue(h, "authorization") != "" {
			t.Fatalf("upstream headers %v", h.Fields)
		}
		b.wantData(true, frame(0, []byte("q")))
		rt.answered(b, h, 1, nil, codes.OK)
		// Cached now: decided on the reader.
		rt.call(3, []byte("q"), "authorization", token("alice", "pw"))
		h = b.wantHeaders()
		b.wantData(true, frame(0, []byte("q")))
		rt.answered(b, h, 3, nil, codes.OK)
		rt.wantOpen(0)
	}, withAuthn(t))
}

// authenticating → refused: a wrong password is refused after the check,
// and the DATA held meanwhile goes nowhere.
func TestRelayRefusesAWrongPassword(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		rt.call(1, []byte("q"), "authorization", token("alice", "nope"))
		if msg := rt.wantStatus(1, codes.Unauthenticated); msg != encodeGrpcMessage(auth.MsgBadPassword) {
			t.Fatalf("message %q", msg)
		}
		rt.noDial()
		rt.wantOpen(0)
		rt.wantObserved(codes.Unauthenticated)
	}, withAuthn(t))
}

// A password too long to hash is refused after a hash's time: meanwhile
// the stream is authenticating, and what the client does then is held or
// answered without the check.
func TestRelayWhileAuthenticating(t *testing.T) {
	slow := token("alice", strings.Repeat("x", 2000))
	t.Run("client reset", func(t *testing.T) {
		runRelay(t, func(rt *relayTester) {
			rt.headers(1, false, request("authorization", slow))
			rt.data(1, false, frame(0, []byte("q")))
			rt.must(rt.fr.WriteRSTStream(1, http2.ErrCodeCancel))
			rt.wantOpen(0)
			time.Sleep(time.Second) // the check ends: nothing to say
			rt.quiet()
			rt.noDial()
			rt.wantObserved(codes.Canceled)
		}, withAuthn(t))
	})
	t.Run("trailers", func(t *testing.T) {
		runRelay(t, func(rt *relayTester) {
			rt.headers(1, false, request("authorization", slow))
			rt.headers(1, true, pairs("x-a", "1"))
			rt.wantRST(1, http2.ErrCodeRefusedStream)
			time.Sleep(time.Second)
			rt.quiet()
			rt.noDial()
		}, withAuthn(t))
	})
	t.Run("window", func(t *testing.T) {
		runRelay(t, func(rt *relayTester) {
			rt.headers(1, false, request("authorization", slow))
			// Held unrefunded: the stream window bounds it.
			chunk := make([]byte, frameSize)
			for range streamWindow / frameSize {
				rt.data(1, false, chunk)
			}
			rt.data(1, false, []byte{0})
			rt.wantRST(1, http2.ErrCodeFlowControl)
			time.Sleep(time.Second)
			rt.quiet()
			rt.noDial()
		}, withAuthn(t))
	})
}

// authorization ----------------------------------------------------------

// search is a Search request message on collection in db1, then a
// dsl of n bytes (a field after those the decision reads).
func search(t *testing.T, collection string, n int) []byte {
	b, err := proto.Marshal(&milvuspb.SearchRequest{DbName: "db1", CollectionName: collection, Dsl: strings.Repeat("x", n)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// deciding opens a Search as alice, and waits for its check that hashes
// to end: the stream then waits for its first message.
func (rt *relayTester) deciding(id uint32) {
	rt.headers(id, false, request("authorization", token("alice", "pw")))
	synctest.Wait()
}

// admitting → authenticating → deciding → forwarding: the first message
// is gathered until the fields the decision reads (the database and the
// collection) are whole; then HEADERS and what was gathered go upstream,
// and the rest of the message streams through.
func TestRelayDecidesOnTheFirstMessage(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		msg := frame(0, search(t, "books", 100))
		rt.deciding(1)
		rt.data(1, false, msg[:10])
		rt.quiet()
		rt.noDial() // the collection's name is not whole yet
		rt.data(1, false, msg[10:30])
		b := rt.backend()
		h := b.wantHeaders()
		if fieldValue(h, "x-authproxy-user") != "alice" {
			t.Fatalf("upstream headers %v", h.Fields)
		}
		b.wantData(false, msg[:30])
		rt.data(1, true, msg[30:])
		b.wantData(true, msg[30:])
		rt.answered(b, h, 1, nil, codes.OK)
		// admitting → deciding → forwarding: cached now, the credential is
		// checked on the reader.
		_, h = rt.forwarded(b, 3, search(t, "books", 1), "authorization", token("alice", "pw"))
		rt.answered(b, h, 3, nil, codes.OK)
	}, withAdmission(t, true))
}

// deciding → refused: the decision refuses; nothing was dialled, and what
// the client sends after is dropped.
func TestRelayDecisionRefuses(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		rt.deciding(1)
		rt.data(1, false, frame(0, search(t, "secret", 10)))
		if msg := rt.wantStatus(1, codes.PermissionDenied); !strings.Contains(msg, "Search") {
			t.Fatalf("message %q", msg)
		}
		rt.data(1, true, frame(0, search(t, "books", 10)))
		rt.quiet()
		rt.noDial()
		rt.wantOpen(0)
		rt.wantObserved(codes.PermissionDenied)
	}, withAdmission(t, true))
}

// deciding: a first message over the limit is refused on its length;
// trailers before the decision are refused; a reset ends it.
func TestRelayWhileDeciding(t *testing.T) {
	t.Run("over the limit", func(t *testing.T) {
		runRelay(t, func(rt *relayTester) {
			rt.deciding(1)
			rt.data(1, false, frame(0, make([]byte, 2000))[:10])
			if msg := rt.wantStatus(1, codes.ResourceExhausted); msg != tooLarge(2000, 1<<10) {
				t.Fatalf("message %q", msg)
			}
			rt.noDial()
		}, withAdmission(t, true))
	})
	t.Run("trailers", func(t *testing.T) {
		runRelay(t, func(rt *relayTester) {
			rt.deciding(1)
			rt.headers(1, true, pairs("x-a", "1"))
			rt.wantRST(1, http2.ErrCodeRefusedStream)
			rt.noDial()
			rt.wantOpen(0)
		}, withAdmission(t, true))
	})
	t.Run("client reset", func(t *testing.T) {
		runRelay(t, func(rt *relayTester) {
			rt.deciding(1)
			rt.data(1, false, []byte{0, 0})
			rt.must(rt.fr.WriteRSTStream(1, http2.ErrCodeCancel))
			rt.quiet()
			rt.noDial()
			rt.wantOpen(0)
			rt.wantObserved(codes.Canceled)
		}, withAdmission(t, true))
	})
}

// forwarding: a first message decided on its prefix that names the
// collection again after is refused before that frame goes upstream.
func TestRelayTailCheck(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		body := search(t, "books", 100)
		body = protowire.AppendTag(body, 3, protowire.BytesType)
		body = protowire.AppendBytes(body, []byte("secret"))
		msg := frame(0, body)
		rt.deciding(1)
		rt.data(1, false, msg[:30])
		b := rt.backend()
		b.wantHeaders()
		b.wantData(false, msg[:30])
		rt.data(1, false, msg[30:])
		b.wantRST(http2.ErrCodeCancel)
		rt.wantStatus(1, codes.PermissionDenied)
		rt.wantOpen(1) // half-closed (local)
		rt.must(rt.fr.WriteRSTStream(1, http2.ErrCodeCancel))
		rt.wantOpen(0)
		rt.wantObserved(codes.PermissionDenied)
	}, withAdmission(t, true))
}

// Past maxConcurrentStreams open at once, a new stream is refused
// (REFUSED_STREAM, RFC 9113 5.1.2); the ones open go on.
func TestRelayMaxConcurrentStreams(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		rt.headers(1, false, request())
		b := <-rt.dials
		b.handshake(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 2 * maxConcurrentStreams})
		h := b.wantHeaders()
		synctest.Wait() // the relay read the backend's SETTINGS
		for i := 1; i < maxConcurrentStreams; i++ {
			rt.headers(uint32(2*i+1), false, request())
		}
		last := uint32(2*maxConcurrentStreams + 1)
		rt.headers(last, true, request())
		rt.wantRST(last, http2.ErrCodeRefusedStream)
		rt.wantOpen(maxConcurrentStreams)
		rt.data(1, true, frame(0, nil))
		for range maxConcurrentStreams - 1 {
			b.wantHeaders()
		}
		b.wantData(true, frame(0, nil))
		rt.answered(b, h, 1, nil, codes.OK)
		rt.wantOpen(maxConcurrentStreams - 1)
		if _, err := rt.r.backend.pick(); err != nil {
			t.Fatal(err) // one connection still has room
		}
	})
}

// Small messages are copied into the write buffer, not written in place:
// an iovec each would fill maxSegs within one read, and the messages of
// one read of the client's would leave the relay in several writes.
func TestRelayGathersSmallMessagesIntoOneWrite(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		b, _ := rt.streaming(nil, 1, []byte("first"))
		synctest.Wait()
		before, _ := b.conn.writeCounts()
		msg := frame(0, bytes.Repeat([]byte("m"), 16))
		const n = 3 * maxSegs
		var batch bytes.Buffer
		bf := http2.NewFramer(&batch, nil)
		for range n {
			rt.must(bf.WriteData(1, false, msg))
		}
		if _, err := rt.conn.Write(batch.Bytes()); err != nil {
			t.Fatal(err)
		}
		b.wantData(false, bytes.Repeat(msg, n))
		synctest.Wait()
		// The relay reads smallRead bytes, then the rest at once: two
		// reads, so two writes.
		if after, _ := b.conn.writeCounts(); after-before > 2 {
			rt.t.Fatalf("%d messages of %d bytes, in one write of the client's, forwarded in %d writes, want at most 2", n, len(msg), after-before)
		}
	})
}

// What the relay reads at once from a client leaves for the backend at
// once: the frames of several streams, more than one write buffer holds,
// are gathered into one write (writev on a socket), whole and in order.
func TestRelayGathersAReadIntoOneWrite(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		b, h := rt.forwarded(nil, 1, []byte("first"))
		rt.answered(b, h, 1, []byte("ok"), codes.OK)
		// Room for all of it on the backend's side.
		b.must(b.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20}))
		b.must(b.fr.WriteWindowUpdate(0, 4<<20))
		synctest.Wait()
		before, _ := b.conn.writeCounts()

		// Three calls of 100 KB each, in one write of the client's.
		msgs := map[uint32][]byte{3: bytes.Repeat([]byte("a"), 100<<10), 5: bytes.Repeat([]byte("b"), 100<<10), 7: bytes.Repeat([]byte("c"), 100<<10)}
		var batch bytes.Buffer
		bf := http2.NewFramer(&batch, nil)
		for _, id := range []uint32{3, 5, 7} {
			rt.must(bf.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: encode(rt.henc, &rt.hbuf, request()), EndHeaders: true}))
			for rest := frame(0, msgs[id]); len(rest) > 0; {
				n := min(len(rest), frameSize)
				rt.must(bf.WriteData(id, n == len(rest), rest[:n]))
				rest = rest[n:]
			}
		}
		if _, err := rt.conn.Write(batch.Bytes()); err != nil {
			t.Fatal(err)
		}
		var upstream []uint32
		for _, id := range []uint32{3, 5, 7} {
			h := b.wantHeaders()
			b.wantData(true, frame(0, msgs[id]))
			upstream = append(upstream, h.StreamID)
		}
		// The relay reads smallRead, then up to readSize at once: three reads,
		// so three writes, one of them gathered from several buffers.
		// Counted before the answers: the relay's backend reader flushes
		// what is buffered when it forwards one, and would otherwise race
		// with the client reader for the last write.
		synctest.Wait()
		after, gathered := b.conn.writeCounts()
		for i, id := range []uint32{3, 5, 7} {
			b.answer(upstream[i], []byte("ok"), codes.OK)
			rt.wantReply(id, []byte("ok"), codes.OK)
		}
		if after-before > 3 || gathered == 0 {
			t.Fatalf("%d KB forwarded in %d writes (%d gathered), want at most 3 with one gathered", batch.Len()>>10, after-before, gathered)
		}
	}, func(o *Options) { o.MaxRecvMsgSize = 1 << 20 })
}
