package edge

import (
	"testing"

	"github.com/authproxy/authproxy/config"
)

func TestStripsEverySpelling(t *testing.T) {
	p := NewHeaderPolicy("x-caller")
	for _, k := range []string{"authorization", "Authorization", "SOURCEID", "x-caller", "X-Caller", "x_caller", "X_Authproxy_User", "x-authproxy-user"} {
		if !p.Strips(k) {
			t.Errorf("%q not stripped", k)
		}
	}
	for _, k := range []string{"dbname", "x-custom", "client-request-id", "x-callerx"} {
		if p.Strips(k) {
			t.Errorf("%q stripped", k)
		}
	}
}

// The identity header is added after stripped keys are removed: an owned key
// configured as the identity header would be stripped from the client and
// then asserted, so config must refuse every one of them.
func TestConfigRefusesOwnedKeysAsIdentityHeader(t *testing.T) {
	for _, key := range OwnedKeys() {
		if !config.IsReservedMetadataKey(key) {
			t.Errorf("config accepts owned key %q as auth.identityHeader", key)
		}
	}
}

func BenchmarkStrips(b *testing.B) {
	p := NewHeaderPolicy(DefaultIdentityHeader)
	keys := []string{"authorization", "dbname", "identifier", "client-request-id", "user-agent"}
	b.ReportAllocs()
	for b.Loop() {
		for _, k := range keys {
			_ = p.Strips(k)
		}
	}
}
