package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"sync"
	"time"

	"github.com/authproxy/authproxy/auth"
)

// cookieName is the session cookie; its value is 32 random bytes, kept on
// the server only as a SHA-256 digest.
const cookieName = "authproxy_console"

// session is one signed-in browser.
type session struct {
	id   auth.Identity
	csrf string // the synchronizer token every change must carry
	// bound is what the credential was checked against (a password's
	// stored hash, an API key's digest): when the store no longer holds
	// it, the session ends, as a cached verification would.
	bound    string
	lastSeen time.Time
}

// sessions are the signed-in browsers, bounded in number and idle time.
type sessions struct {
	idle time.Duration
	max  int
	now  func() time.Time

	mu   sync.Mutex
	byID map[[sha256.Size]byte]*session
}

func newSessions(idle time.Duration, max int) *sessions {
	return &sessions{idle: idle, max: max, now: time.Now, byID: map[[sha256.Size]byte]*session{}}
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session and returns the cookie value. Past max, the
// longest idle session is signed out.
func (s *sessions) create(id auth.Identity, bound string) (string, *session) {
	token := randomToken()
	sess := &session{id: id, csrf: randomToken(), bound: bound, lastSeen: s.now()}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked()
	if len(s.byID) >= s.max {
		var oldest [sha256.Size]byte
		var seen time.Time
		for k, v := range s.byID {
			if seen.IsZero() || v.lastSeen.Before(seen) {
				oldest, seen = k, v.lastSeen
			}
		}
		delete(s.byID, oldest)
	}
	s.byID[sha256.Sum256([]byte(token))] = sess
	return token, sess
}

// get returns the live session of a cookie value and marks it seen.
func (s *sessions) get(token string) (*session, bool) {
	key := sha256.Sum256([]byte(token))
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byID[key]
	if !ok {
		return nil, false
	}
	now := s.now()
	if now.Sub(sess.lastSeen) > s.idle {
		delete(s.byID, key)
		return nil, false
	}
	sess.lastSeen = now
	return sess, true
}

func (s *sessions) end(token string) {
	s.mu.Lock()
	delete(s.byID, sha256.Sum256([]byte(token)))
	s.mu.Unlock()
}

func (s *sessions) sweepLocked() {
	now := s.now()
	for k, v := range s.byID {
		if now.Sub(v.lastSeen) > s.idle {
			delete(s.byID, k)
		}
	}
}

// validCSRF compares a form's token with the session's in constant time.
func (sess *session) validCSRF(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(sess.csrf)) == 1
}
