package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// sample is one workload on one target in one round.
type sample struct {
	Round   int
	Calls   int     // calls, inserts or stream messages measured
	Elapsed float64 // seconds of the measured window
	// Latency percentiles in microseconds (c=1 workloads).
	P50, P90, P99, P999 float64 `json:",omitempty"`
	// Rate is calls/s, messages/s or MB/s (10^6 bytes) depending on the workload.
	Rate float64 `json:",omitempty"`
	CPU  cpuUse
	// Perf is what perf stat counted on the target over the window
	// (-perf, insert_4mib only): event name to total.
	Perf map[string]float64 `json:",omitempty"`
	lat  []float64          // µs, for the SVG
}

func (s *sample) summary() string {
	cpu := fmt.Sprintf("cpu loadgen %.2fs target %.2fs backend %.2fs", s.CPU.Loadgen, s.CPU.Target, s.CPU.Backend)
	if s.P50 > 0 {
		return fmt.Sprintf("n=%d p50 %.0fµs p99 %.0fµs  %s", s.Calls, s.P50, s.P99, cpu)
	}
	return fmt.Sprintf("n=%d rate %.1f/s  %s", s.Calls, s.Rate, cpu)
}

func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// latency runs call sequentially (concurrency 1) latCalls times or until
// latMax, and records each call's duration.
func latency(ctx context.Context, t *target, c *config, call func(context.Context) error) (*sample, error) {
	ctx, cancel := context.WithTimeout(ctx, c.latMax+10*time.Second)
	defer cancel()
	for range 50 { // re-warm this connection after the other targets ran
		if err := call(ctx); err != nil {
			return nil, err
		}
	}
	lat := make([]float64, 0, c.latCalls)
	cs := cpuSnapshot(t.PIDs, c.backend())
	start := time.Now()
	for len(lat) < c.latCalls && time.Since(start) < c.latMax {
		t0 := time.Now()
		if err := call(ctx); err != nil {
			return nil, err
		}
		lat = append(lat, float64(time.Since(t0).Nanoseconds())/1e3)
	}
	elapsed := time.Since(start)
	s := &sample{Calls: len(lat), Elapsed: elapsed.Seconds(), CPU: cs.since(cpuSnapshot(t.PIDs, c.backend())), lat: lat}
	sorted := append([]float64(nil), lat...)
	sort.Float64s(sorted)
	s.P50, s.P90, s.P99, s.P999 = percentile(sorted, .50), percentile(sorted, .90), percentile(sorted, .99), percentile(sorted, .999)
	s.Rate = float64(len(lat)) / elapsed.Seconds()
	return s, nil
}

func latencyGetVersion(ctx context.Context, t *target, c *config) (*sample, error) {
	req := &milvuspb.GetVersionRequest{}
	return latency(ctx, t, c, func(ctx context.Context) error {
		r, err := t.client.GetVersion(ctx, req)
		if err != nil {
			return err
		}
		return statusErr(r.GetStatus())
	})
}

func latencySearch(ctx context.Context, t *target, c *config, req *milvuspb.SearchRequest) (*sample, error) {
	return latency(ctx, t, c, func(ctx context.Context) error {
		r, err := t.client.Search(ctx, req)
		if err != nil {
			return err
		}
		return statusErr(r.GetStatus())
	})
}

// throughput runs conc goroutines of GetVersion on the target's one shared
// connection (as one SDK client would) and counts the calls completed in a
// window of tputDur after a short ramp.
func throughput(ctx context.Context, t *target, c *config) (*sample, error) {
	ctx, cancel := context.WithTimeout(ctx, c.tputDur+20*time.Second)
	defer cancel()
	const ramp = 300 * time.Millisecond
	var done atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	errc := make(chan error, c.conc)
	req := &milvuspb.GetVersionRequest{}
	for range c.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				r, err := t.client.GetVersion(ctx, req)
				if err == nil {
					err = statusErr(r.GetStatus())
				}
				if err != nil {
					errc <- err
					stop.Store(true)
					return
				}
				done.Add(1)
			}
		}()
	}
	time.Sleep(ramp)
	cs := cpuSnapshot(t.PIDs, c.backend())
	n0, t0 := done.Load(), time.Now()
	time.Sleep(c.tputDur)
	n1, elapsed := done.Load(), time.Since(t0)
	cpu := cs.since(cpuSnapshot(t.PIDs, c.backend()))
	stop.Store(true)
	wg.Wait()
	select {
	case err := <-errc:
		return nil, err
	default:
	}
	n := int(n1 - n0)
	return &sample{Calls: n, Elapsed: elapsed.Seconds(), Rate: float64(n) / elapsed.Seconds(), CPU: cpu}, nil
}

// inserts sends c.inserts Insert calls of about insertMiB each, one at a
// time, and reports MB/s of request payload (10^6 bytes).
func inserts(ctx context.Context, t *target, c *config, req *milvuspb.InsertRequest, size int) (*sample, error) {
	ctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	call := func() error {
		r, err := t.client.Insert(ctx, req)
		if err != nil {
			return err
		}
		if err := statusErr(r.GetStatus()); err != nil {
			return err
		}
		if r.GetInsertCnt() != int64(req.GetNumRows()) {
			return fmt.Errorf("inserted %d rows, want %d", r.GetInsertCnt(), req.GetNumRows())
		}
		return nil
	}
	if err := call(); err != nil { // warm the flow-control windows
		return nil, err
	}
	var pr *perfRun
	if c.perf {
		var err error
		if pr, err = startPerf(t.PIDs); err != nil {
			return nil, fmt.Errorf("perf stat: %w", err)
		}
	}
	cs := cpuSnapshot(t.PIDs, c.backend())
	start := time.Now()
	for range c.inserts {
		if err := call(); err != nil {
			pr.stop()
			return nil, err
		}
	}
	elapsed := time.Since(start)
	cpu := cs.since(cpuSnapshot(t.PIDs, c.backend()))
	return &sample{Calls: c.inserts, Elapsed: elapsed.Seconds(), Rate: float64(c.inserts*size) / 1e6 / elapsed.Seconds(),
		CPU: cpu, Perf: pr.stop()}, nil
}

// fullDuplex keeps streamWindow small messages in flight on one
// grpc.testing.TestService/FullDuplexCall stream (16-byte payload each way)
// and counts the responses received in streamDur after a short ramp.
func fullDuplex(ctx context.Context, t *target, c *config) (*sample, error) {
	ctx, cancel := context.WithTimeout(ctx, c.streamDur+20*time.Second)
	defer cancel()
	stream, err := testgrpc.NewTestServiceClient(t.conn).FullDuplexCall(ctx)
	if err != nil {
		return nil, err
	}
	req := &testgrpc.StreamingOutputCallRequest{
		ResponseParameters: []*testgrpc.ResponseParameters{{Size: 16}},
		Payload:            &testgrpc.Payload{Body: make([]byte, 16)},
	}
	credit := make(chan struct{}, c.streamWindow)
	for range c.streamWindow {
		credit <- struct{}{}
	}
	var stop atomic.Bool
	sendErr := make(chan error, 1)
	go func() {
		for !stop.Load() {
			select {
			case <-credit:
			case <-ctx.Done():
				sendErr <- ctx.Err()
				return
			}
			if err := stream.Send(req); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- stream.CloseSend()
	}()
	var received atomic.Int64
	recvErr := make(chan error, 1)
	go func() {
		for {
			if _, err := stream.Recv(); err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				recvErr <- err
				return
			}
			received.Add(1)
			credit <- struct{}{}
		}
	}()
	time.Sleep(200 * time.Millisecond)
	cs := cpuSnapshot(t.PIDs, c.backend())
	n0, t0 := received.Load(), time.Now()
	time.Sleep(c.streamDur)
	n1, elapsed := received.Load(), time.Since(t0)
	cpu := cs.since(cpuSnapshot(t.PIDs, c.backend()))
	stop.Store(true)
	if err := <-sendErr; err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	if err := <-recvErr; err != nil {
		return nil, fmt.Errorf("recv: %w", err)
	}
	if n1 == n0 {
		return nil, errors.New("no message came back on the stream")
	}
	n := int(n1 - n0)
	return &sample{Calls: n, Elapsed: elapsed.Seconds(), Rate: float64(n) / elapsed.Seconds(), CPU: cpu}, nil
}

// memResult is the target's resident memory (sum over its processes).
type memResult struct {
	StartKiB int64 // before any call
	IdleKiB  int64 // before any workload, after the warm-up
	ConnsKiB int64 // with memConns client connections open, each after one call
	AfterKiB int64 // a second after closing them
}

// manyConns opens n client connections to the target, makes one GetVersion
// on each, reads the target's RSS, and closes them all.
func manyConns(ctx context.Context, t *target, n int, m *memResult) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	conns := make([]*grpc.ClientConn, n)
	defer func() {
		for _, cc := range conns {
			if cc != nil {
				cc.Close()
			}
		}
	}()
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	sem := make(chan struct{}, 32)
	for i := range conns {
		cc, err := dial(t.targetSpec, t.creds)
		if err != nil {
			return err
		}
		conns[i] = cc
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r, err := milvuspb.NewMilvusServiceClient(cc).GetVersion(ctx, &milvuspb.GetVersionRequest{})
			if err == nil {
				err = statusErr(r.GetStatus())
			}
			if err != nil {
				firstErr.CompareAndSwap(nil, &err)
			}
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return *e
	}
	time.Sleep(500 * time.Millisecond)
	m.ConnsKiB = rssKiB(t.PIDs)
	for i, cc := range conns {
		cc.Close()
		conns[i] = nil
	}
	time.Sleep(time.Second)
	m.AfterKiB = rssKiB(t.PIDs)
	return nil
}
