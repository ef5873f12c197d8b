package relay

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/authproxy/authproxy/edge"
)

// localMethod is one the in-process server answers.
const localMethod = "/authproxy.Admin/Whoami"

// withLocal sends localMethod to the in-process server (after withAdmission).
func withLocal() func(*Options) {
	return func(o *Options) {
		o.Admitter.SetLocal(func(m string) bool { return m == localMethod })
	}
}

// The proxy's own methods go to the in-process server with the client's
// address and the identity the relay established, without a decision.
func TestRelayLocalCall(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		locals := make(chan *backendPeer, 1)
		rt.r.local.dial = func(context.Context) (net.Conn, error) {
			a, b := memPipe()
			locals <- newBackendPeer(t, b)
			return a, nil
		}
		fields := request("authorization", token("nobody", "pw"))
		fields[2].Value = localMethod
		rt.headers(3, false, fields)
		rt.data(3, true, frame(0, nil))
		p := <-locals
		p.handshake()
		h := p.wantHeaders()
		if fieldValue(h, edge.PeerKey) != "192.0.2.1:5000" || fieldValue(h, edge.RelayedIdentityKey) == "" || fieldValue(h, "x-authproxy-user") != "" {
			t.Fatalf("in-process headers %v", h.Fields)
		}
		p.wantData(true, frame(0, nil))
		rt.answered(p, h, 3, []byte("nobody"), codes.OK)
		rt.noDial()
	}, withAdmission(t, true), withLocal())
}

// showCollections has alice list the collections of db1, and the backend
// answer with its response headers, then reply (which names books and
// secret) cut after n bytes, then its trailers. It returns the reply.
func (rt *relayTester) showCollections(n int) []byte {
	rt.t.Helper()
	req, err := proto.Marshal(&milvuspb.ShowCollectionsRequest{DbName: "db1"})
	rt.must(err)
	rep, err := proto.Marshal(&milvuspb.ShowCollectionsResponse{CollectionNames: []string{"books", "secret"}, CollectionIds: []int64{1, 2}})
	rt.must(err)
	fields := request("authorization", token("alice", "pw"))
	fields[2].Value = "/milvus.proto.milvus.MilvusService/ShowCollections"
	rt.headers(1, false, fields)
	rt.data(1, true, frame(0, req))
	b := rt.backend()
	h := b.wantHeaders()
	b.wantData(true, frame(0, req))
	b.headers(h.StreamID, false, pairs(":status", "200", "content-type", "application/grpc"))
	reply := frame(0, rep)
	reply = reply[:min(n, len(reply))]
	b.must(b.fr.WriteData(h.StreamID, false, reply[:7])) // across DATA frames
	b.must(b.fr.WriteData(h.StreamID, false, reply[7:]))
	b.headers(h.StreamID, true, pairs("grpc-status", "0"))
	if f, ok := rt.next().(*http2.MetaHeadersFrame); !ok || f.StreamEnded() {
		rt.t.Fatalf("want headers, got %v", f)
	}
	return reply
}

// A reply the caller may only partly see is gathered, filtered message by
// message, and sent before the trailers.
func TestRelayFiltersAReply(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		rt.showCollections(1 << 20) // whole
		d, ok := rt.next().(*http2.DataFrame)
		if !ok || len(d.Data()) < 5 {
			t.Fatalf("want the filtered reply, got %v", d)
		}
		var got milvuspb.ShowCollectionsResponse
		if err := proto.Unmarshal(d.Data()[5:], &got); err != nil || len(got.CollectionNames) != 1 || got.CollectionNames[0] != "books" {
			t.Fatalf("filtered reply %v %v", got.CollectionNames, err)
		}
		rt.wantStatus(1, codes.OK)
		rt.wantOpen(0)
	}, withAdmission(t, true))
}

// A reply the filter cannot read is refused Internal.
func TestRelayFilterFails(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		rt.showCollections(9) // truncated
		tr, ok := rt.next().(*http2.MetaHeadersFrame)
		if !ok || !tr.StreamEnded() || fieldValue(tr, "grpc-status") != "13" || !strings.Contains(fieldValue(tr, "grpc-message"), "truncated") {
			t.Fatalf("want trailers Internal, got %v", tr)
		}
		rt.wantObserved(codes.Internal)
	}, withAdmission(t, true))
}

// Padding is not forwarded; the backend's is refunded as it arrives.
func TestRelayRefundsPadding(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		rt.headers(1, false, request())
		b := rt.backend()
		h := b.wantHeaders()
		rt.must(rt.fr.WriteDataPadded(1, true, frame(0, []byte("q")), make([]byte, 255)))
		b.wantData(true, frame(0, []byte("q")))
		b.headers(h.StreamID, false, pairs(":status", "200", "content-type", "application/grpc"))
		b.must(b.fr.WriteDataPadded(h.StreamID, false, frame(0, []byte("r")), make([]byte, 10)))
		for {
			f, err := b.fr.ReadFrame()
			b.must(err)
			if wu, ok := f.(*http2.WindowUpdateFrame); ok && wu.StreamID == h.StreamID && wu.Increment == 11 {
				break // the padding and its length byte
			}
		}
	})
}

// The backend's PING is answered, and a change of its initial window
// applies to the streams open on it.
func TestRelayBackendPingAndSettings(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		rt.headers(1, false, request())
		b := rt.backend()
		h := b.wantHeaders()
		b.must(b.fr.WritePing(false, [8]byte{7}))
		if p, ok := b.read().(*http2.PingFrame); !ok || !p.IsAck() || p.Data[0] != 7 {
			t.Fatalf("want a PING ACK, got %v", p)
		}
		b.must(b.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 3}))
		synctest.Wait() // the relay read them
		rt.data(1, true, frame(0, []byte("q")))
		d := b.read().(*http2.DataFrame)
		if len(d.Data()) != 3 {
			t.Fatalf("want 3 bytes in the smaller window, got %d", len(d.Data()))
		}
		b.quiet()
		b.must(b.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100}))
		b.wantData(true, frame(0, []byte("q"))[3:])
		rt.answered(b, h, 1, nil, codes.OK)
	})
}

// A request that is not gRPC goes to REST as it is, over the connection's
// in-memory HTTP/2 connection.
func TestRelayPassesRESTOn(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		peers := make(chan *backendPeer, 1)
		rt.r.rest = func(conn, client net.Conn) {
			// net.Pipe's writes wait for the reader: a buffered memPipe
			// between it and the peer, so that the test may read when it
			// likes.
			a, b := memPipe()
			go func() { _, _ = io.Copy(conn, a); conn.Close() }()
			go func() { _, _ = io.Copy(a, conn); a.Close() }()
			peers <- newBackendPeer(t, b)
		}
		rt.headers(1, false, pairs(":method", "POST", ":scheme", "http", ":path", "/v2/vectordb/collections/list", ":authority", "x",
			"authorization", "Bearer root:Milvus", "content-type", "application/json"))
		p := <-peers
		p.handshake()
		h := p.wantHeaders()
		if fieldValue(h, "authorization") != "Bearer root:Milvus" || fieldValue(h, "te") != "" {
			t.Fatalf("REST got %v", h.Fields)
		}
		rt.data(1, true, []byte("{}"))
		p.wantData(true, []byte("{}"))
		rt.headers(3, true, pairs(":method", "GET", ":scheme", "http", ":path", "/healthz", ":authority", "x"))
		h3 := p.wantHeaders()
		p.headers(h3.StreamID, true, pairs(":status", "200"))
		p.headers(h.StreamID, false, pairs(":status", "200", "content-type", "application/json"))
		p.must(p.fr.WriteData(h.StreamID, true, []byte("[]")))
		if f, ok := rt.next().(*http2.MetaHeadersFrame); !ok || f.StreamID != 3 || f.PseudoValue("status") != "200" {
			t.Fatalf("want 200 on 3, got %v", f)
		}
		if f, ok := rt.next().(*http2.MetaHeadersFrame); !ok || f.StreamID != 1 {
			t.Fatalf("want headers on 1, got %v", f)
		}
		if d, ok := rt.next().(*http2.DataFrame); !ok || !d.StreamEnded() || string(d.Data()) != "[]" {
			t.Fatalf("want the body, got %v", d)
		}
		rt.wantOpen(0)
		rt.wantObserved() // REST counts its own
	})
}

// memListener hands the test's memPipe ends to ServeHTTP2.
type memListener chan net.Conn

func (l memListener) Accept() (net.Conn, error) {
	c, ok := <-l
	if !ok {
		return nil, net.ErrClosed
	}
	return c, nil
}
func (l memListener) Close() error   { close(l); return nil }
func (l memListener) Addr() net.Addr { return memAddr("relay") }

// ServeHTTP2 serves every connection it accepts until the listener closes;
// GracefulStop whose context ends first stops everything at once.
func TestRelayServeAndStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := newRelayTester(t)
		lis := make(memListener)
		served := make(chan error)
		go func() { served <- rt.r.ServeHTTP2(lis, nil) }()
		client, server := memPipe()
		lis <- server
		rt.conn, rt.fr = client, http2.NewFramer(client, client)
		rt.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		rt.handshake()
		rt.headers(1, false, request())
		b := rt.backend()
		b.wantHeaders()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		rt.r.GracefulStop(ctx) // the call never ends: stopped at the deadline
		if f, ok := rt.next().(*http2.GoAwayFrame); !ok || f.ErrCode != http2.ErrCodeNo {
			t.Fatalf("want GOAWAY, got %v", f)
		}
		rt.wantClosed()
		lis.Close()
		if err := <-served; err != net.ErrClosed {
			t.Fatalf("ServeHTTP2: %v", err)
		}
		time.Sleep(time.Second) // the GOAWAY's closer polls every 20ms
	})
}

// The relay's own dial: a backend that refuses the connection makes the
// call Unavailable, naming it. Real loopback, so no bubble.
func TestRelayDialsTheBackend(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	rt := newRelayTester(t, func(o *Options) { o.Backend = addr })
	rt.r.backend.dial = rt.realDial
	done := make(chan struct{})
	go func() {
		defer close(done)
		rt.handshake()
		rt.call(1, []byte("q"))
		if msg := rt.wantStatus(1, codes.Unavailable); !strings.Contains(msg, "backend "+addr+" unavailable") {
			t.Errorf("message %q", msg)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("no answer in 10s")
	}
}

// The in-process server's listener hands over what Dial connects, until
// it is closed.
func TestPipeListener(t *testing.T) {
	l := NewPipeListener()
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
	c, err := l.Dial()
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(c); string(got) != "hi" || c.RemoteAddr().Network() != edge.RelayNetwork || l.Addr().String() != edge.RelayNetwork {
		t.Fatalf("read %q from %v", got, c.RemoteAddr())
	}
	l.Close()
	if _, err := l.Dial(); err == nil {
		t.Fatal("dialled a closed listener")
	}
	if _, err := l.Accept(); err != net.ErrClosed {
		t.Fatalf("Accept on a closed listener: %v", err)
	}
}

// A large request is refunded to the client as it leaves for the backend:
// the stream in updates of refundMin, the connection on receipt in
// quarters of its window.
func TestRelayRefundsTheClient(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		rt.headers(1, false, request())
		p := <-rt.dials
		p.handshake(http2.Setting{ID: http2.SettingInitialWindowSize, Val: maxWindow})
		p.must(p.fr.WriteWindowUpdate(0, maxWindow-65535))
		p.wantHeaders()
		const size = 5 << 20
		msg := frame(0, make([]byte, size-5))
		sent := 0
		var streamRefunds, connRefunds int
		for sent < len(msg) {
			// What the windows allow, then the updates the relay sent.
			for budget := streamWindow; budget > 0 && sent < len(msg); {
				n := min(frameSize, len(msg)-sent, budget)
				rt.data(1, sent+n == len(msg), msg[sent:sent+n])
				sent += n
				budget -= n
			}
			synctest.Wait()
			for rt.conn.buffered() > 0 {
				if wu, ok := rt.read().(*http2.WindowUpdateFrame); ok {
					if wu.StreamID == 0 {
						connRefunds += int(wu.Increment)
					} else {
						streamRefunds += int(wu.Increment)
					}
				}
			}
			if sent < len(msg) && streamRefunds <= sent-refundMin {
				t.Fatalf("after %d bytes, only %d refunded on the stream", sent, streamRefunds)
			}
		}
		got := 0
		for got < len(msg) {
			got += len(p.read().(*http2.DataFrame).Data())
		}
		if connRefunds < size-connWindow/4 || streamRefunds < size-streamWindow {
			t.Fatalf("refunds: connection %d, stream %d, of %d", connRefunds, streamRefunds, size)
		}
	}, func(o *Options) { o.MaxRecvMsgSize = 8 << 20 })
}

// REST that cannot be reached: the stream is reset INTERNAL_ERROR.
func TestRelayRESTUnreachable(t *testing.T) {
	runRelay(t, func(rt *relayTester) {
		rt.r.rest = func(conn, client net.Conn) { conn.Close() }
		rt.headers(1, true, pairs(":method", "GET", ":scheme", "http", ":path", "/healthz", ":authority", "x"))
		rt.wantRST(1, http2.ErrCodeInternal)
		rt.wantOpen(0)
	})
}
