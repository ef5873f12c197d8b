package rest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"strconv"

	"github.com/authproxy/authproxy/admission"
)

// forward streams the request to the backend within the size and time
// limits (ServeHTTP refused an over-limit declared length already).
func (h *handler) forward(w http.ResponseWriter, r *http.Request, call *admission.Call, rewrite func([]byte) []byte) {
	r.Body = http.MaxBytesReader(w, r.Body, h.maxBody)
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	ctx = context.WithValue(ctx, forwardKey{}, forwardInfo{call: call, rewrite: rewrite})
	h.proxy.ServeHTTP(w, r.WithContext(ctx))
}

// forwardKey carries a forwardInfo from forward to rewrite.
type forwardKey struct{}

type forwardInfo struct {
	call *admission.Call
	// rewrite, for list and describe routes, drops or refuses what the
	// caller may not see.
	rewrite func([]byte) []byte
}

// maxFilteredReply bounds a reply read whole to be rewritten.
const maxFilteredReply = 16 << 20

// filterReply drops from a list reply what the caller may not see, and
// refuses a described collection it may not see, as Milvus's RootCoord
// does; other replies stream through untouched.
func (h *handler) filterReply(resp *http.Response) error {
	f, _ := resp.Request.Context().Value(forwardKey{}).(forwardInfo)
	if f.rewrite == nil || resp.Header.Get("Content-Encoding") != "" {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxFilteredReply))
	resp.Body.Close()
	if err != nil {
		return err
	}
	out := f.rewrite(body)
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	return nil
}

// rewrite gives the backend the admission step's header list: what the
// edge policy strips (the client's credential and any identity it
// asserts, in any spelling) removed, the authenticated identity added.
func (h *handler) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(h.backend)
	pr.SetXForwarded()
	f, _ := pr.In.Context().Value(forwardKey{}).(forwardInfo)
	call := f.call
	if call == nil {
		call = &admission.Call{}
	}
	out := pr.Out.Header // a copy: ReverseProxy clones the client's
	h.adm.UpstreamMap(call, out, func(f admission.Field) { out.Add(f.Name, f.Value) })
}

// proxyError answers a request the backend did not answer, in Milvus's envelope.
func (h *handler) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		h.tooLarge(w, r, tooBig.Limit)
	case errors.Is(r.Context().Err(), context.DeadlineExceeded):
		h.logger.Warn("rest backend timed out", "backend", h.backend.Redacted(), "path", r.URL.Path, "timeout", h.timeout)
		writeError(w, http.StatusGatewayTimeout, codeTimeout,
			fmt.Sprintf("backend %s did not answer within %s", h.backend.Redacted(), h.timeout))
	case errors.Is(r.Context().Err(), context.Canceled):
		// The client left: nobody reads an answer.
		h.logger.Debug("rest client canceled", "path", r.URL.Path, "error", err)
	default:
		h.logger.Warn("rest backend unavailable", "backend", h.backend.Redacted(), "path", r.URL.Path, "error", err)
		writeError(w, http.StatusBadGateway, codeServiceUnavailable,
			fmt.Sprintf("backend %s unavailable: %v", h.backend.Redacted(), err))
	}
}

func (h *handler) tooLarge(w http.ResponseWriter, r *http.Request, limit int64) {
	if r.ProtoMajor == 1 {
		// The rest of the body is never read: the connection cannot carry
		// another request, and the answer must not wait for that rest
		// (net/http would read up to 256 KiB of it first).
		w.Header().Set("Connection", "close")
	}
	writeError(w, http.StatusRequestEntityTooLarge, codeParameterTooLarge,
		fmt.Sprintf("request body too large: the limit is %d bytes", limit))
}
