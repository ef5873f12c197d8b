package sharedport

import (
	"io"
	"net/http"
	"time"
)

// A REST request body must keep arriving: at least bodyProgress bytes every
// bodyStall, or the read fails and the connection ends. A client sending a
// byte a second would otherwise hold a connection and a handler forever;
// a slow but real upload of a large insert still gets through.
const (
	bodyStall    = 10 * time.Second
	bodyProgress = 1 << 10
)

// withBodyDeadline applies the rule to every request with a body.
func withBodyDeadline(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			if rc.SetReadDeadline(time.Now().Add(bodyStall)) == nil {
				r.Body = &progressBody{ReadCloser: r.Body, rc: rc}
			}
		}
		h.ServeHTTP(w, r)
	})
}

type progressBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	since int // bytes since the deadline was last moved
}

func (b *progressBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if b.since += n; b.since >= bodyProgress {
		b.since = 0
		_ = b.rc.SetReadDeadline(time.Now().Add(bodyStall))
	}
	return n, err
}
