package fakemilvus

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/milvus-io/milvus/pkg/v2/util/merr"
	"google.golang.org/grpc/metadata"
)

// RESTPrefix is the path prefix of Milvus's RESTful API v2.
const RESTPrefix = "/v2/vectordb/"

// maxRESTBody bounds the body a REST route decodes.
const maxRESTBody = 16 << 20

// RESTHandler answers Milvus RESTful v2 calls with Milvus's JSON envelope
// and records each call in the Recorder (Call.HTTPMethod set, Method = path).
// The routes in restRoutes run on the fake's own data (restv2.go); every
// other path is refused with a 404 that names it, as Milvus's gin router
// answers 404 for a route it does not have: never a silent success.
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
		// The route reads the whole body up to maxRESTBody; a larger
		// one is refused below, never read in part.
		var whole bytes.Buffer
		whole.Write(reqBody)
		_, _ = io.Copy(&whole, io.LimitReader(r.Body, maxRESTBody+1-int64(len(reqBody))))
		rest, _ := io.Copy(io.Discard, r.Body)
		n := int64(whole.Len()) + rest

		code, body := http.StatusNotFound, map[string]any{"code": http.StatusNotFound,
			"message": fmt.Sprintf("fakemilvus does not implement %s %s", r.Method, r.URL.Path)}
		route, found := restRoutes[strings.TrimPrefix(r.URL.Path, RESTPrefix)]
		if found && strings.HasPrefix(r.URL.Path, RESTPrefix) && r.Method == http.MethodPost {
			code = http.StatusOK
			if n > maxRESTBody {
				err := merr.WrapErrParameterInvalidMsg("fakemilvus reads REST bodies up to %d bytes, this one has %d", maxRESTBody, n)
				body = map[string]any{"code": merr.Code(err), "message": err.Error()}
			} else {
				body = s.milvus.serveREST(route, r.Header.Get("DB-Name"), whole.Bytes())
			}
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
