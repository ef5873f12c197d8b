package fakemilvus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// MaxMsgSize is the gRPC receive and send limit of the fake, large enough for
// a 64 MiB Insert with room to spare.
const MaxMsgSize = 512 << 20

// DefaultVersion is what GetVersion returns unless Options.Version is set.
const DefaultVersion = "v2.6.2-fake"

// Metadata keys that steer any call; see the package documentation.
const (
	MDEcho            = "x-fake-echo-headers"
	MDFail            = "x-fake-fail"
	MDFailMessage     = "x-fake-fail-message"
	MDFailTrailerOnly = "x-fake-fail-trailers-only"
	MDSleep           = "x-fake-sleep"
)

// Options configures a Server. The zero value is ready to use.
type Options struct {
	// Version is returned by GetVersion and as Connect's server info.
	Version string
	// Logger, when set, logs every call's method and outcome.
	Logger *slog.Logger
	// ServerOptions are appended to the fake's own gRPC options (for example
	// grpc.Creds to serve TLS).
	ServerOptions []grpc.ServerOption
}

// Server is the fake Milvus. Its data and Recorder survive Stop and Restart,
// as a real Milvus keeps its data across restarts.
type Server struct {
	opts   Options
	rec    *Recorder
	milvus *milvusService

	mu       sync.Mutex
	grpc     *grpc.Server
	addr     string
	http     *http.Server
	restAddr string
}

// New returns a stopped Server.
func New(opts Options) *Server {
	if opts.Version == "" {
		opts.Version = DefaultVersion
	}
	return &Server{opts: opts, rec: newRecorder(), milvus: newMilvusService(opts.Version)}
}

// Recorder returns the recorder shared by all of the server's services.
func (s *Server) Recorder() *Recorder { return s.rec }

// Addr returns the gRPC address of the last Start, or "".
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// RESTAddr returns the HTTP address of the last StartREST, or "".
func (s *Server) RESTAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restAddr
}

// Start serves gRPC on addr (e.g. "127.0.0.1:0") and returns the address
// actually bound. Start may be called again after Stop, typically with the
// previous address to come back on the same port.
func (s *Server) Start(addr string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.grpc != nil {
		return "", errors.New("fakemilvus: gRPC server already running")
	}
	lis, err := listen(addr)
	if err != nil {
		return "", err
	}
	opts := append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxMsgSize),
		grpc.MaxSendMsgSize(MaxMsgSize),
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.streamInterceptor),
		grpc.UnknownServiceHandler(unknownHandler),
	}, s.opts.ServerOptions...)
	g := grpc.NewServer(opts...)
	milvuspb.RegisterMilvusServiceServer(g, s.milvus)
	testgrpc.RegisterTestServiceServer(g, testService{})
	hs := health.NewServer()
	hs.SetServingStatus(milvuspb.MilvusService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(g, hs)

	s.grpc, s.addr = g, lis.Addr().String()
	go func() { _ = g.Serve(lis) }()
	return s.addr, nil
}

// listen retries briefly: right after a Stop the port can still be busy.
func listen(addr string) (net.Listener, error) {
	deadline := time.Now().Add(2 * time.Second)
	for {
		lis, err := net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			return lis, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop closes all listeners and connections at once, failing running calls,
// as a crashed backend would. The REST server, if any, stops too.
func (s *Server) Stop() { s.stop(false) }

// GracefulStop stops accepting calls and waits for running ones to finish.
func (s *Server) GracefulStop() { s.stop(true) }

func (s *Server) stop(graceful bool) {
	s.mu.Lock()
	g, h := s.grpc, s.http
	s.grpc, s.http = nil, nil
	s.mu.Unlock()
	if g != nil {
		if graceful {
			g.GracefulStop()
		} else {
			g.Stop()
		}
	}
	if h != nil {
		if graceful {
			_ = h.Shutdown(context.Background())
		} else {
			_ = h.Close()
		}
	}
}

// Restart hard-stops the server and starts it again on the same gRPC (and
// REST, if it was started) addresses.
func (s *Server) Restart() error {
	addr, restAddr := s.Addr(), s.RESTAddr()
	if addr == "" {
		return errors.New("fakemilvus: Restart before Start")
	}
	s.Stop()
	if _, err := s.Start(addr); err != nil {
		return err
	}
	if restAddr != "" {
		if _, err := s.StartREST(restAddr); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	c := s.rec.begin(ctx, info.FullMethod, false)
	err := steer(ctx)
	var resp any
	if err == nil {
		resp, err = handler(ctx, req)
	}
	s.finish(ctx, c, err)
	return resp, err
}

func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx := ss.Context()
	c := s.rec.begin(ctx, info.FullMethod, true)
	err := steer(ctx)
	if err == nil {
		err = handler(srv, ss)
	}
	s.finish(ctx, c, err)
	return err
}

func (s *Server) finish(ctx context.Context, c *Call, err error) {
	s.rec.end(ctx, c, err)
	if s.opts.Logger != nil {
		s.opts.Logger.Info("call", "method", c.Method, "code", status.Code(err).String(),
			"canceled", c.Canceled, "duration", time.Since(c.Start))
	}
}

// unknownHandler answers every method no service registers, so that such
// calls are recorded (through the stream interceptor) rather than only
// rejected by grpc-go.
func unknownHandler(_ any, ss grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(ss)
	return status.Errorf(codes.Unimplemented, "fakemilvus: unknown method %s", method)
}

// steer applies the x-fake-* metadata knobs before a handler runs. A non-nil
// error ends the call before the handler sends anything.
func steer(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	get := func(k string) string {
		if v := md.Get(k); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-fake-trailer", "t"))

	var failErr error
	if v := get(MDFail); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 16 {
			return status.Errorf(codes.InvalidArgument, "fakemilvus: bad %s value %q", MDFail, v)
		}
		msg := get(MDFailMessage)
		if msg == "" {
			msg = fmt.Sprintf("fakemilvus: failure requested with code %d", n)
		}
		if codes.Code(n) != codes.OK {
			failErr = status.Error(codes.Code(n), msg)
		}
	}
	trailersOnly := failErr != nil && get(MDFailTrailerOnly) == "1"

	if !trailersOnly {
		hdr := metadata.Pairs("x-fake-header", "h")
		if get(MDEcho) == "1" {
			for k, vs := range md {
				// Pseudo-headers and grpc- keys cannot be sent back as headers.
				if strings.HasPrefix(k, ":") || strings.HasPrefix(k, "grpc-") {
					continue
				}
				hdr.Append("x-echo-"+k, vs...)
			}
		}
		if err := grpc.SetHeader(ctx, hdr); err != nil {
			return status.Errorf(codes.Internal, "fakemilvus: set header: %v", err)
		}
	}

	if v := get(MDSleep); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return status.Errorf(codes.InvalidArgument, "fakemilvus: bad %s value %q", MDSleep, v)
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return status.FromContextError(ctxErr(ctx)).Err()
		}
	}
	return failErr
}
