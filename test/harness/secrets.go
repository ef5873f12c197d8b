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
		for _, line := range strings.Split(log, "\n") {
			for s := range secrets {
				if containsToken(line, s) {
					// Show where, with the secret itself masked.
					found = append(found, fmt.Sprintf("proxy #%d: %s", i, strings.ReplaceAll(line, s, "<secret>")))
				}
			}
		}
	}
	if len(found) > 0 {
		return fmt.Errorf("secrets leaked into logs:\n%s", strings.Join(found, "\n"))
	}
	if len(allLogs) == 0 || len(secrets) == 0 {
		return fmt.Errorf("secret check saw %d logs and %d secrets: the check itself is broken", len(allLogs), len(secrets))
	}
	return nil
}

// containsToken reports whether s occurs in line not glued to letters or
// digits on either side: the default password "Milvus" must be found in
// `password=Milvus`, not in the method name "MilvusService".
func containsToken(line, s string) bool {
	for i := 0; ; {
		j := strings.Index(line[i:], s)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(s)
		if (start == 0 || !isAlnum(line[start-1])) && (end == len(line) || !isAlnum(line[end])) {
			return true
		}
		i = start + 1
	}
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
