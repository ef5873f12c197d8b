package credentials

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/namespace"
	"go.uber.org/zap"
)

// EtcdOptions configure OpenEtcd.
type EtcdOptions struct {
	Endpoints []string
	// Prefix confines every key (default /authproxy/); never inside
	// Milvus's own by-dev/ keys.
	Prefix         string
	DialTimeout    time.Duration
	RequestTimeout time.Duration
	TLS            *tls.Config
	Username       string
	Password       string
	// DefaultRootPassword is root's password when the store is empty.
	DefaultRootPassword string
	// NoBootstrap leaves an empty store empty (store copy fills it).
	NoBootstrap bool
	Logger      *slog.Logger
	// OnFollow, if set, is told when the store stops following etcd (with
	// why) and when it follows again (nil).
	OnFollow func(err error)
}

// EtcdStore is a Store shared by many replicas: one etcd key per user, API
// key, role, binding, grant and group. Each replica lists the prefix, then
// watches it from the next revision, and publishes every change as a new
// immutable Set; a write is a transaction guarded by the revision of a
// sequence key, so concurrent writers on different replicas never lose one
// another's change, and the writer answers only once its own snapshot
// holds the change (read your writes).
type EtcdStore struct {
	cli     *clientv3.Client
	kv      clientv3.KV
	watcher clientv3.Watcher
	opts    EtcdOptions
	log     *slog.Logger

	cur     atomic.Pointer[etcdState]
	mu      sync.Mutex // serializes publish
	writeMu sync.Mutex // one writer of this replica at a time: only other replicas conflict
	// brokenSince is when the store stopped following etcd (Unix ns), 0
	// while it follows.
	brokenSince atomic.Int64
	cancel      context.CancelFunc
	done        chan struct{}
}

// etcdState is a published Set, the revision it reflects and its values.
type etcdState struct {
	set    *Set
	rev    int64
	values map[string]string
	at     time.Time
}

var _ Store = (*EtcdStore)(nil)

// Keys below the prefix.
const (
	keyUsers    = "users/"
	keyBindings = "user-roles/"
	keyAPIKeys  = "apikeys/"
	keyRoles    = "roles/"
	keyGrants   = "grants/"
	keyGroups   = "privilege-groups/"
	keySeq      = "meta/seq"
)

// OpenEtcd connects, creates root if the store is empty, lists the store
// and starts following it. It returns once a first complete list is
// published, or with ctx's error.
func OpenEtcd(ctx context.Context, opts EtcdOptions) (*EtcdStore, error) {
	if opts.Prefix == "" {
		opts.Prefix = "/authproxy/"
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: opts.Endpoints, DialTimeout: opts.DialTimeout, TLS: opts.TLS,
		Username: opts.Username, Password: opts.Password,
		DialKeepAliveTime: 10 * time.Second, DialKeepAliveTimeout: 5 * time.Second,
		Logger: zap.NewNop(), // failures reach the proxy's own log, as errors
	})
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", strings.Join(opts.Endpoints, ","), err)
	}
	s := &EtcdStore{
		cli: cli, kv: namespace.NewKV(cli.KV, opts.Prefix), watcher: namespace.NewWatcher(cli.Watcher, opts.Prefix),
		opts: opts, log: opts.Logger, done: make(chan struct{}),
	}
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		err = nil
		if !opts.NoBootstrap {
			err = s.bootstrap(ctx)
		}
		if err == nil {
			err = s.relist(ctx)
		}
		if err == nil {
			break
		}
		s.log.Warn("credential store: etcd list failed; retrying", "err", err, "retryIn", backoff.String())
		if opts.OnFollow != nil {
			opts.OnFollow(err)
		}
		select {
		case <-ctx.Done():
			cli.Close()
			return nil, fmt.Errorf("etcd %s: first list: %w", strings.Join(opts.Endpoints, ","), err)
		case <-time.After(backoff):
		}
	}
	watchCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.follow(watchCtx)
	return s, nil
}

// Close stops following etcd and closes the client.
func (s *EtcdStore) Close() error {
	s.cancel()
	<-s.done
	return s.cli.Close()
}

// Current implements Store.
func (s *EtcdStore) Current() *Set { return s.cur.Load().set }

// Revision is the etcd revision the current Set reflects, and when it was
// published.
func (s *EtcdStore) Revision() (int64, time.Time) {
	st := s.cur.Load()
	return st.rev, st.at
}

// Check is the readiness of the store: always ready once listed. While
// etcd cannot be reached the proxy keeps authenticating and authorizing
// from the last snapshot, which is what replicas behind one Service need;
// StaleFor and OnFollow say how old that snapshot is.
func (s *EtcdStore) Check() error { return nil }

// StaleFor is how long the store has not followed etcd; 0 while it does.
func (s *EtcdStore) StaleFor() time.Duration {
	if since := s.brokenSince.Load(); since != 0 {
		return time.Since(time.Unix(0, since))
	}
	return 0
}

func (s *EtcdStore) following(err error) {
	changed := false
	if err == nil {
		changed = s.brokenSince.Swap(0) != 0
	} else {
		changed = s.brokenSince.CompareAndSwap(0, time.Now().UnixNano())
	}
	if changed && s.opts.OnFollow != nil {
		s.opts.OnFollow(err)
	}
}

// Reload implements Store: a fresh list.
func (s *EtcdStore) Reload(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	before := s.cur.Load()
	if err := s.relist(ctx); err != nil {
		return false, err
	}
	return s.cur.Load() != before, nil
}

// bootstrap creates root, as a create-if-absent, when no user exists.
func (s *EtcdStore) bootstrap(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	resp, err := s.kv.Get(ctx, keyUsers, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	if resp.Count > 0 {
		return nil
	}
	password := s.opts.DefaultRootPassword
	if password == "" {
		password = DefaultRootPassword
	}
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Second)
	user, _ := json.Marshal(etcdUser{PasswordHash: hash, Created: now, Updated: now})
	txn, err := s.kv.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(keyUsers+RootUser), "=", 0)).
		Then(clientv3.OpPut(keyUsers+RootUser, string(user))). // no role, as in Milvus: root is root
		Commit()
	if err != nil {
		return fmt.Errorf("etcd: create root: %w", err)
	}
	if txn.Succeeded {
		s.log.Warn("created user root in the etcd credential store with the default root password; change it now", "prefix", s.opts.Prefix)
	}
	return nil
}

// relist reads the whole prefix and publishes it.
func (s *EtcdStore) relist(ctx context.Context) error {
	resp, err := s.kv.Get(ctx, "", clientv3.WithPrefix())
	if err != nil {
		return err
	}
	values := make(map[string]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		values[string(kv.Key)] = string(kv.Value)
	}
	return s.publish(values, resp.Header.Revision)
}

// publish decodes values and makes them the current Set, unless a newer
// revision is already in service or they break a rule (then the last good
// Set stays, and the error says why).
func (s *EtcdStore) publish(values map[string]string, rev int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.cur.Load(); cur != nil && cur.rev >= rev {
		return nil
	}
	set, err := decodeEtcd(values)
	if err == nil {
		err = set.validate()
	}
	if err != nil {
		return fmt.Errorf("etcd credential store at revision %d: %w", rev, err)
	}
	s.cur.Store(&etcdState{set: set, rev: rev, values: values, at: time.Now()})
	return nil
}

// follow watches the prefix from the revision in service, applying each
// batch of events; on a compaction, a broken watch or a quiet one, it
// lists again and starts over.
func (s *EtcdStore) follow(ctx context.Context) {
	defer close(s.done)
	for ctx.Err() == nil {
		err := s.watchOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		s.following(err)
		s.log.Warn("credential store: etcd watch ended; listing again", "err", err)
		for backoff := 100 * time.Millisecond; ctx.Err() == nil; backoff = min(2*backoff, 5*time.Second) {
			lctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
			err := s.relist(lctx)
			cancel()
			if err == nil {
				s.following(nil)
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
		}
	}
}

// The watch asks for a progress notification every watchProbe and is
// restarted when nothing, not even that, came for watchQuiet: a
// partitioned or stopped member can hold a watch open for ever.
const (
	watchProbe = 2 * time.Second
	watchQuiet = 6 * time.Second
)

func (s *EtcdStore) watchOnce(ctx context.Context) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	start := s.cur.Load().rev + 1
	ch := s.watcher.Watch(wctx, "", clientv3.WithPrefix(), clientv3.WithRev(start), clientv3.WithProgressNotify())
	quiet := time.NewTimer(watchQuiet)
	defer quiet.Stop()
	probe := time.NewTicker(watchProbe)
	defer probe.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-probe.C:
			pctx, cancel := context.WithTimeout(wctx, s.opts.RequestTimeout)
			err := s.watcher.RequestProgress(pctx)
			cancel()
			if err != nil {
				return fmt.Errorf("progress request: %w", err)
			}
		case <-quiet.C:
			return errors.New("watch quiet for " + watchQuiet.String())
		case resp, ok := <-ch:
			if !ok {
				return errors.New("watch channel closed")
			}
			if err := resp.Err(); err != nil {
				return err
			}
			quiet.Reset(watchQuiet)
			if len(resp.Events) == 0 {
				continue // progress notification
			}
			cur := s.cur.Load()
			values := maps.Clone(cur.values)
			for _, ev := range resp.Events {
				if ev.Type == clientv3.EventTypeDelete {
					delete(values, string(ev.Kv.Key))
				} else {
					values[string(ev.Kv.Key)] = string(ev.Kv.Value)
				}
			}
			if err := s.publish(values, resp.Header.Revision); err != nil {
				s.log.Warn("credential store: a change in etcd breaks a rule; the last good state stays", "err", err)
				// Keep the values (and the revision) so later events apply.
				s.mu.Lock()
				s.cur.Store(&etcdState{set: cur.set, rev: resp.Header.Revision, values: values, at: cur.at})
				s.mu.Unlock()
			}
		}
	}
}

// ErrConflict is wrapped when an update lost every retry to concurrent
// writers.
var ErrConflict = errors.New("concurrent changes kept conflicting")

// ErrUnavailable is wrapped when the shared store cannot be reached: reads
// go on from the last snapshot, changes are refused.
var ErrUnavailable = errors.New("credential store unreachable")

// Update implements Store. It reads the prefix at one revision, applies
// mutate, and writes the difference in one transaction that holds only if
// no other writer committed in between (the sequence key's revision); on a
// conflict it reads again and retries. It returns once this replica's
// current Set holds the change.
func (s *EtcdStore) Update(ctx context.Context, mutate func(*Set) error) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 3*s.opts.RequestTimeout)
	defer cancel()
	for attempt := range 64 {
		if attempt > 0 {
			// Another replica came first; let it finish before reading again.
			time.Sleep(time.Duration(rand.IntN(5*attempt+5)) * time.Millisecond)
		}
		resp, err := s.kv.Get(ctx, "", clientv3.WithPrefix())
		if err != nil {
			return fmt.Errorf("etcd: %w: %w", ErrUnavailable, err)
		}
		values := make(map[string]string, len(resp.Kvs))
		var seqRev int64
		var seq int
		for _, kv := range resp.Kvs {
			values[string(kv.Key)] = string(kv.Value)
			if string(kv.Key) == keySeq {
				seqRev = kv.ModRevision
				seq, _ = strconv.Atoi(string(kv.Value))
			}
		}
		base, err := decodeEtcd(values)
		if err != nil {
			return fmt.Errorf("credential store on etcd: %w", err)
		}
		next := base.Clone()
		if err := mutate(next); err != nil {
			return err
		}
		if err := next.validate(); err != nil {
			return fmt.Errorf("credential store on etcd: %w", err)
		}
		want, err := encodeEtcd(next)
		if err != nil {
			return err
		}
		var ops []clientv3.Op
		for k, v := range want {
			if old, ok := values[k]; !ok || old != v {
				ops = append(ops, clientv3.OpPut(k, v))
			}
		}
		for k := range values {
			if _, ok := want[k]; !ok && k != keySeq {
				ops = append(ops, clientv3.OpDelete(k))
			}
		}
		if len(ops) == 0 {
			return nil
		}
		ops = append(ops, clientv3.OpPut(keySeq, strconv.Itoa(seq+1)))
		txn, err := s.kv.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(keySeq), "=", seqRev)).Then(ops...).Commit()
		if err != nil {
			return fmt.Errorf("etcd: %w: %w", ErrUnavailable, err)
		}
		if !txn.Succeeded {
			continue // another writer came first: read again
		}
		// Read your writes: publish what was just committed (the prefix is
		// now exactly want and the sequence key), unless the watch already
		// brought it or something newer.
		want[keySeq] = strconv.Itoa(seq + 1)
		return s.publish(want, txn.Header.Revision)
	}
	return fmt.Errorf("credential store on etcd: %w", ErrConflict)
}

type etcdUser struct {
	PasswordHash string    `json:"passwordHash"`
	Description  string    `json:"description,omitempty"`
	Created      time.Time `json:"created"`
	Updated      time.Time `json:"updated"`
}

type etcdKey struct {
	User    string    `json:"user"`
	Digest  string    `json:"digest"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires,omitzero"`
}

type etcdStamp struct {
	Created time.Time `json:"created"`
}

type etcdGrant struct {
	Grantor string    `json:"grantor"`
	V2      bool      `json:"v2,omitempty"`
	Created time.Time `json:"created"`
}

type etcdGroup struct {
	Privileges []string  `json:"privileges"`
	Created    time.Time `json:"created"`
}

// encodeEtcd turns a Set into its keys and values. Names never contain
// '/' (the name rules), so each key splits back unambiguously.
func encodeEtcd(s *Set) (map[string]string, error) {
	out := map[string]string{}
	put := func(key string, v any) error {
		b, err := json.Marshal(v)
		out[key] = string(b)
		return err
	}
	var err error
	for _, u := range s.Users() {
		err = errors.Join(err, put(keyUsers+u.Name, etcdUser{PasswordHash: u.PasswordHash, Description: u.Description, Created: u.Created, Updated: u.Updated}))
		for _, r := range u.Roles {
			out[keyBindings+u.Name+"/"+r] = ""
		}
	}
	for _, k := range s.APIKeys() {
		err = errors.Join(err, put(keyAPIKeys+k.Name, etcdKey{User: k.User, Digest: k.Digest, Created: k.Created, Expires: k.Expires}))
	}
	for _, r := range s.Roles() {
		err = errors.Join(err, put(keyRoles+r.Name, etcdStamp{Created: r.Created}))
	}
	for _, g := range s.Grants() {
		err = errors.Join(err, put(keyGrants+strings.Join([]string{g.Role, g.Object, g.DB, g.ObjectName, g.Privilege}, "/"),
			etcdGrant{Grantor: g.Grantor, V2: g.V2, Created: g.Created}))
	}
	for _, g := range s.PrivilegeGroups() {
		err = errors.Join(err, put(keyGroups+g.Name, etcdGroup{Privileges: g.Privileges, Created: g.Created}))
	}
	return out, err
}

// decodeEtcd builds a Set from the keys and values of the prefix; it does
// not validate (the caller does).
func decodeEtcd(values map[string]string) (*Set, error) {
	s := NewSet()
	var errs []error
	bad := func(key string, err error) { errs = append(errs, fmt.Errorf("key %s: %w", key, err)) }
	for key, v := range values {
		switch {
		case strings.HasPrefix(key, keyUsers):
			var u etcdUser
			if err := json.Unmarshal([]byte(v), &u); err != nil {
				bad(key, err)
				continue
			}
			name := strings.TrimPrefix(key, keyUsers)
			s.users[name] = &User{Name: name, PasswordHash: u.PasswordHash, Description: u.Description, Created: u.Created, Updated: u.Updated}
		case strings.HasPrefix(key, keyAPIKeys):
			var k etcdKey
			if err := json.Unmarshal([]byte(v), &k); err != nil {
				bad(key, err)
				continue
			}
			name := strings.TrimPrefix(key, keyAPIKeys)
			ak := &APIKey{Name: name, User: k.User, Digest: k.Digest, Created: k.Created, Expires: k.Expires}
			s.keys[name], s.byDigest[k.Digest] = ak, ak
		case strings.HasPrefix(key, keyRoles):
			var r etcdStamp
			if err := json.Unmarshal([]byte(v), &r); err != nil {
				bad(key, err)
				continue
			}
			name := strings.TrimPrefix(key, keyRoles)
			s.rbac.roles[name] = &Role{Name: name, Created: r.Created}
		case strings.HasPrefix(key, keyGroups):
			var g etcdGroup
			if err := json.Unmarshal([]byte(v), &g); err != nil {
				bad(key, err)
				continue
			}
			name := strings.TrimPrefix(key, keyGroups)
			s.rbac.groups[name] = &PrivilegeGroup{Name: name, Privileges: g.Privileges, Created: g.Created}
		case strings.HasPrefix(key, keyGrants):
			parts := strings.Split(strings.TrimPrefix(key, keyGrants), "/")
			var g etcdGrant
			if len(parts) != 5 {
				bad(key, errors.New("want grants/<role>/<object>/<db>/<name>/<privilege>"))
				continue
			}
			if err := json.Unmarshal([]byte(v), &g); err != nil {
				bad(key, err)
				continue
			}
			gr := &Grant{Role: parts[0], Object: parts[1], DB: parts[2], ObjectName: parts[3], Privilege: parts[4], Grantor: g.Grantor, V2: g.V2, Created: g.Created}
			s.rbac.grants[gr.Key()] = gr
		}
	}
	// Bindings last: they name users read above.
	for key := range values {
		if rest, ok := strings.CutPrefix(key, keyBindings); ok {
			user, role, found := strings.Cut(rest, "/")
			u, exists := s.users[user]
			if !found || !exists {
				bad(key, errors.New("a binding of a user that does not exist"))
				continue
			}
			u.Roles = append(u.Roles, role)
		}
	}
	for _, u := range s.users {
		slices.Sort(u.Roles)
	}
	return s, errors.Join(errs...)
}
