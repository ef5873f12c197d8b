package main

import (
	"math"
	"strings"
	"testing"
)

// An added latency is compared only over rounds where the reference added
// something: a round where direct's p99 was as high as the reference's
// has no ratio, and a negative one would judge the wrong way.
func TestAddedRatioSkipsRoundsWhereTheReferenceAddedNothing(t *testing.T) {
	rounds := func(p99s ...float64) []*sample {
		var out []*sample
		for _, v := range p99s {
			out = append(out, &sample{P99: v})
		}
		return out
	}
	r := &results{Samples: map[string]map[string][]*sample{"w": {
		tDirect: rounds(100, 100, 300),
		"a":     rounds(150, 160, 400),
		"b":     rounds(200, 140, 290), // adds 100, 40, then -10
	}}}
	// Rounds 1 and 2: 50/100 and 60/40; round 3 (b added -10) is left out.
	if got := medianOrNaN(r.addedRatios("w", "a", "b", p99)); got != 1 {
		t.Errorf("the added ratio = %v, want the median of 0.5 and 1.5 (1)", got)
	}
	r.Samples["w"]["b"] = rounds(100, 90, 300)
	if got := medianOrNaN(r.addedRatios("w", "a", "b", p99)); !math.IsNaN(got) {
		t.Errorf("the added ratio = %v with a reference that never added anything, want NaN (not judged)", got)
	}
}

// A goal is judged on the median of its per-round ratios; the row also
// says how the rounds spread and in how many the goal held, so that a
// goal missed by noise reads differently from one missed in every round.
func TestGoalRowGivesTheRoundsBesideTheMedian(t *testing.T) {
	row := goalRow("g", 1, 1, []float64{0.93, 1.19, 0.97, 1.02, 0.95}, atLeast(1))
	if want := "| g | 1.00 | 1.00 | 0.97 | 0.93–1.19 | no | 2/5 |\n"; row != want {
		t.Errorf("row %q, want %q", row, want)
	}
	row = goalRow("g", 1, 1, nil, atMost(1))
	if want := "| g | 1.00 | 1.00 | – | – | – | 0/0 |\n"; row != want {
		t.Errorf("row with no round judged %q, want %q", row, want)
	}
}

// The twin's score counts the bounds at 1.0× only: the relay's 1.5× at
// c=32 (or 0.8× at c=1) asks for a lead that an equal cannot have.
func TestTwinScoreCountsOnlyTheBoundsAtParity(t *testing.T) {
	one := func(rate, cpu float64) []*sample {
		return []*sample{{Round: 1, Calls: 100, Elapsed: 1, Rate: rate, CPU: cpuUse{Target: cpu}}}
	}
	r := &results{Rounds: 1, Targets: []string{tDirect, tNginx, tTwin}, Samples: map[string]map[string][]*sample{
		"fullduplex":     {tDirect: one(100, 1), tNginx: one(100, 1), tTwin: one(101, 1)},   // 1.01: met
		"insert_4mib":    {tDirect: one(100, 1), tNginx: one(100, 1), tTwin: one(99, 0.99)}, // rate 0.99: missed; CPU per MB equal: met
		"getversion_c32": {tDirect: one(100, 1), tNginx: one(100, 1), tTwin: one(160, 1)},   // 1.6 ≥ 1.5, not at parity
	}}
	md := r.markdown()
	if want := "it met 2 of the 3 judged"; !strings.Contains(md, want) {
		t.Errorf("report lacks %q:\n%s", want, md)
	}
}
