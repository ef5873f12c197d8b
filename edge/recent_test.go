package edge

import (
	"strconv"
	"strings"
	"testing"
)

// The ring keeps the last recentDenials, newest first, with client-sent
// strings cut as in the log.
func TestDenialsKeepTheLastBounded(t *testing.T) {
	var d Denials
	for i := range recentDenials + 10 {
		d.Add(Denial{User: "u" + strconv.Itoa(i), Target: strings.Repeat("x", 1<<20)})
	}
	last := d.Last()
	if len(last) != recentDenials || last[0].User != "u"+strconv.Itoa(recentDenials+9) || last[len(last)-1].User != "u10" {
		t.Fatalf("kept %d, first %q, last %q", len(last), last[0].User, last[len(last)-1].User)
	}
	if len(last[0].Target) > maxLoggedLen+32 {
		t.Fatalf("a target of %d bytes kept", len(last[0].Target))
	}
	var none *Denials
	none.Add(Denial{}) // no ring wired: nothing happens
}
