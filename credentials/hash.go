package credentials

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// argon2Params are the argon2id cost parameters of a hash.
type argon2Params struct {
	memory  uint32 // KiB
	time    uint32
	threads uint8
	saltLen uint32
	keyLen  uint32
}

// owaspParams is OWASP's argon2id recommendation (m=19 MiB, t=2, p=1).
var owaspParams = argon2Params{memory: 19456, time: 2, threads: 1, saltLen: 16, keyLen: 32}

// hashParams is what HashPassword uses. Only tests change it, to make bulk
// user creation cheap.
var hashParams = owaspParams

// Bounds on parameters read from a file: a hand-edited hash must not turn
// every login into a multi-gigabyte, multi-second computation.
const (
	maxArgon2Memory = 1 << 20 // KiB (1 GiB)
	maxArgon2Time   = 64
)

const argon2Prefix = "$argon2id$"

var errHashFormat = errors.New("unrecognised password hash format (want $argon2id$ or bcrypt $2a$/$2b$/$2y$)")

// HashPassword returns the argon2id hash of password in PHC string format
// ($argon2id$v=19$m=...,t=...,p=...$salt$key, unpadded standard base64).
func HashPassword(password string) (string, error) {
	return hashWith(hashParams, password)
}

func hashWith(p argon2Params, password string) (string, error) {
	salt := make([]byte, p.saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: read random salt: %w", err)
	}
	key := argon2id(password, salt, p)
	return fmt.Sprintf("%sv=%d$m=%d,t=%d,p=%d$%s$%s", argon2Prefix, argon2.Version,
		p.memory, p.time, p.threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// argon2id derives the key. Each call allocates p.memory KiB (19 MiB by
// default) that Go keeps for reuse after it is freed: an idle proxy would
// hold it after a single login. Once no derivation has run for a second,
// the free memory goes back to the operating system.
func argon2id(password string, salt []byte, p argon2Params) []byte {
	defer releaseAfterIdle.Reset(releaseIdleDelay)
	return argon2.IDKey([]byte(password), salt, p.time, p.memory, p.threads, p.keyLen)
}

// releaseIdleDelay is how long hashing must be idle before the release;
// freeOSMemory does it (tests replace both to observe the release).
var (
	releaseIdleDelay = time.Second
	freeOSMemory     = debug.FreeOSMemory
)

// releaseAfterIdle is armed by every derivation; it starts stopped.
var releaseAfterIdle = func() *time.Timer {
	t := time.AfterFunc(time.Hour, func() { freeOSMemory() })
	t.Stop()
	return t
}()

// VerifyPassword reports whether password matches encodedHash, an argon2id PHC
// string or a bcrypt $2a$/$2b$/$2y$ hash. Imported bcrypt hashes keep bcrypt's
// limit: only the first 72 bytes of the password are compared. A malformed
// hash never matches.
func VerifyPassword(encodedHash, password string) bool {
	if strings.HasPrefix(encodedHash, argon2Prefix) {
		p, salt, key, err := parseArgon2(encodedHash)
		if err != nil {
			return false
		}
		got := argon2id(password, salt, p)
		return subtle.ConstantTimeCompare(got, key) == 1
	}
	if isBcrypt(encodedHash) {
		return bcrypt.CompareHashAndPassword([]byte(encodedHash), []byte(password)) == nil
	}
	return false
}

// dummyHash is a production-cost argon2id hash of a random password, made on
// first use.
var dummyHash = sync.OnceValue(func() string {
	h, err := hashWith(owaspParams, rand.Text())
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return h
})

// DummyVerify does the work of one argon2id verification and discards the
// result. Call it for unknown users so the response time does not reveal
// which names exist.
func DummyVerify(password string) {
	VerifyPassword(dummyHash(), password)
}

// CheckHashFormat returns an error unless h is a well-formed argon2id PHC
// string with sane parameters or a bcrypt $2a$/$2b$/$2y$ hash. The error never
// contains h.
func CheckHashFormat(h string) error {
	if strings.HasPrefix(h, argon2Prefix) {
		_, _, _, err := parseArgon2(h)
		return err
	}
	if isBcrypt(h) {
		if _, err := bcrypt.Cost([]byte(h)); err != nil {
			return errors.New("malformed bcrypt hash")
		}
		return nil
	}
	return errHashFormat
}

// IsArgon2 reports whether h is an argon2id hash (rather than bcrypt).
func IsArgon2(h string) bool { return strings.HasPrefix(h, argon2Prefix) }

func isBcrypt(h string) bool {
	return strings.HasPrefix(h, "$2a$") || strings.HasPrefix(h, "$2b$") || strings.HasPrefix(h, "$2y$")
}

// parseArgon2 decodes "$argon2id$v=19$m=M,t=T,p=P$salt$key".
func parseArgon2(h string) (argon2Params, []byte, []byte, error) {
	var p argon2Params
	parts := strings.Split(h, "$")
	if len(parts) != 6 {
		return p, nil, nil, errors.New("malformed argon2id hash: want $argon2id$v=19$m=..,t=..,p=..$salt$key")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, fmt.Errorf("malformed argon2id hash: want version v=%d", argon2.Version)
	}
	var threads uint32
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &threads); err != nil ||
		fmt.Sprintf("m=%d,t=%d,p=%d", p.memory, p.time, threads) != parts[3] {
		return p, nil, nil, errors.New("malformed argon2id hash: want parameters m=<KiB>,t=<passes>,p=<lanes>")
	}
	if threads < 1 || threads > 255 || p.time < 1 || p.time > maxArgon2Time ||
		p.memory < 8*threads || p.memory > maxArgon2Memory {
		return p, nil, nil, fmt.Errorf("argon2id parameters out of range (1<=p<=255, 1<=t<=%d, 8*p<=m<=%d)",
			maxArgon2Time, maxArgon2Memory)
	}
	p.threads = uint8(threads)
	salt, err := base64.RawStdEncoding.Strict().DecodeString(parts[4])
	if err != nil || len(salt) < 8 || len(salt) > 64 {
		return p, nil, nil, errors.New("malformed argon2id hash: salt must be 8 to 64 bytes of unpadded base64")
	}
	key, err := base64.RawStdEncoding.Strict().DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 128 {
		return p, nil, nil, errors.New("malformed argon2id hash: key must be 16 to 128 bytes of unpadded base64")
	}
	p.saltLen, p.keyLen = uint32(len(salt)), uint32(len(key))
	return p, salt, key, nil
}
