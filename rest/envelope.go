package rest

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Milvus merr codes the REST layer answers with (pkg/util/merr).
const (
	codeSuccess            = 0
	codeServiceUnavailable = 2     // ErrServiceUnavailable
	codeParameterTooLarge  = 1102  // ErrParameterTooLarge
	codeNeedAuthenticate   = 1800  // ErrNeedAuthenticate
	codeIncorrectFormat    = 1801  // ErrIncorrectParameterFormat
	codeMissingParameters  = 1802  // ErrMissingRequiredParameters
	codeTimeout            = 10001 // merr.TimeoutCode
	// codeUnexpected is what merr.Code gives an error that is no merr error,
	// such as the gRPC PermissionDenied status of Milvus's privilege check.
	codeUnexpected = 65535
)

// Messages of those merr errors, to the letter.
const (
	msgNeedAuthenticate  = "user hasn't authenticated"
	msgIncorrectFormat   = "can only accept json format request"
	msgMissingParameters = "missing required parameters"
)

// reply is Milvus's envelope: {"code":0,"data":...} or {"code":n,"message":"..."}.
// Data is an interface so that an empty list still encodes as [].
type reply struct {
	Code    int32  `json:"code"`
	Data    any    `json:"data,omitempty"`
	Message string `json:"message,omitempty"`
}

func writeReply(w http.ResponseWriter, status int, r reply) {
	// Cannot fail: Data is only ever nil, struct{} or []string.
	body, _ := json.Marshal(r)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

func writeError(w http.ResponseWriter, status int, code int32, message string) {
	writeReply(w, status, reply{Code: code, Message: message})
}
