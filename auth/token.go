package auth

import (
	"encoding/base64"
	"strings"
)

// The messages a Milvus server with authentication on answers, to the letter:
// SDKs and users match on them.
const (
	MsgMissing       = "missing authorization in header"
	MsgInvalidFormat = "invalid token format"
	MsgBadPassword   = "auth check failure, please check username and password are correct"
	MsgBadAPIKey     = "auth check failure, please check api key is correct"
)

// Credential is a parsed token: a user and password, or an API key.
type Credential struct {
	User     string
	Password string
	APIKey   string
}

// IsAPIKey reports whether the token carried an API key.
func (c Credential) IsAPIKey() bool { return c.APIKey != "" }

// ParseToken decodes the value of the "authorization" metadata exactly as
// Milvus does: standard base64, then split on the FIRST ':' (passwords may
// contain ':'); no ':' at all makes it an API key.
func ParseToken(value string) (Credential, error) {
	raw, err := base64.StdEncoding.DecodeString(value)
	if err != nil {
		return Credential{}, &Failure{Reason: ReasonInvalidFormat, Message: MsgInvalidFormat}
	}
	return SplitToken(string(raw)), nil
}

// SplitToken splits a decoded token ("user:password" or an API key); REST
// sends it undecoded after "Bearer ".
func SplitToken(raw string) Credential {
	user, password, ok := strings.Cut(raw, ":")
	if !ok {
		return Credential{APIKey: raw}
	}
	return Credential{User: user, Password: password}
}

// ParseHTTPAuthorization reads an HTTP Authorization header as Milvus's REST
// API does: "Bearer user:password", "Bearer <api key>" (the token is not
// base64 there) or HTTP Basic.
func ParseHTTPAuthorization(header string) (Credential, error) {
	scheme, value, _ := strings.Cut(header, " ")
	value = strings.TrimSpace(value)
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		if value == "" {
			return Credential{}, &Failure{Reason: ReasonMissing, Message: MsgMissing}
		}
		return SplitToken(value), nil
	case strings.EqualFold(scheme, "Basic"):
		raw, err := base64.StdEncoding.DecodeString(value)
		if err != nil {
			return Credential{}, &Failure{Reason: ReasonInvalidFormat, Message: MsgInvalidFormat}
		}
		user, password, ok := strings.Cut(string(raw), ":")
		if !ok {
			return Credential{}, &Failure{Reason: ReasonInvalidFormat, Message: MsgInvalidFormat}
		}
		return Credential{User: user, Password: password}, nil
	default:
		return Credential{}, &Failure{Reason: ReasonInvalidFormat, Message: MsgInvalidFormat}
	}
}
