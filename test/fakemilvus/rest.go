package fakemilvus

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc/metadata"
)

// RESTPrefix is the path prefix of Milvus's RESTful API v2.
const RESTPrefix = "/v2/vectordb/"

// RESTHandler answers Milvus RESTful v2 calls with Milvus's JSON envelope
// and records each call in the Recorder (Call.HTTPMethod set, Method = path).
// collections/list returns the collection names; every other path under
// RESTPrefix succeeds with empty data; other paths get 404.
func (s *Server) RESTHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		md := metadata.MD{}
		for k, vs := range r.Header {
			md.Append(strings.ToLower(k), vs...)
		}
		c := &Call{Method: r.URL.Path, HTTPMethod: r.Method, Metadata: md, Start: time.Now()}
		c.Deadline, c.HasDeadline = r.Context().Deadline()
		reqBody, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		c.Body = reqBody
		s.rec.add(c)
		rest, _ := io.Copy(io.Discard, r.Body)
		n := int64(len(reqBody)) + rest

		code, body := http.StatusOK, map[string]any{"code": 0, "data": map[string]any{}}
		switch {
		case r.URL.Path == RESTPrefix+"collections/list":
			body["data"] = append([]string{}, s.milvus.collectionNames(r.Header.Get("DB-Name"))...)
		case !strings.HasPrefix(r.URL.Path, RESTPrefix):
			code, body = http.StatusNotFound, map[string]any{"code": http.StatusNotFound, "message": "fakemilvus: no such path"}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(body)
		s.rec.finishHTTP(c, code, n)
		if s.opts.Logger != nil {
			s.opts.Logger.Info("rest call", "method", r.Method, "path", r.URL.Path, "status", code, "body_bytes", n)
		}
	})
}

// StartREST serves RESTHandler over plain HTTP on addr and returns the
// address actually bound. Stop and GracefulStop stop it too.
func (s *Server) StartREST(addr string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.http != nil {
		return "", errors.New("fakemilvus: REST server already running")
	}
	lis, err := listen(addr)
	if err != nil {
		return "", err
	}
	h := &http.Server{Handler: s.RESTHandler(), ReadHeaderTimeout: 10 * time.Second}
	s.http, s.restAddr = h, lis.Addr().String()
	go func() { _ = h.Serve(lis) }()
	return s.restAddr, nil
}
