package edge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type logLine struct {
	Msg    string `json:"msg"`
	User   string `json:"user"`
	Peer   string `json:"peer"`
	Reason string `json:"reason"`
	Count  int    `json:"count"`
}

func lines(t *testing.T, buf *bytes.Buffer) []logLine {
	t.Helper()
	var out []logLine
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var ll logLine
		if err := json.Unmarshal([]byte(l), &ll); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, ll)
	}
	return out
}

// refusalsIn counts the refusals a log accounts for: one per full line,
// the count of each summary.
func refusalsIn(ls []logLine) int {
	n := 0
	for _, l := range ls {
		if l.Msg == "authentication failed" {
			n++
		} else {
			n += l.Count
		}
	}
	return n
}

func TestFailureLogIsBoundedAndExact(t *testing.T) {
	for name, source := range map[string]func(i int) Refusal{
		"one source": func(int) Refusal {
			return Refusal{Protocol: "grpc", Target: "/m", User: "root", Peer: "10.0.0.66", Reason: "bad_password"}
		},
		"a name each": func(i int) Refusal {
			return Refusal{Protocol: "grpc", Target: "/m", User: fmt.Sprintf("u%d", i), Peer: "10.0.0.66", Reason: "unknown_user"}
		},
		"an address each": func(i int) Refusal {
			return Refusal{Protocol: "rest", Target: "/v2", User: "root", Peer: fmt.Sprintf("10.0.%d.%d", i/250, i%250), Reason: "bad_password"}
		},
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			l := NewFailureLog(slog.New(slog.NewJSONHandler(&buf, nil)))
			l.window = time.Hour // only the explicit Flush ends the window
			for i := range 1000 {
				l.Record(source(i))
			}
			l.Flush()
			got := lines(t, &buf)
			if max := failureFullLines + failureSummaryLines + 1; len(got) > max {
				t.Fatalf("1000 refusals wrote %d lines, bound %d", len(got), max)
			}
			if n := refusalsIn(got); n != 1000 {
				t.Fatalf("the log accounts for %d refusals, want exactly 1000:\n%s", n, buf.String())
			}
			if got[0].Msg != "authentication failed" || got[0].User == "" || got[0].Peer == "" {
				t.Fatalf("the first refusal is not logged in full: %+v", got[0])
			}
		})
	}
}

// The window ends by itself: a flood that stops still gets its summary.
func TestFailureLogFlushesAtTheEndOfTheWindow(t *testing.T) {
	var buf safeBuffer
	l := NewFailureLog(slog.New(slog.NewJSONHandler(&buf, nil)))
	l.window = 50 * time.Millisecond
	for range 20 {
		l.Record(Refusal{User: "root", Peer: "10.0.0.66", Reason: "bad_password"})
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.String(), `"count":19`) {
		if time.Now().After(deadline) {
			t.Fatalf("no summary after the window:\n%s", buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A new window logs the source in full again.
	l.Record(Refusal{User: "root", Peer: "10.0.0.66", Reason: "bad_password"})
	if n := strings.Count(buf.String(), `"msg":"authentication failed"`); n != 2 {
		t.Fatalf("%d full lines, want 2 (one per window)", n)
	}
	l.Flush()
}

func TestBoundCopiesAndCuts(t *testing.T) {
	huge := strings.Repeat("é", 1<<20)
	b := Bound(huge)
	if len(b) > maxLoggedLen+32 || !strings.HasSuffix(b, "…(2097152 bytes)") || !strings.HasPrefix(b, "éé") {
		t.Fatalf("Bound of 2 MiB: %q", b)
	}
	if got := Bound("root"); got != "root" {
		t.Fatalf("Bound(root) = %q", got)
	}
}

type safeBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *safeBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *safeBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
