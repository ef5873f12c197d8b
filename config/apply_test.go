package config

import (
	"slices"
	"testing"
	"time"
)

// Every field says whether a reload applies it: a new field without a
// classification fails here, not silently at a reload.
func TestEveryFieldIsClassified(t *testing.T) {
	fields := Fields()
	for _, f := range fields {
		if _, ok := EffectOf(f); !ok {
			t.Errorf("config field %s is not classified as live or restart in effects (config/apply.go)", f)
		}
	}
	for f := range effects {
		if !slices.Contains(fields, f) {
			t.Errorf("effects classifies %s, which is not a config field", f)
		}
	}
}

func TestRestartNeeded(t *testing.T) {
	prev := Default()
	next := Default()
	next.Cache.TTL = time.Hour                     // live
	next.Auth.BruteForce.Threshold = 3             // restart
	next.Listen = "127.0.0.1:1"                    // restart
	next.TLS = &TLS{CertFile: "a.pem"}             // turned on: restart
	next.Common.Security.RootShouldBindRole = true // live
	got := RestartNeeded(prev, next)
	slices.Sort(got)
	want := []string{"auth.bruteForce.threshold", "listen", "tls"}
	if !slices.Equal(got, want) {
		t.Fatalf("RestartNeeded = %v, want %v", got, want)
	}
	prev.TLS = &TLS{CertFile: "a.pem", ClientIdentity: &ClientIdentity{Source: "cn"}}
	next = Default()
	next.TLS = &TLS{CertFile: "b.pem"}
	if got := RestartNeeded(prev, next); len(got) != 0 {
		t.Fatalf("live TLS changes reported as needing a restart: %v", got)
	}
}
