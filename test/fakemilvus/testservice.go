package fakemilvus

import (
	"context"
	"errors"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// testService implements grpc.testing.TestService after the interop spec:
// payloads are zero bytes of the requested sizes and response_status is
// echoed as the call's status. The x-fake-* knobs run before it (see steer).
type testService struct {
	testgrpc.UnimplementedTestServiceServer
}

func payload(size int32) *testgrpc.Payload {
	return &testgrpc.Payload{Type: testgrpc.PayloadType_COMPRESSABLE, Body: make([]byte, size)}
}

func echoStatus(s *testgrpc.EchoStatus) error {
	if s.GetCode() == 0 {
		return nil
	}
	return status.Error(codes.Code(s.GetCode()), s.GetMessage())
}

func (testService) EmptyCall(context.Context, *testgrpc.Empty) (*testgrpc.Empty, error) {
	return &testgrpc.Empty{}, nil
}

func (testService) UnaryCall(_ context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	if err := echoStatus(req.GetResponseStatus()); err != nil {
		return nil, err
	}
	return &testgrpc.SimpleResponse{Payload: payload(req.GetResponseSize())}, nil
}

// sendAll sends the responses req asks for, honouring interval_us.
func sendAll(ctx context.Context, req *testgrpc.StreamingOutputCallRequest, send func(*testgrpc.StreamingOutputCallResponse) error) error {
	for _, p := range req.GetResponseParameters() {
		if p.GetIntervalUs() > 0 {
			select {
			case <-time.After(time.Duration(p.GetIntervalUs()) * time.Microsecond):
			case <-ctx.Done():
				return status.FromContextError(ctxErr(ctx)).Err()
			}
		}
		if err := send(&testgrpc.StreamingOutputCallResponse{Payload: payload(p.GetSize())}); err != nil {
			return err
		}
	}
	return echoStatus(req.GetResponseStatus())
}

func (testService) StreamingOutputCall(req *testgrpc.StreamingOutputCallRequest, ss testgrpc.TestService_StreamingOutputCallServer) error {
	return sendAll(ss.Context(), req, ss.Send)
}

func (testService) StreamingInputCall(ss testgrpc.TestService_StreamingInputCallServer) error {
	var total int32
	for {
		req, err := ss.Recv()
		if errors.Is(err, io.EOF) {
			return ss.SendAndClose(&testgrpc.StreamingInputCallResponse{AggregatedPayloadSize: total})
		}
		if err != nil {
			return err
		}
		total += int32(len(req.GetPayload().GetBody()))
	}
}

func (testService) FullDuplexCall(ss testgrpc.TestService_FullDuplexCallServer) error {
	for {
		req, err := ss.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := sendAll(ss.Context(), req, ss.Send); err != nil {
			return err
		}
	}
}

func (testService) HalfDuplexCall(ss testgrpc.TestService_HalfDuplexCallServer) error {
	var reqs []*testgrpc.StreamingOutputCallRequest
	for {
		req, err := ss.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		reqs = append(reqs, req)
	}
	for _, req := range reqs {
		if err := sendAll(ss.Context(), req, ss.Send); err != nil {
			return err
		}
	}
	return nil
}
