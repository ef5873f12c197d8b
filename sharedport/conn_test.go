package sharedport

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// scriptedConn reads from in and records what is written.
type scriptedConn struct {
	net.Conn
	in  *bytes.Reader
	out bytes.Buffer
}

func (c *scriptedConn) Read(p []byte) (int, error)  { return c.in.Read(p) }
func (c *scriptedConn) Write(p []byte) (int, error) { return c.out.Write(p) }

// describe lists the frames in b (after the preface, if any).
func describe(t *testing.T, b []byte) string {
	t.Helper()
	b = bytes.TrimPrefix(b, []byte(http2.ClientPreface))
	return strings.Join(written(t, b), "; ")
}

// The server a sniffed connection goes to reads the start with the PINGs
// taken out and the SETTINGS merged into one (the last value of each
// parameter), right after the preface; the first request reaches it only
// once it has acknowledged those SETTINGS, and that ACK and (for REST) its
// own SETTINGS are not written, for the sniffer sent them already.
func TestAnsweredConnHidesTheSniffersAnswers(t *testing.T) {
	in := clientBytes(t, func(f *http2.Framer) {
		_ = f.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1})
		_ = f.WritePing(false, [8]byte{7})
		_ = f.WriteSettingsAck() // of the sniffer's SETTINGS
		_ = f.WriteWindowUpdate(0, 1000)
		_ = f.WriteSettings(http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 5})
		_ = f.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: headerBlock(":method", "GET"), EndHeaders: true})
		_ = f.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 9}) // after the first request: untouched
	})
	// What a server writes: its SETTINGS, a WINDOW_UPDATE, the ACK of the
	// merged SETTINGS, a response, the ACK of the later SETTINGS.
	var server bytes.Buffer
	sf := http2.NewFramer(&server, nil)
	_ = sf.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 250})
	_ = sf.WriteWindowUpdate(0, 1<<20)
	_ = sf.WriteSettingsAck()
	_ = sf.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: headerBlock(":status", "200"), EndHeaders: true, EndStream: true})
	_ = sf.WriteSettingsAck()

	for _, spoke := range []bool{true, false} {
		conn := &scriptedConn{in: bytes.NewReader(in)}
		c := &answeredConn{Conn: conn, spokeForServer: spoke}

		// Read: the start, then (once acknowledged) the request.
		start := make([]byte, 4096)
		n, err := c.Read(start)
		must(t, err)
		wantStart := "SETTINGS ack=false [[INITIAL_WINDOW_SIZE = 5] [HEADER_TABLE_SIZE = 0]]; SETTINGS ack=true []; [FrameHeader WINDOW_UPDATE len=4]"
		if got := describe(t, start[:n]); !bytes.HasPrefix(start[:n], []byte(http2.ClientPreface)) || got != wantStart {
			t.Fatalf("the server read first\n%s\nwant the preface and\n%s", got, wantStart)
		}
		request := make(chan []byte)
		go func() {
			b := make([]byte, 4096)
			n, _ := c.Read(b)
			request <- b[:n]
		}()
		select {
		case <-request:
			t.Fatal("the first request reached the server before it acknowledged the SETTINGS")
		case <-time.After(100 * time.Millisecond):
		}
		// The server's writes, split everywhere, frame headers included.
		for _, b := range server.Bytes() {
			if _, err := c.Write([]byte{b}); err != nil {
				t.Fatal(err)
			}
		}
		if got := <-request; http2.FrameType(got[3]) != http2.FrameHeaders {
			t.Fatalf("after the ACK the server read %x, want the HEADERS frame", got)
		}
		want := "[FrameHeader WINDOW_UPDATE len=4]; [FrameHeader HEADERS flags=END_STREAM|END_HEADERS stream=1 len=1]; SETTINGS ack=true []"
		if !spoke {
			want = "SETTINGS ack=false [[MAX_CONCURRENT_STREAMS = 250]]; " + want
		}
		if got := describe(t, conn.out.Bytes()); got != want {
			t.Fatalf("spokeForServer=%t: the client got\n%s\nwant\n%s", spoke, got, want)
		}
		if !c.plainOut.Load() {
			t.Fatal("writes are still parsed after the answers were dropped")
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
