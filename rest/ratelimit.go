package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/authproxy/authproxy/ratelimit"
	"github.com/authproxy/authproxy/rbac"
)

// RateLimiter is the rate-limit step of admission, shared with gRPC: it
// counts an authorized call (the method a route stands for, its body's
// size and, for a search, its vectors) against the limits.
type RateLimiter interface {
	Configured() bool
	Decide(who rbac.Principal, call rbac.Call, size int, nq int64) (ratelimit.Verdict, error)
}

// admitRate answers a call over its limit as Milvus's REST API answers
// its own limits, {"code": 1807, "message": "request is rejected by
// limiter, error: ..."}, but with HTTP 429 and a Retry-After, so that
// HTTP clients and load balancers see it too; nothing of it is forwarded.
func (h *handler) admitRate(w http.ResponseWriter, r *http.Request, id identity) bool {
	if h.limits == nil || !id.authenticated || !h.limits.Configured() {
		return true
	}
	route := strings.TrimPrefix(r.URL.Path, apiPrefix)
	method, known := dataRoutes[route]
	if !known {
		method = "REST:" + route // counted by callRate only, as every other method
	}
	call := rbac.Call{Principal: id.Principal, Method: "/" + rbac.Service + "/" + method, MetadataDB: r.Header.Get("DB-Name")}
	body, err := readBody(r.Body, r.ContentLength, h.maxBody)
	var tooBig errBodyTooLarge
	switch {
	case errors.As(err, &tooBig):
		h.tooLarge(w, r, tooBig.limit)
		return false
	case err != nil:
		writeError(w, http.StatusBadRequest, codeIncorrectFormat, msgIncorrectFormat+", error: reading the body: "+err.Error())
		return false
	}
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	var nq int64
	if known {
		q, err := decodeDataRequest(body)
		if err != nil {
			writeError(w, http.StatusBadRequest, codeIncorrectFormat, msgIncorrectFormat+", "+err.Error())
			return false
		}
		call.Message = requestMessage(call.Method, q)
		if method == "Search" {
			// REST v2 search: one vector per element of data.
			var s struct {
				Data []json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(body, &s); err != nil {
				writeError(w, http.StatusBadRequest, codeIncorrectFormat, msgIncorrectFormat+", error: "+err.Error())
				return false
			}
			nq = int64(len(s.Data))
		}
	}
	v, err := h.limits.Decide(id.Principal, call, len(body), nq)
	if err != nil {
		h.deny(w, err)
		return false
	}
	if v.Admitted() {
		return true
	}
	w.Header().Set("Retry-After", v.RetryAfterSeconds())
	writeError(w, http.StatusTooManyRequests, ratelimit.CodeHTTPRateLimit, v.RESTMessage())
	return false
}
