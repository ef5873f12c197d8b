package credentials

import (
	"fmt"
	"unicode/utf8"
)

// Limits of Milvus's own user rules (proxy.maxUsernameLength,
// proxy.minPasswordLength, proxy.maxPasswordLength in milvus.yaml). The
// password maximum stays 256 because argon2id makes every byte count.
const (
	MaxUsernameLength = 32
	MinPasswordLength = 6
	MaxPasswordLength = 256
	// MaxDescriptionLength bounds a user's description.
	MaxDescriptionLength = 1024
)

// Built-in roles, never stored and never dropped: every user holds
// RolePublic implicitly; RoleAdmin passes every privilege check.
const (
	RoleAdmin  = "admin"
	RolePublic = "public"
)

// RootUser is the user created at bootstrap; it is always an administrator and
// cannot be deleted.
const RootUser = "root"

// CodeParameterInvalid is Milvus's merr code for ErrParameterInvalid.
const CodeParameterInvalid = 1100

// RuleError reports a user name or password that breaks Milvus's rules. Its
// message is the reason Milvus itself returns, so callers can put it in a
// commonpb.Status unchanged with Code().
type RuleError struct {
	Reason string
	// code is the merr code when it is not ErrParameterInvalid's.
	code int32
}

func (e *RuleError) Error() string { return e.Reason }

// Code is the Milvus error code for the failure: 1100 (parameter invalid)
// unless the rule is one with a code of its own (802 for database names,
// 1402 for privilege group names).
func (e *RuleError) Code() int32 {
	if e.code != 0 {
		return e.code
	}
	return CodeParameterInvalid
}

// invalidParam mirrors merr.WrapErrParameterInvalidMsg: "<msg>: invalid parameter".
func invalidParam(format string, args ...any) *RuleError {
	return &RuleError{Reason: fmt.Sprintf(format, args...) + ": invalid parameter"}
}

// ValidateUsername applies Milvus's user name rule: not empty, at most 32
// bytes, an ASCII letter first, then ASCII letters, digits or '_'. Unlike
// Milvus it does not trim surrounding spaces first: a stored name must be
// exactly the name a client sends.
func ValidateUsername(name string) error {
	if name == "" {
		return invalidParam("username must be not empty")
	}
	if len(name) > MaxUsernameLength {
		return invalidParam("invalid username %s with length %d, the length of username must be less than %d",
			name, len(name), MaxUsernameLength)
	}
	if !isAlpha(name[0]) {
		r, _ := utf8.DecodeRuneInString(name)
		return invalidParam("invalid user name %s, the first character must be a letter, but got %c",
			name, r)
	}
	for i := 1; i < len(name); i++ {
		if c := name[i]; c != '_' && !isAlpha(c) && !isDigit(c) {
			r, _ := utf8.DecodeRuneInString(name[i:])
			return invalidParam("invalid user name %s, username must contain only numbers, letters and underscores, but got %c",
				name, r)
		}
	}
	return nil
}

// ValidatePassword applies Milvus's password length rule, counted in bytes as
// Milvus does.
func ValidatePassword(password string) error {
	if n := len(password); n < MinPasswordLength || n > MaxPasswordLength {
		// merr.WrapErrParameterInvalidRange's wording.
		return &RuleError{Reason: fmt.Sprintf("invalid password length: invalid parameter[%d out of range %d <= value <= %d]",
			n, MinPasswordLength, MaxPasswordLength)}
	}
	return nil
}

// IsBuiltinRole reports whether role is admin or public.
func IsBuiltinRole(role string) bool {
	return role == RoleAdmin || role == RolePublic
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
