package proxy

import (
	"testing"

	"github.com/authproxy/authproxy/config"
)

// The identity header is added after owned keys are removed: an owned key
// configured as the identity header would be stripped from the client and
// then asserted, so config must refuse every one of them.
func TestConfigRefusesOwnedKeysAsIdentityHeader(t *testing.T) {
	for key := range ownedKeys {
		if !config.IsReservedMetadataKey(key) {
			t.Errorf("config accepts owned key %q as auth.identityHeader", key)
		}
	}
}
