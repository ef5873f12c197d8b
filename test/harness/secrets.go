package harness

import (
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
)

var (
	secretsMu sync.Mutex
	secrets   = map[string]bool{}
	allLogsMu sync.Mutex
	allLogs   []string
)

// Secret registers a password, key, token or hash that must never appear in
// any log of any proxy of this test run.
func Secret(s string) {
	if len(s) < 6 {
		return // too short to search for without false alarms
	}
	secretsMu.Lock()
	defer secretsMu.Unlock()
	secrets[s] = true
}

// Password registers a password and the tokens a client derives from it.
func Password(user, password string) {
	Secret(password)
	Secret(base64.StdEncoding.EncodeToString([]byte(user + ":" + password)))
	Secret(user + ":" + password)
}

// APIKey registers an API key and its base64 token.
func APIKey(key string) {
	Secret(key)
	Secret(base64.StdEncoding.EncodeToString([]byte(key)))
}

// CheckLogs returns an error naming every secret found in a collected log
// (the secret itself is not repeated, only where it was seen). Call it from
// TestMain after m.Run.
func CheckLogs() error {
	secretsMu.Lock()
	defer secretsMu.Unlock()
	allLogsMu.Lock()
	defer allLogsMu.Unlock()
	var found []string
	for i, log := range allLogs {
		for s := range secrets {
			if strings.Contains(log, s) {
				found = append(found, fmt.Sprintf("a secret of %d characters in the log of proxy #%d", len(s), i))
			}
		}
	}
	if len(found) > 0 {
		return fmt.Errorf("secrets leaked into logs: %s", strings.Join(found, "; "))
	}
	if len(allLogs) == 0 || len(secrets) == 0 {
		return fmt.Errorf("secret check saw %d logs and %d secrets: the check itself is broken", len(allLogs), len(secrets))
	}
	return nil
}
