package server

import (
	"strings"
	"testing"

	"github.com/authproxy/authproxy/config"
)

// The Live/Restart table and the section builders say the same thing:
// every key config marks Live is applied by exactly one builder, and a
// builder names only Live keys. A key marked Live that no builder applies,
// or a builder for a key read only at start, fails here.
func TestBuildersCoverTheLiveKeys(t *testing.T) {
	covers := func(pattern, key string) bool { return key == pattern || strings.HasPrefix(key, pattern+".") }
	for _, key := range config.LiveKeys() {
		var by []string
		for _, b := range sectionBuilders {
			for _, p := range b.live {
				if covers(p, key) {
					by = append(by, p)
				}
			}
		}
		if len(by) != 1 {
			t.Errorf("live key %s is applied by %d section builders %v, want exactly one (server/build.go)", key, len(by), by)
		}
	}
	for _, b := range sectionBuilders {
		for _, p := range b.live {
			matched := false
			for _, key := range config.Fields() {
				if !covers(p, key) {
					continue
				}
				matched = true
				if e, _ := config.EffectOf(key); e != config.Live {
					t.Errorf("a section builder applies %s (as %s), which config marks %s", key, p, e)
				}
			}
			if !matched {
				t.Errorf("a section builder names %s, which is not a config key", p)
			}
		}
	}
}
