package server

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/authproxy/authproxy/auth"
)

// callMetrics count calls by method label and code.
type callMetrics struct {
	calls   *prometheus.CounterVec
	seconds *prometheus.HistogramVec
}

func newCallMetrics(reg prometheus.Registerer) *callMetrics {
	m := &callMetrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authproxy_grpc_calls_total",
			Help: "gRPC calls by method and status code.",
		}, []string{"method", "code"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "authproxy_grpc_call_duration_seconds",
			Help:    "gRPC call latency by method, authentication and forwarding included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"method"}),
	}
	reg.MustRegister(m.calls, m.seconds)
	return m
}

// knownMethods bounds the method label: it holds the methods of the
// services the proxy knows, from their descriptors. Any other name, a
// made-up method under a known service included, counts as "other", so
// clients cannot grow the metric without limit.
var knownMethods = func() map[string]bool {
	known := map[string]bool{}
	for _, sd := range []grpc.ServiceDesc{milvuspb.MilvusService_ServiceDesc, healthpb.Health_ServiceDesc} {
		for _, m := range sd.Methods {
			known["/"+sd.ServiceName+"/"+m.MethodName] = true
		}
		for _, m := range sd.Streams {
			known["/"+sd.ServiceName+"/"+m.StreamName] = true
		}
	}
	return known
}()

func methodLabel(full string) string {
	if knownMethods[full] {
		return full
	}
	return "other"
}

// callObserver counts every call and, when asked, writes an access log line.
type callObserver struct {
	logger    *slog.Logger
	accessLog bool
	metrics   *callMetrics
}

func newCallObserver(logger *slog.Logger, accessLog bool, reg prometheus.Registerer) *callObserver {
	return &callObserver{logger: logger, accessLog: accessLog, metrics: newCallMetrics(reg)}
}

func (o *callObserver) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	var who *auth.Identity
	if o.accessLog {
		var ctx context.Context
		ctx, who = auth.WithIdentitySlot(ss.Context())
		ss = &contextStream{ServerStream: ss, ctx: ctx}
	}
	err := handler(srv, ss)
	o.observe(ss.Context(), info.FullMethod, who, start, err)
	return err
}

type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextStream) Context() context.Context { return s.ctx }

func (o *callObserver) observe(ctx context.Context, method string, who *auth.Identity, start time.Time, err error) {
	d := time.Since(start)
	code := status.Code(err)
	label := methodLabel(method)
	o.metrics.calls.WithLabelValues(label, code.String()).Inc()
	o.metrics.seconds.WithLabelValues(label).Observe(d.Seconds())
	if o.accessLog {
		p, _ := peer.FromContext(ctx)
		addr := ""
		if p != nil && p.Addr != nil {
			addr = p.Addr.String()
		}
		o.logger.Info("call", "method", method, "user", who.User, "source", who.Source, "code", code.String(), "duration", d, "peer", addr)
	}
}

// newLogger writes logs in format (log.format, read at start) at the
// level that log.level's builder sets.
func newLogger(format string, level *slog.LevelVar, out io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(out, opts))
	}
	return slog.New(slog.NewTextHandler(out, opts))
}
