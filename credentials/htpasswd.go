package credentials

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// ImportedUser is one user read from an htpasswd file.
type ImportedUser struct {
	Name string
	Hash string // bcrypt
}

// ParseHtpasswd reads an Apache htpasswd file (as used by nginx and Traefik):
// "name:hash" lines, blank lines and '#' comments skipped. Only bcrypt hashes
// ($2a$, $2b$, $2y$; htpasswd -B) are accepted: the other formats are too weak
// to keep. Errors name the line, never the hash.
func ParseHtpasswd(r io.Reader) ([]ImportedUser, error) {
	var users []ImportedUser
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, hash, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("htpasswd line %d: want name:hash", n)
		}
		if err := ValidateUsername(name); err != nil {
			return nil, fmt.Errorf("htpasswd line %d: %w", n, err)
		}
		if first, dup := seen[name]; dup {
			return nil, fmt.Errorf("htpasswd line %d: duplicate user %q (first defined at line %d)", n, name, first)
		}
		seen[name] = n
		if !isBcrypt(hash) {
			return nil, fmt.Errorf("htpasswd line %d: user %q: %s hashes are not accepted, only bcrypt (htpasswd -B)",
				n, name, htpasswdFormat(hash))
		}
		if err := CheckHashFormat(hash); err != nil {
			return nil, fmt.Errorf("htpasswd line %d: user %q: %w", n, name, err)
		}
		users = append(users, ImportedUser{Name: name, Hash: hash})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read htpasswd: %w", err)
	}
	return users, nil
}

// htpasswdFormat names a non-bcrypt htpasswd hash format.
func htpasswdFormat(h string) string {
	switch {
	case strings.HasPrefix(h, "$apr1$"):
		return "Apache MD5 ($apr1$)"
	case strings.HasPrefix(h, "{SHA}"):
		return "SHA-1 ({SHA})"
	case strings.HasPrefix(h, "$1$"):
		return "MD5-crypt ($1$)"
	case strings.HasPrefix(h, "$5$"):
		return "SHA-256-crypt ($5$)"
	case strings.HasPrefix(h, "$6$"):
		return "SHA-512-crypt ($6$)"
	case strings.HasPrefix(h, "$argon2"):
		return "argon2"
	case len(h) == 13:
		return "DES crypt"
	default:
		return "unknown or plain-text"
	}
}
