package sharedport

import (
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/authproxy/authproxy/edge"
)

// A client that resets streams as fast as it opens them gets GOAWAY
// ENHANCE_YOUR_CALM naming the last stream it opened, then the connection
// closes; one that resets a few streams does not.
func TestGuardAnswersRapidResetWithGoAway(t *testing.T) {
	for _, c := range []struct {
		resets int
		goAway bool
	}{{resets: 50, goAway: false}, {resets: 5000, goAway: true}} {
		server, client := net.Pipe()
		g := &guardConn{Conn: server, resets: edge.NewFrameBudget()}
		// The server side reads everything, as grpc-go's reader does, and
		// writes a frame now and then, as its writer does.
		go func() { _, _ = io.Copy(io.Discard, g) }()
		fr := http2.NewFramer(client, client)
		go func() {
			_, _ = client.Write([]byte(http2.ClientPreface))
			for i := range c.resets {
				id := uint32(2*i + 1)
				if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: []byte{0x82}, EndHeaders: true}) != nil ||
					fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
					return
				}
			}
		}()
		sawGoAway := make(chan *http2.GoAwayFrame, 1)
		go func() {
			for {
				f, err := fr.ReadFrame()
				if err != nil {
					close(sawGoAway)
					return
				}
				if ga, ok := f.(*http2.GoAwayFrame); ok {
					sawGoAway <- ga
					return
				}
			}
		}()
		select {
		case ga, ok := <-sawGoAway:
			if !c.goAway {
				t.Fatalf("%d resets: the connection ended (GOAWAY %v)", c.resets, ok)
			}
			if !ok || ga.ErrCode != http2.ErrCodeEnhanceYourCalm || ga.LastStreamID == 0 {
				t.Fatalf("%d resets: %+v, want GOAWAY ENHANCE_YOUR_CALM with the last stream", c.resets, ga)
			}
		case <-time.After(2 * time.Second):
			if c.goAway {
				t.Fatalf("%d resets: no GOAWAY", c.resets)
			}
		}
		client.Close()
		server.Close()
	}
}

// The write side slips the GOAWAY in between frames only.
func TestFrameCursorBoundaries(t *testing.T) {
	var c frameCursor
	frame := []byte{0, 0, 3, 0, 0, 0, 0, 0, 1, 'a', 'b', 'c'}
	c.walk(frame[:5], 0, func([9]byte) bool { return true }, nil)
	if c.atBoundary() {
		t.Fatal("inside a header counts as a boundary")
	}
	c.walk(frame[5:10], 0, func([9]byte) bool { return true }, nil)
	if c.atBoundary() {
		t.Fatal("inside a payload counts as a boundary")
	}
	c.walk(frame[10:], 0, func([9]byte) bool { return true }, nil)
	if !c.atBoundary() {
		t.Fatal("the end of a frame is not a boundary")
	}
}
