package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Replicas registers this replica in etcd under a lease and follows the
// others, so that every limit is shared among the live replicas: each
// takes limit / N. A replica that stops revokes its lease and the others
// see it go at once; one that dies is gone when its lease expires
// (replicaTTL). While etcd cannot be reached, each replica keeps the last
// N it saw.
//
// Why shares and not one counter in etcd: a decision must stay in
// memory (no allocation, under 100 ns) and must not stop when etcd does;
// a central counter costs a round trip per call (or per batch, and then
// is not exact either). Shares are exact while clients are spread evenly
// over the replicas (a Kubernetes Service, round-robin DNS, the SDKs'
// connection per client); when they are not, a tenant whose calls all
// reach one replica gets limit / N, less than its limit.
type Replicas struct {
	cli      *clientv3.Client
	prefix   string // the registry's keys: prefix + id
	key      string
	onChange func(n int)
	log      *slog.Logger
	cancel   context.CancelFunc
	done     chan struct{}

	mu    sync.Mutex
	lease clientv3.LeaseID
	live  []Replica // as of the last listing
}

// Replica is one registered replica, as the console shows it.
type Replica struct {
	Name string // hostname-random: the key under the registry's prefix
	// Registered is when it registered (its key's value); zero when the
	// value is not the RFC 3339 time a replica writes.
	Registered time.Time
	Self       bool // this process
}

// Live is the replicas of the last listing, sorted by name (etcd lists
// keys in order): at most relistEvery old while etcd is followed, the
// last seen while it is not.
func (r *Replicas) Live() []Replica {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.live)
}

// replicaTTL is the registration's lease: a replica that dies without
// revoking it is counted out this long after its last keepalive.
const replicaTTL = 5 // seconds

// relistEvery re-counts the replicas even when the watch says nothing (a
// watch can hang on a partitioned member).
const relistEvery = 5 * time.Second

// JoinReplicas registers this replica under prefix (a directory of the
// credential store's etcd prefix) and calls onChange with the number of
// live replicas, now and on every change, until Close.
func JoinReplicas(ctx context.Context, cli *clientv3.Client, prefix string, onChange func(n int), logger *slog.Logger) (*Replicas, error) {
	var id [6]byte
	_, _ = rand.Read(id[:])
	host, _ := os.Hostname()
	r := &Replicas{cli: cli, prefix: prefix, key: prefix + host + "-" + hex.EncodeToString(id[:]), onChange: onChange, log: logger, done: make(chan struct{})}
	if err := r.register(ctx); err != nil {
		return nil, err
	}
	n, rev, err := r.count(ctx)
	if err != nil {
		return nil, err
	}
	onChange(n)
	runCtx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.follow(runCtx, n, rev)
	return r, nil
}

// register puts this replica's key under a new lease kept alive until
// the lease is lost or ctx ends.
func (r *Replicas) register(ctx context.Context) error {
	lease, err := r.cli.Grant(ctx, replicaTTL)
	if err != nil {
		return fmt.Errorf("replica registry: lease: %w", err)
	}
	if _, err := r.cli.Put(ctx, r.key, time.Now().UTC().Format(time.RFC3339), clientv3.WithLease(lease.ID)); err != nil {
		return fmt.Errorf("replica registry: register %s: %w", r.key, err)
	}
	r.mu.Lock()
	r.lease = lease.ID
	r.mu.Unlock()
	return nil
}

func (r *Replicas) count(ctx context.Context) (int, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, relistEvery)
	defer cancel()
	// Keys and values, not a count alone: the console lists the replicas.
	// A replica's key and value are small, and so is their number.
	resp, err := r.cli.Get(clientv3.WithRequireLeader(ctx), r.prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, 0, fmt.Errorf("replica registry: count: %w", err)
	}
	live := make([]Replica, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		at, err := time.Parse(time.RFC3339, string(kv.Value))
		if err != nil {
			at = time.Time{} // shown as unknown, not guessed
		}
		key := string(kv.Key)
		live = append(live, Replica{Name: strings.TrimPrefix(key, r.prefix), Registered: at, Self: key == r.key})
	}
	r.mu.Lock()
	r.live = live
	r.mu.Unlock()
	return len(live), resp.Header.Revision, nil
}

// follow keeps the lease alive and the count current: on every event of
// the registry, on every relistEvery, and again after the lease was lost
// (etcd unreachable for longer than its TTL: registered anew).
func (r *Replicas) follow(ctx context.Context, n int, rev int64) {
	defer close(r.done)
	for ctx.Err() == nil {
		err := r.session(ctx, &n, rev)
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("replica registry: following etcd failed; keeping the last count", "replicas", n, "err", err)
		for backoff := 100 * time.Millisecond; ctx.Err() == nil; backoff = min(2*backoff, 5*time.Second) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			if err := r.register(ctx); err != nil {
				continue
			}
			var err error
			if n, rev, err = r.recount(ctx, n); err == nil {
				break
			}
		}
	}
}

func (r *Replicas) recount(ctx context.Context, prev int) (int, int64, error) {
	n, rev, err := r.count(ctx)
	if err != nil {
		return prev, 0, err
	}
	if n != prev {
		r.log.Info("rate limits: replicas changed; each takes limit / N", "replicas", n, "was", prev)
		r.onChange(n)
	}
	return n, rev, nil
}

// session runs until the lease is lost or the watch fails.
func (r *Replicas) session(ctx context.Context, n *int, rev int64) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.mu.Lock()
	lease := r.lease
	r.mu.Unlock()
	alive, err := r.cli.KeepAlive(sctx, lease)
	if err != nil {
		return fmt.Errorf("keepalive: %w", err)
	}
	events := r.cli.Watch(clientv3.WithRequireLeader(sctx), r.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	tick := time.NewTicker(relistEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case _, ok := <-alive:
			if !ok {
				return errors.New("lease lost")
			}
		case resp, ok := <-events:
			if !ok {
				return errors.New("watch closed")
			}
			if err := resp.Err(); err != nil {
				return err
			}
			if len(resp.Events) == 0 {
				continue
			}
			if *n, _, err = r.recount(ctx, *n); err != nil {
				return err
			}
		case <-tick.C:
			if *n, _, err = r.recount(ctx, *n); err != nil {
				return err
			}
		}
	}
}

// Close leaves the registry: the lease is revoked, so the other replicas
// count this one out at once.
func (r *Replicas) Close() {
	r.cancel()
	<-r.done
	r.mu.Lock()
	lease := r.lease
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := r.cli.Revoke(ctx, lease); err != nil {
		r.log.Warn("replica registry: could not revoke the lease; the others count this replica out when it expires", "ttl", replicaTTL, "err", err)
	}
}
