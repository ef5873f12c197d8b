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

func TestEffectiveListsRestartFields(t *testing.T) {
	prev := Default()
	next := Default()
	next.Cache.TTL = time.Hour                     // live
	next.Auth.BruteForce.Threshold = 3             // restart
	next.Listen = "127.0.0.1:1"                    // restart
	next.TLS = &TLS{CertFile: "a.pem"}             // turned on: restart
	next.Common.Security.RootShouldBindRole = true // live
	_, got := Effective(prev, next)
	slices.Sort(got)
	want := []string{"auth.bruteForce.threshold", "listen", "tls"}
	if !slices.Equal(got, want) {
		t.Fatalf("restart = %v, want %v", got, want)
	}
	prev.TLS = &TLS{CertFile: "a.pem", ClientIdentity: &ClientIdentity{Source: "cn"}}
	next = Default()
	next.TLS = &TLS{CertFile: "b.pem"}
	if _, got := Effective(prev, next); len(got) != 0 {
		t.Fatalf("live TLS changes reported as needing a restart: %v", got)
	}
}

// A reload puts the live changes in force and keeps every restart-only
// field at its running value, sections turned on or off included, without
// writing to the config it was given.
func TestEffectiveKeepsRestartFields(t *testing.T) {
	prev := Default()
	prev.TLS = &TLS{CertFile: "a.pem", KeyFile: "a.key"}
	next := Default()
	next.Listen = "127.0.0.1:1"                            // restart
	next.Log.AccessLog = true                              // restart
	next.Backend.TLS = &BackendTLS{CAFile: "ca.pem"}       // restart, turned on
	next.Cache.TTL = time.Hour                             // live
	next.TLS = &TLS{CertFile: "b.pem", KeyFile: "b.key"}   // live within a section that stays on
	next.Identities.LDAP = &LDAP{URL: "ldaps://directory"} // live, turned on
	got, restart := Effective(prev, next)
	if got.Cache.TTL != time.Hour || got.TLS.CertFile != "b.pem" || got.Identities.LDAP == nil {
		t.Errorf("live changes not in the effective config: ttl %s, tls %+v, ldap %v", got.Cache.TTL, got.TLS, got.Identities.LDAP)
	}
	if got.Listen != prev.Listen || got.Log.AccessLog || got.Backend.TLS != nil {
		t.Errorf("restart-only changes half-applied: listen %s, accessLog %t, backend.tls %+v", got.Listen, got.Log.AccessLog, got.Backend.TLS)
	}
	slices.Sort(restart)
	if want := []string{"backend.tls", "listen", "log.accessLog"}; !slices.Equal(restart, want) {
		t.Errorf("restart = %v, want %v", restart, want)
	}
	if next.Listen != "127.0.0.1:1" || next.Backend.TLS == nil {
		t.Error("Effective wrote to next")
	}

	// TLS turned off by a reload stays on, as it runs.
	off, restart := Effective(prev, Default())
	if off.TLS == nil || off.TLS.CertFile != "a.pem" || !slices.Equal(restart, []string{"tls"}) {
		t.Errorf("tls turned off live: effective %+v, restart %v", off.TLS, restart)
	}
}
