package sharedport

import (
	"bytes"
	"testing"

	"golang.org/x/net/http2"
)

// FuzzSniff: whatever a connection starts with, the sniffer never panics,
// reads at most maxSniffBytes, writes at most its SETTINGS once, an ACK for
// each control frame it allows and a GOAWAY, and gives one of its
// verdicts; what starts without the HTTP/2 preface is never gRPC.
func FuzzSniff(f *testing.F) {
	grpcHeaders := headerBlock(":method", "POST", ":path", "/milvus.proto.milvus.MilvusService/GetVersion", "content-type", "application/grpc")
	var seeds [][]byte
	for _, frames := range []func(*http2.Framer){
		func(fr *http2.Framer) {
			_ = fr.WriteSettings()
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: grpcHeaders, EndHeaders: true})
		},
		func(fr *http2.Framer) {
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: grpcHeaders[:4]})
			_ = fr.WriteContinuation(1, true, grpcHeaders[4:])
		},
		func(fr *http2.Framer) { _ = fr.WriteData(1, true, []byte("x")) },
		func(fr *http2.Framer) { _ = fr.WritePing(false, [8]byte{}) },
	} {
		var buf bytes.Buffer
		buf.WriteString(http2.ClientPreface)
		frames(http2.NewFramer(&buf, nil))
		seeds = append(seeds, buf.Bytes())
	}
	seeds = append(seeds, []byte("POST /v2/vectordb/entities/search HTTP/1.1\r\nHost: x\r\n\r\n"), []byte(http2.ClientPreface), nil)
	for _, s := range seeds {
		f.Add(s)
	}
	settings := []http2.Setting{{ID: http2.SettingMaxConcurrentStreams, Val: 250}, {ID: http2.SettingMaxFrameSize, Val: 1 << 20}, {ID: http2.SettingEnableConnectProtocol, Val: 1}}
	// Frame headers are 9 bytes, a PING ACK's payload 8 (the largest ACK),
	// a GOAWAY's fixed part 8 and its reason a short sentence.
	maxWritten := 9 + 6*len(settings) + maxControlFrames*(9+8) + 9 + 8 + 128
	f.Fuzz(func(t *testing.T, in []byte) {
		r := &countingReader{r: bytes.NewReader(in)}
		var w bytes.Buffer
		v := sniff(&w, r, settings)
		switch {
		case r.n > maxSniffBytes:
			t.Fatalf("read %d bytes, the limit is %d", r.n, maxSniffBytes)
		case w.Len() > maxWritten:
			t.Fatalf("wrote %d bytes while sniffing", w.Len())
		case v != other && v != isGRPC && v != broken:
			t.Fatalf("verdict %d", v)
		case v == isGRPC && !bytes.HasPrefix(in, []byte(http2.ClientPreface)):
			t.Fatalf("%q taken for gRPC without the HTTP/2 preface", in)
		}
	})
}
