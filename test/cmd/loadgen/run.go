package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus-proto/go-api/v2/schemapb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// config is everything a run needs; the defaults keep `make bench` within
// about ten minutes on two cores with six targets and three rounds.
type config struct {
	targets      targetFlags
	caFile       string
	token        string
	rounds       int
	latCalls     int
	latMax       time.Duration
	conc         int
	tputDur      time.Duration
	inserts      int
	insertMiB    int
	insertDim    int
	streamDur    time.Duration
	streamWindow int
	memConns     int
	backendPIDs  string
	outDir       string
	machine      string
	notes        string
	maxRun       time.Duration
	only         string
	perf         bool
	backendList  []int
}

func (c *config) backend() []int { return c.backendList }

const (
	searchColl = "bench_search"
	insertColl = "bench_insert"
	searchDim  = 8
	searchRows = 1000
)

func runCmd(args []string) error {
	var c config
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	fs.Var(&c.targets, "target", "name=host:port[,tls][,pid=N+M][,mem][,token=user:password]; repeat; the first is the direct baseline")
	fs.StringVar(&c.caFile, "ca", "", "CA certificate for tls targets")
	fs.StringVar(&c.token, "token", "root:Milvus", "user:password sent as authorization (base64) to every target")
	fs.IntVar(&c.rounds, "rounds", 3, "rounds; each runs every workload on every target")
	fs.IntVar(&c.latCalls, "lat-calls", 3000, "calls per target per round for the c=1 latency workloads")
	fs.DurationVar(&c.latMax, "lat-max", 8*time.Second, "time limit of one c=1 latency measurement")
	fs.IntVar(&c.conc, "conc", 32, "concurrency of the throughput workload (one shared connection)")
	fs.DurationVar(&c.tputDur, "tput-dur", 3*time.Second, "measured duration of the throughput workload")
	fs.IntVar(&c.inserts, "inserts", 40, "inserts per target per round")
	fs.IntVar(&c.insertMiB, "insert-mib", 4, "payload of one insert, MiB")
	fs.IntVar(&c.insertDim, "insert-dim", 1024, "vector dimension of the insert payload")
	fs.DurationVar(&c.streamDur, "stream-dur", 2*time.Second, "measured duration of the bidirectional stream workload")
	fs.IntVar(&c.streamWindow, "stream-window", 64, "messages in flight on the bidirectional stream")
	fs.IntVar(&c.memConns, "mem-conns", 1000, "client connections of the memory test")
	fs.StringVar(&c.backendPIDs, "backend-pid", "", "pid of the backend, for its CPU use")
	fs.StringVar(&c.outDir, "out", "bench/results", "output directory")
	fs.StringVar(&c.machine, "machine", "", "extra machine lines for the report (key: value; separated by |)")
	fs.StringVar(&c.notes, "notes", "", "extra note lines for the report (separated by |)")
	fs.StringVar(&c.only, "workloads", "", "comma-separated workloads to run (default all): getversion_c1,search_c1,getversion_c32,insert_4mib,fullduplex")
	fs.BoolVar(&c.perf, "perf", false, "count the targets' system calls, context switches, CPU and instructions per MB inserted with perf stat (needs perf and root)")
	fs.DurationVar(&c.maxRun, "max-run", 12*time.Minute, "abort the whole run after this long")
	_ = fs.Parse(args)
	if len(c.targets) == 0 {
		return errors.New("no -target")
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.maxRun)
	defer cancel()
	return run(ctx, &c)
}

// target is a connected targetSpec.
type target struct {
	targetSpec
	conn   *grpc.ClientConn
	client milvuspb.MilvusServiceClient
	creds  credentials.TransportCredentials
}

func (c *config) transport(spec targetSpec) (credentials.TransportCredentials, error) {
	if !spec.TLS {
		return insecure.NewCredentials(), nil
	}
	pem, err := os.ReadFile(c.caFile)
	if err != nil {
		return nil, fmt.Errorf("target %s: -ca: %w", spec.Name, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("target %s: no certificate in %s", spec.Name, c.caFile)
	}
	return credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}), nil
}

// dial opens one client connection the way a Milvus SDK does: default
// windows, Milvus's message limits.
func dial(spec targetSpec, creds credentials.TransportCredentials) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(512<<20), grpc.MaxCallSendMsgSize(512<<20)),
	}
	if spec.Token != "" {
		token := base64.StdEncoding.EncodeToString([]byte(spec.Token))
		swap := func(ctx context.Context) context.Context {
			md, _ := metadata.FromOutgoingContext(ctx)
			md = md.Copy()
			md.Set("authorization", token)
			return metadata.NewOutgoingContext(ctx, md)
		}
		opts = append(opts,
			grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, o ...grpc.CallOption) error {
				return invoker(swap(ctx), method, req, reply, cc, o...)
			}),
			grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, o ...grpc.CallOption) (grpc.ClientStream, error) {
				return streamer(swap(ctx), desc, cc, method, o...)
			}))
	}
	return grpc.NewClient(spec.Addr, opts...)
}

func run(ctx context.Context, c *config) error {
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", base64.StdEncoding.EncodeToString([]byte(c.token)))
	var targets []*target
	for _, spec := range c.targets {
		creds, err := c.transport(spec)
		if err != nil {
			return err
		}
		conn, err := dial(spec, creds)
		if err != nil {
			return err
		}
		defer conn.Close()
		targets = append(targets, &target{targetSpec: spec, conn: conn, client: milvuspb.NewMilvusServiceClient(conn), creds: creds})
	}
	c.backendList = parsePIDs(c.backendPIDs)

	logf("setting up collections on %s", targets[0].Name)
	if err := setup(ctx, targets[0].client, c); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	searchReq := newSearchRequest()
	insertReq := newInsertRequest(c.insertMiB<<20, c.insertDim)
	insertBytes := proto.Size(insertReq)

	// Resident memory before any call (the processes just started).
	startRSS := map[string]int64{}
	for _, t := range targets {
		startRSS[t.Name] = rssKiB(t.PIDs)
	}
	// Warm-up: connections, the proxies' credential cache, TLS sessions.
	for _, t := range targets {
		if err := warmup(ctx, t, searchReq); err != nil {
			return fmt.Errorf("%s: warm-up: %w", t.Name, err)
		}
	}

	res := &results{Started: time.Now(), LoadAvgStart: loadAvg(), Rounds: c.rounds, Conc: c.conc, InsertBytes: insertBytes, LatCalls: c.latCalls,
		MemConns: c.memConns, StreamWindow: c.streamWindow}
	for _, t := range targets {
		res.Targets = append(res.Targets, t.Name)
	}

	// Memory first, before any workload has grown a heap.
	logf("memory: idle RSS and %d connections", c.memConns)
	res.Memory = map[string]*memResult{}
	for _, t := range targets {
		if len(t.PIDs) == 0 || t.Name == targets[0].Name {
			continue
		}
		m := &memResult{StartKiB: startRSS[t.Name], IdleKiB: rssKiB(t.PIDs)}
		if t.Mem {
			if err := manyConns(ctx, t, c.memConns, m); err != nil {
				return fmt.Errorf("%s: memory test: %w", t.Name, err)
			}
		}
		res.Memory[t.Name] = m
		logf("  %-10s idle %.1f MiB, with %d conns %.1f MiB, after close %.1f MiB", t.Name,
			float64(m.IdleKiB)/1024, c.memConns, float64(m.ConnsKiB)/1024, float64(m.AfterKiB)/1024)
	}

	workloads := []workload{
		{name: "getversion_c1", run: func(t *target) (*sample, error) { return latencyGetVersion(ctx, t, c) }},
		{name: "search_c1", run: func(t *target) (*sample, error) { return latencySearch(ctx, t, c, searchReq) }},
		{name: "getversion_c32", run: func(t *target) (*sample, error) { return throughput(ctx, t, c) }},
		{name: "insert_4mib", run: func(t *target) (*sample, error) { return inserts(ctx, t, c, insertReq, insertBytes) }},
		{name: "fullduplex", run: func(t *target) (*sample, error) { return fullDuplex(ctx, t, c) }},
	}
	if c.only != "" {
		var kept []workload
		for _, w := range workloads {
			if strings.Contains(","+c.only+",", ","+w.name+",") {
				kept = append(kept, w)
			}
		}
		workloads = kept
	}
	res.Samples = map[string]map[string][]*sample{}
	for _, w := range workloads {
		res.Samples[w.name] = map[string][]*sample{}
	}
	for r := range c.rounds {
		for _, w := range workloads {
			// Rotate the order each round so no target always runs first.
			for i := range targets {
				t := targets[(i+r)%len(targets)]
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("run stopped: %w", err)
				}
				s, err := w.run(t)
				if err != nil {
					return fmt.Errorf("round %d, %s, %s: %w", r+1, w.name, t.Name, err)
				}
				s.Round = r + 1
				res.Samples[w.name][t.Name] = append(res.Samples[w.name][t.Name], s)
				logf("round %d %-15s %-10s %s", r+1, w.name, t.Name, s.summary())
			}
		}
	}
	res.Finished = time.Now()
	res.LoadAvgEnd = loadAvg()
	res.Machine = machineInfo(c.machine)
	res.Notes = splitBar(c.notes)

	if err := os.MkdirAll(c.outDir, 0o755); err != nil {
		return err
	}
	raw, _ := json.MarshalIndent(res, "", " ")
	if err := os.WriteFile(filepath.Join(c.outDir, "results.json"), raw, 0o644); err != nil {
		return err
	}
	return writeReport(res, c.outDir)
}

// reportCmd writes results.md and latency.svg again from a run's
// results.json (after a change to how they are written).
func reportCmd(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	dir := fs.String("dir", "bench/results", "the directory of the run's results.json, where the report is written")
	_ = fs.Parse(args)
	raw, err := os.ReadFile(filepath.Join(*dir, "results.json"))
	if err != nil {
		return err
	}
	var res results
	if err := json.Unmarshal(raw, &res); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(*dir, "results.json"), err)
	}
	return writeReport(&res, *dir)
}

func writeReport(res *results, dir string) error {
	md := res.markdown()
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(md), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "latency.svg"), []byte(res.svg()), 0o644); err != nil {
		return err
	}
	fmt.Print(md)
	return nil
}

type workload struct {
	name string
	run  func(*target) (*sample, error)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

func parsePIDs(s string) []int {
	var out []int
	for _, p := range splitPlus(s) {
		if n, err := strconv.Atoi(p); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// statusErr turns a Milvus status that is not Success into an error.
func statusErr(st *commonpb.Status) error {
	if st.GetErrorCode() != commonpb.ErrorCode_Success || st.GetCode() != 0 {
		return fmt.Errorf("milvus status %v/%d: %s", st.GetErrorCode(), st.GetCode(), st.GetReason())
	}
	return nil
}

func kv(k, v string) *commonpb.KeyValuePair { return &commonpb.KeyValuePair{Key: k, Value: v} }

func schemaBytes(name string, dim int) []byte {
	s := &schemapb.CollectionSchema{Name: name, Fields: []*schemapb.FieldSchema{
		{Name: "id", DataType: schemapb.DataType_Int64, IsPrimaryKey: true},
		{Name: "vec", DataType: schemapb.DataType_FloatVector, TypeParams: []*commonpb.KeyValuePair{kv("dim", strconv.Itoa(dim))}},
	}}
	b, _ := proto.Marshal(s)
	return b
}

// setup creates the two collections on the backend (through the direct
// target): a small one to search, and one whose rows every insert replaces
// (same primary keys each time), so the fake's memory stays flat.
func setup(ctx context.Context, client milvuspb.MilvusServiceClient, c *config) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, coll := range []struct {
		name string
		dim  int
	}{{searchColl, searchDim}, {insertColl, c.insertDim}} {
		if st, err := client.DropCollection(ctx, &milvuspb.DropCollectionRequest{CollectionName: coll.name}); err != nil || statusErr(st) != nil {
			return fmt.Errorf("drop %s: %v %v", coll.name, err, statusErr(st))
		}
		st, err := client.CreateCollection(ctx, &milvuspb.CreateCollectionRequest{CollectionName: coll.name, Schema: schemaBytes(coll.name, coll.dim), ShardsNum: 1})
		if err != nil {
			return err
		}
		if err := statusErr(st); err != nil {
			return fmt.Errorf("create %s: %w", coll.name, err)
		}
	}
	ids := make([]int64, searchRows)
	vecs := make([]float32, searchRows*searchDim)
	for i := range ids {
		ids[i] = int64(i)
		for j := range searchDim {
			vecs[i*searchDim+j] = float32(math.Sin(float64(i*searchDim + j)))
		}
	}
	res, err := client.Insert(ctx, &milvuspb.InsertRequest{CollectionName: searchColl, NumRows: searchRows, FieldsData: []*schemapb.FieldData{
		int64Field("id", ids), floatVecField("vec", searchDim, vecs),
	}})
	if err != nil {
		return err
	}
	if err := statusErr(res.GetStatus()); err != nil {
		return err
	}
	if res.GetInsertCnt() != searchRows {
		return fmt.Errorf("inserted %d rows, want %d", res.GetInsertCnt(), searchRows)
	}
	return nil
}

func int64Field(name string, v []int64) *schemapb.FieldData {
	return &schemapb.FieldData{Type: schemapb.DataType_Int64, FieldName: name, Field: &schemapb.FieldData_Scalars{
		Scalars: &schemapb.ScalarField{Data: &schemapb.ScalarField_LongData{LongData: &schemapb.LongArray{Data: v}}}}}
}

func floatVecField(name string, dim int, v []float32) *schemapb.FieldData {
	return &schemapb.FieldData{Type: schemapb.DataType_FloatVector, FieldName: name, Field: &schemapb.FieldData_Vectors{
		Vectors: &schemapb.VectorField{Dim: int64(dim), Data: &schemapb.VectorField_FloatVector{FloatVector: &schemapb.FloatArray{Data: v}}}}}
}

// newSearchRequest is one nq=1 top-10 L2 search of the small collection.
func newSearchRequest() *milvuspb.SearchRequest {
	q := make([]byte, 4*searchDim)
	for j := range searchDim {
		binary.LittleEndian.PutUint32(q[4*j:], math.Float32bits(float32(math.Cos(float64(j)))))
	}
	pg, _ := proto.Marshal(&commonpb.PlaceholderGroup{Placeholders: []*commonpb.PlaceholderValue{
		{Tag: "$0", Type: commonpb.PlaceholderType_FloatVector, Values: [][]byte{q}},
	}})
	return &milvuspb.SearchRequest{
		CollectionName: searchColl,
		SearchInput:    &milvuspb.SearchRequest_PlaceholderGroup{PlaceholderGroup: pg},
		DslType:        commonpb.DslType_BoolExprV1,
		SearchParams:   []*commonpb.KeyValuePair{kv("anns_field", "vec"), kv("topk", "10"), kv("metric_type", "L2"), kv("params", "{}")},
		Nq:             1,
	}
}

// newInsertRequest is about size bytes of float vectors of dimension dim,
// with primary keys 0..rows-1 (every insert replaces the previous rows).
func newInsertRequest(size, dim int) *milvuspb.InsertRequest {
	rows := max(1, size/(4*dim))
	ids := make([]int64, rows)
	vecs := make([]float32, rows*dim)
	for i := range ids {
		ids[i] = int64(i)
	}
	for i := range vecs {
		vecs[i] = float32(i%997) / 997
	}
	return &milvuspb.InsertRequest{CollectionName: insertColl, NumRows: uint32(rows), FieldsData: []*schemapb.FieldData{
		int64Field("id", ids), floatVecField("vec", dim, vecs),
	}}
}

func warmup(ctx context.Context, t *target, search *milvuspb.SearchRequest) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for range 300 {
		v, err := t.client.GetVersion(ctx, &milvuspb.GetVersionRequest{})
		if err != nil {
			return err
		}
		if err := statusErr(v.GetStatus()); err != nil {
			return err
		}
	}
	for range 100 {
		r, err := t.client.Search(ctx, search)
		if err != nil {
			return err
		}
		if err := statusErr(r.GetStatus()); err != nil {
			return err
		}
		if n := len(r.GetResults().GetScores()); n != 10 {
			return fmt.Errorf("search returned %d hits, want 10", n)
		}
	}
	return nil
}
