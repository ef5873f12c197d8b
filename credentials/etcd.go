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

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/namespace"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
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
	cli *clientv3.Client
	// members are one connection per endpoint, for requests (try picks
	// the member); the watch goes through cli's balancer.
	members   []*etcdMember
	preferred atomic.Int32 // the member that answered last
	watcher   clientv3.Watcher
	opts      EtcdOptions
	log       *slog.Logger

	cur atomic.Pointer[etcdState]
	mu  sync.Mutex // serializes publish
	// writing admits one writer of this replica at a time (only other
	// replicas conflict).
	writing chan struct{}
	// unreachableAt is when a change last failed for want of etcd (Unix
	// ns): the changes that queued behind it are refused at once, so that
	// during an outage each is refused within requestTimeout of its
	// arrival, not after its turn.
	unreachableAt atomic.Int64
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
	keyPolicies = "row-policies/"
	keySeq      = "meta/seq"
	// KeyReplicas is where replicas register themselves (package
	// ratelimit): below the prefix, so that one etcd role covers it, but
	// no part of the Set: lists skip it and writes never delete it.
	KeyReplicas = "replicas/"
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
		// A member that stops answering (frozen, partitioned) keeps its TCP
		// connection open; keepalive drops it after keepAliveTime plus
		// keepAliveTimeout so the round-robin balancer stops picking it.
		// Until then each request's own short attempt (try) steps around it.
		DialKeepAliveTime: keepAliveTime, DialKeepAliveTimeout: keepAliveTimeout,
		Logger: zap.NewNop(), // failures reach the proxy's own log, as errors
	})
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", strings.Join(opts.Endpoints, ","), err)
	}
	s := &EtcdStore{
		cli: cli, watcher: namespace.NewWatcher(cli.Watcher, opts.Prefix),
		opts: opts, log: opts.Logger, done: make(chan struct{}), writing: make(chan struct{}, 1),
	}
	for _, ep := range opts.Endpoints {
		conn, err := cli.Dial(ep) // does not block: connects in the background
		if err != nil {
			s.closeMembers()
			cli.Close()
			return nil, fmt.Errorf("etcd %s: %w", ep, err)
		}
		kv := clientv3.NewKVFromKVClient(pb.NewKVClient(conn), cli)
		s.members = append(s.members, &etcdMember{endpoint: ep, conn: conn, kv: namespace.NewKV(kv, opts.Prefix)})
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
			s.closeMembers()
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

// foreign reports whether a key below the prefix belongs to another user
// of it (the replica registry), not to the Set.
func foreign(key string) bool { return strings.HasPrefix(key, KeyReplicas) }

// Client is the store's etcd client, for the replica registry to share
// (one connection, one lease machinery); its keys go under Prefix +
// KeyReplicas.
func (s *EtcdStore) Client() *clientv3.Client { return s.cli }

// Prefix is the prefix every key of the store is under.
func (s *EtcdStore) Prefix() string { return s.opts.Prefix }

// Close stops following etcd and closes the client.
func (s *EtcdStore) Close() error {
	s.cancel()
	<-s.done
	s.closeMembers()
	return s.cli.Close()
}

func (s *EtcdStore) closeMembers() {
	for _, m := range s.members {
		m.conn.Close()
	}
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
	resp, err := s.get(ctx, keyUsers, clientv3.WithPrefix(), clientv3.WithCountOnly())
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
	// Run again after a lost answer, the create-if-absent just finds root.
	var txn *clientv3.TxnResponse
	err = s.try(ctx, func(ctx context.Context, kv clientv3.KV) (err error) {
		txn, err = kv.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(keyUsers+RootUser), "=", 0)).
			Then(clientv3.OpPut(keyUsers+RootUser, string(user))). // no role, as in Milvus: root is root
			Commit()
		return err
	})
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
	resp, err := s.get(ctx, "", clientv3.WithPrefix())
	if err != nil {
		return err
	}
	values := make(map[string]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if !foreign(string(kv.Key)) {
			values[string(kv.Key)] = string(kv.Value)
		}
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
			if !slices.ContainsFunc(resp.Events, func(ev *clientv3.Event) bool { return !foreign(string(ev.Kv.Key)) }) {
				continue // a replica came or went: nothing of the Set
			}
			cur := s.cur.Load()
			values := maps.Clone(cur.values)
			for _, ev := range resp.Events {
				if foreign(string(ev.Kv.Key)) {
					continue
				}
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
// current Set holds the change. The etcd work has requestTimeout: past
// it the change is refused as ErrUnavailable, before most clients'
// deadlines; changes queued behind one so refused are refused with it.
func (s *EtcdStore) Update(ctx context.Context, mutate func(*Set) error) error {
	arrived := time.Now().UnixNano()
	select {
	case s.writing <- struct{}{}:
		defer func() { <-s.writing }()
	case <-ctx.Done():
		return fmt.Errorf("credential store on etcd: waiting for this replica's previous change: %w", ctx.Err())
	}
	if s.unreachableAt.Load() > arrived {
		return fmt.Errorf("etcd: %w: the change before this one found etcd unreachable", ErrUnavailable)
	}
	answered, err := s.update(ctx, mutate)
	if errors.Is(err, ErrUnavailable) && !answered {
		// Not one answer in requestTimeout: etcd is out of reach, not
		// merely busy.
		s.unreachableAt.Store(time.Now().UnixNano())
	}
	return err
}

// update is Update's work; answered says whether etcd answered any of its
// requests.
func (s *EtcdStore) update(ctx context.Context, mutate func(*Set) error) (answered bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	for attempt := range 64 {
		if attempt > 0 {
			// Another replica came first; let it finish before reading again.
			time.Sleep(time.Duration(rand.IntN(5*attempt+5)) * time.Millisecond)
		}
		resp, err := s.get(ctx, "", clientv3.WithPrefix())
		if err != nil {
			return answered, fmt.Errorf("etcd: %w: %w", ErrUnavailable, err)
		}
		answered = true
		values := make(map[string]string, len(resp.Kvs))
		var seqRev int64
		var seq int
		for _, kv := range resp.Kvs {
			if foreign(string(kv.Key)) {
				continue // never deleted as "not in the Set"
			}
			values[string(kv.Key)] = string(kv.Value)
			if string(kv.Key) == keySeq {
				seqRev = kv.ModRevision
				if seq, err = parseSeq(string(kv.Value)); err != nil {
					return true, fmt.Errorf("credential store on etcd: %w", err)
				}
			}
		}
		base, err := decodeEtcd(values)
		if err != nil {
			return true, fmt.Errorf("credential store on etcd: %w", err)
		}
		next := base.Clone()
		if err := mutate(next); err != nil {
			return true, err
		}
		if err := next.validate(); err != nil {
			return true, fmt.Errorf("credential store on etcd: %w", err)
		}
		want, err := encodeEtcd(next)
		if err != nil {
			return true, err
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
			return true, nil
		}
		// The sequence value names this transaction, so that when an
		// attempt's answer is lost and a retry finds the sequence moved,
		// the retry can tell "mine committed" from "another writer's did".
		mine := strconv.Itoa(seq+1) + " " + strconv.FormatUint(rand.Uint64(), 16)
		ops = append(ops, clientv3.OpPut(keySeq, mine))
		var txn *clientv3.TxnResponse
		err = s.try(ctx, func(ctx context.Context, kv clientv3.KV) (err error) {
			txn, err = kv.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(keySeq), "=", seqRev)).
				Then(ops...).Else(clientv3.OpGet(keySeq)).Commit()
			return err
		})
		if err != nil {
			return answered, fmt.Errorf("etcd: %w: %w", ErrUnavailable, err)
		}
		committed := txn.Header.Revision
		if !txn.Succeeded {
			kvs := txn.Responses[0].GetResponseRange().GetKvs()
			if len(kvs) != 1 {
				continue
			}
			// Did an earlier attempt of this transaction win the compare
			// (its answer lost), or another writer?
			winner, err := s.seqAt(ctx, seq+1, seqRev, kvs[0])
			if err != nil {
				return true, fmt.Errorf("etcd: %w: cannot tell whether the change was made: %w", ErrUnavailable, err)
			}
			if string(winner.Value) != mine {
				continue // another writer came first: read again
			}
			committed = winner.ModRevision
		}
		// Read your writes: publish what was just committed (the prefix is
		// now exactly want and the sequence key), unless the watch already
		// brought it or something newer.
		want[keySeq] = mine
		return true, s.publish(want, committed)
	}
	return true, fmt.Errorf("credential store on etcd: %w", ErrConflict)
}

// seqAt is the sequence key as it was at count n, found in the key's
// history (which etcd keeps until a compaction) by bisecting the
// revisions between from, where the count was below n, and cur. Every
// write raises the count by exactly one, so the value at n names the one
// transaction that won the compare on count n-1, even when other writers
// have moved the key on since.
func (s *EtcdStore) seqAt(ctx context.Context, n int, from int64, cur *mvccpb.KeyValue) (*mvccpb.KeyValue, error) {
	lo, hi, found := from, cur.ModRevision, cur
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		resp, err := s.get(ctx, keySeq, clientv3.WithRev(mid))
		if err != nil {
			return nil, err
		}
		count := -1
		if len(resp.Kvs) == 1 {
			if count, err = parseSeq(string(resp.Kvs[0].Value)); err != nil {
				return nil, err
			}
		}
		if count >= n {
			hi, found = mid, resp.Kvs[0]
		} else {
			lo = mid
		}
	}
	return found, nil
}

// parseSeq reads the sequence key: a count, then (since writes name
// themselves) a space and the writer's nonce.
func parseSeq(v string) (int, error) {
	count, _, _ := strings.Cut(v, " ")
	n, err := strconv.Atoi(count)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("key %s: %q is not a count of changes", keySeq, v)
	}
	return n, nil
}

// How an etcd request steps around a member that does not answer. A
// frozen or cut-off member keeps its TCP connection open, and gRPC refuses
// a client keepalive interval under 10 s (grpc-go
// internal.KeepaliveMinPingTime), so keepalive alone drops it only after
// 10 s plus keepAliveTimeout, and etcd's round-robin balancer keeps
// sending it every third request until then. So each request goes to one
// member chosen here, with a bound per attempt well below requestTimeout;
// when an attempt times out or the member answers Unavailable (no leader,
// leader changed, connection lost), the request goes to the next member
// and the silent one is avoided for avoidFor. The bound doubles after as
// many timed-out attempts as there are members, so a slow but healthy
// cluster still gets long attempts; an attempt refused at once (no leader
// yet) does not lengthen the next.
const (
	keepAliveTime    = 10 * time.Second
	keepAliveTimeout = 2 * time.Second
	attemptFirst     = 250 * time.Millisecond
	avoidFor         = keepAliveTime + keepAliveTimeout
	// attemptPause spaces attempts that failed at once (no leader yet).
	attemptPause = 50 * time.Millisecond
)

// etcdMember is one endpoint's own connection and when try may pick it
// again after it failed (Unix ns; 0: now).
type etcdMember struct {
	endpoint   string
	conn       *grpc.ClientConn
	kv         clientv3.KV
	avoidUntil atomic.Int64
}

// lost reports a member whose connection is down (TRANSIENT_FAILURE:
// refused, reset), or that failed and whose connection is not up now
// (reconnecting, or idle since the loss). Each attempt on it would last
// its whole bound, because etcd's client retries a read refused as
// Unavailable every 25 ms until the attempt's deadline. A member that
// timed out with its connection up (frozen, leaderless) may answer the
// next attempt; a lost one is tried last.
func (m *etcdMember) lost(now int64) bool {
	st := m.conn.GetState()
	return st == connectivity.TransientFailure || m.avoidUntil.Load() > now && st != connectivity.Ready
}

// next is the member for try's next attempt: the first, round the list
// from the one after last (from the one that answered last when last is
// nil), of the best kind there is: not avoided, then avoided but
// connected, then lost. Chosen anew for each attempt, so that a member
// found dead during a request is not tried again in it while another
// answers.
func (s *EtcdStore) next(last *etcdMember) *etcdMember {
	n := len(s.members)
	first := int(s.preferred.Load())
	if last != nil {
		first = slices.Index(s.members, last) + 1
	}
	now := time.Now().UnixNano()
	var best *etcdMember
	bestKind := 3
	for k := range n {
		m := s.members[(first+k)%n]
		kind := 0
		switch {
		case m.lost(now):
			kind = 2
		case m.avoidUntil.Load() > now:
			kind = 1
		}
		if kind < bestKind {
			best, bestKind = m, kind
		}
	}
	return best
}

// unavailable reports a member's or connection's Unavailable: etcd's
// client turns the server's known errors (no leader, leader changed,
// request timed out) into rpctypes.EtcdError, the rest stay gRPC statuses.
// expiredOnTheServer reports an attempt's deadline passing on the member
// first: the client sends the deadline along (grpc-timeout), and etcd 3.4
// answers its expiry as code Unknown, "context deadline exceeded", which
// can arrive before the client's own timer fires. It is a timeout like
// any other, not an answer (seen once in a few runs of a leader kill).
func expiredOnTheServer(err error) bool {
	st, ok := status.FromError(err)
	return ok && (st.Code() == codes.DeadlineExceeded ||
		st.Code() == codes.Unknown && st.Message() == context.DeadlineExceeded.Error())
}

func unavailable(err error) bool {
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Code() == codes.Unavailable
	}
	return status.Code(err) == codes.Unavailable
}

// get is a Get through try.
func (s *EtcdStore) get(ctx context.Context, key string, opts ...clientv3.OpOption) (resp *clientv3.GetResponse, err error) {
	err = s.try(ctx, func(ctx context.Context, kv clientv3.KV) (err error) {
		resp, err = kv.Get(ctx, key, opts...)
		return err
	})
	return resp, err
}

// try runs req on one member after another until it succeeds, fails for
// a reason a retry cannot change, or ctx ends. Every request it runs must
// be safe to send twice: reads, and writes guarded by a compare that a
// first copy would spoil. Each attempt requires a leader, so a member cut
// off from its cluster refuses at once instead of holding the request
// (etcd's rpctypes.MetadataRequireLeaderKey).
func (s *EtcdStore) try(ctx context.Context, req func(context.Context, clientv3.KV) error) error {
	var last *etcdMember
	for timeouts := 0; ; {
		m := s.next(last)
		last = m
		bound := attemptFirst << min(timeouts/len(s.members), 8)
		actx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), bound)
		began := time.Now()
		err := req(actx, m.kv)
		timedOut := actx.Err() != nil || expiredOnTheServer(err)
		cancel()
		if err == nil {
			m.avoidUntil.Store(0)
			s.preferred.Store(int32(slices.Index(s.members, m)))
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		if !timedOut && !unavailable(err) {
			return err // an answer: permission denied, too large, ...
		}
		if timedOut {
			timeouts++
		}
		m.avoidUntil.Store(time.Now().Add(avoidFor).UnixNano())
		if time.Since(began) < attemptPause {
			select {
			case <-ctx.Done():
				return err
			case <-time.After(attemptPause):
			}
		}
	}
}

type etcdUser struct {
	PasswordHash string            `json:"passwordHash"`
	Description  string            `json:"description,omitempty"`
	Tags         map[string]string `json:"tags,omitempty"`
	Created      time.Time         `json:"created"`
	Updated      time.Time         `json:"updated"`
}

type etcdPolicy struct {
	Actions     []string  `json:"actions"`
	Roles       []string  `json:"roles"`
	UsingExpr   string    `json:"usingExpr,omitempty"`
	CheckExpr   string    `json:"checkExpr,omitempty"`
	Description string    `json:"description,omitempty"`
	Created     time.Time `json:"created"`
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
		err = errors.Join(err, put(keyUsers+u.Name, etcdUser{PasswordHash: u.PasswordHash, Description: u.Description, Tags: u.Tags, Created: u.Created, Updated: u.Updated}))
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
	for _, p := range s.AllRowPolicies() {
		err = errors.Join(err, put(keyPolicies+p.DB+"/"+p.Collection+"/"+p.Name, etcdPolicy{Actions: p.Actions, Roles: p.Roles,
			UsingExpr: p.UsingExpr, CheckExpr: p.CheckExpr, Description: p.Description, Created: p.Created}))
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
			s.users[name] = &User{Name: name, PasswordHash: u.PasswordHash, Description: u.Description, Tags: u.Tags, Created: u.Created, Updated: u.Updated}
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
		case strings.HasPrefix(key, keyPolicies):
			parts := strings.Split(strings.TrimPrefix(key, keyPolicies), "/")
			var p etcdPolicy
			if len(parts) != 3 {
				bad(key, errors.New("want row-policies/<db>/<collection>/<name>"))
				continue
			}
			if err := json.Unmarshal([]byte(v), &p); err != nil {
				bad(key, err)
				continue
			}
			rp := &RowPolicy{DB: parts[0], Collection: parts[1], Name: parts[2], Actions: p.Actions, Roles: p.Roles,
				UsingExpr: p.UsingExpr, CheckExpr: p.CheckExpr, Description: p.Description, Created: p.Created}
			s.policies[rp.Key()] = rp
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
