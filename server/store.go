package server

import (
	"sync/atomic"

	"github.com/authproxy/authproxy/credentials"
)

// storeRef lets a config reload point the proxy at another credential file
// without rebuilding the verifier and the user service that hold the store.
type storeRef struct {
	cur atomic.Pointer[credentials.FileStore]
}

func (r *storeRef) file() *credentials.FileStore                { return r.cur.Load() }
func (r *storeRef) Current() *credentials.Set                   { return r.cur.Load().Current() }
func (r *storeRef) Update(m func(*credentials.Set) error) error { return r.cur.Load().Update(m) }
func (r *storeRef) Reload() (bool, error)                       { return r.cur.Load().Reload() }
