package main

import (
	"math"
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
