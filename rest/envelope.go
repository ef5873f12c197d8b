package rest

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/authproxy/authproxy/admission"
)

// Milvus merr codes the REST layer answers with (pkg/util/merr).
const (
	codeSuccess            = 0
	codeServiceUnavailable = admission.CodeServiceUnavailable
	codeParameterTooLarge  = 1102 // ErrParameterTooLarge
	codeNeedAuthenticate   = admission.CodeNeedAuthenticate
	codeIncorrectFormat    = 1801  // ErrIncorrectParameterFormat
	codeMissingParameters  = 1802  // ErrMissingRequiredParameters
	codeTimeout            = 10001 // merr.TimeoutCode
	codeUnexpected         = admission.CodeUnexpected
)

// Messages of those merr errors, to the letter.
const (
	msgNeedAuthenticate  = admission.MsgNeedAuthenticate
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
