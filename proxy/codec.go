package proxy

import (
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// frame is a message in transit, kept as the wire bytes so the proxy never
// parses what it forwards.
type frame struct {
	payload mem.BufferSlice
}

// Codec passes frames through untouched and encodes every other message
// (those of the services the proxy answers itself) with the protobuf codec.
// It must be forced on both the server and the backend connection.
type Codec struct {
	fallback encoding.CodecV2
}

// NewCodec returns the raw-bytes codec with protobuf as the fallback.
func NewCodec() *Codec {
	return &Codec{fallback: encoding.GetCodecV2(proto.Name)}
}

// Marshal hands a frame's bytes to gRPC, which frees them once written.
func (c *Codec) Marshal(v any) (mem.BufferSlice, error) {
	if f, ok := v.(*frame); ok {
		out := f.payload
		f.payload = nil
		return out, nil
	}
	return c.fallback.Marshal(v)
}

// Unmarshal keeps a reference to the received bytes: gRPC frees its own
// reference when Unmarshal returns, ours goes with the next Marshal.
func (c *Codec) Unmarshal(data mem.BufferSlice, v any) error {
	if f, ok := v.(*frame); ok {
		data.Ref()
		f.payload = data
		return nil
	}
	return c.fallback.Unmarshal(data, v)
}

// Name is "proto": clients and backend see ordinary application/grpc+proto.
func (c *Codec) Name() string { return proto.Name }
