package transfer

import (
	"sync"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// Reused chunk payloads. Models cross the wire a megabyte at a time — a
// round of three sites' 100M-parameter updates is 1.2 GB into the
// coordinator, and each site takes the model in twice — and protobuf
// decodes each payload into a fresh allocation: new memory the kernel
// faults in and zeroes, which in a profile of the round cost more than
// the summing and hashing. A receiver that consumes a chunk's payload
// before the next (the assembler copies it, the streaming sum adds it)
// can take chunks whose payload is a reused buffer instead:
// DecodeChunkMessage, then ReleasePayload once the chunk is handled.

// payloadCap is the size of a reused payload buffer: a chunk's largest
// payload.
const payloadCap = federav1.MaxChunkBytes

// PayloadMinMessage is the smallest encoded message worth decoding with
// DecodeChunkMessage; smaller ones go to proto.Unmarshal.
const PayloadMinMessage = payloadCap / 4

var payloads = sync.Pool{New: func() any { b := make([]byte, payloadCap); return &b }}

// DecodeChunkMessage decodes b when it is an encoded message of exactly
// one field, number field, holding a TensorChunk whose payload occurs
// once: the chunk, its payload in a reused buffer. It decodes exactly as
// proto.Unmarshal would — the chunk's other fields go through
// proto.Unmarshal, only the payload's bytes are copied by hand — and for
// anything else (another field, the payload repeated, absent, mistyped or
// larger than a chunk's, a malformed message) it reports false and
// proto.Unmarshal of the whole is the caller's to do.
func DecodeChunkMessage(b []byte, field protowire.Number) (*federav1.TensorChunk, bool) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || num != field || typ != protowire.BytesType {
		return nil, false
	}
	inner, m := protowire.ConsumeBytes(b[n:])
	if m < 0 || n+m != len(b) {
		return nil, false // malformed, or more fields follow
	}
	start, end := -1, -1 // the payload field's bytes, tag included
	var payload []byte
	for off := 0; off < len(inner); {
		num, typ, n := protowire.ConsumeTag(inner[off:])
		if n < 0 {
			return nil, false
		}
		l := protowire.ConsumeFieldValue(num, typ, inner[off+n:])
		if l < 0 {
			return nil, false
		}
		if num == chunkDataField {
			if start >= 0 || typ != protowire.BytesType {
				return nil, false // repeated (the last would win) or mistyped
			}
			v, vn := protowire.ConsumeBytes(inner[off+n:])
			if vn != l {
				return nil, false
			}
			start, end, payload = off, off+n+l, v
		}
		off += n + l
	}
	if start < 0 || len(payload) > payloadCap {
		return nil, false
	}
	header := make([]byte, 0, len(inner)-(end-start))
	header = append(append(header, inner[:start]...), inner[end:]...)
	c := &federav1.TensorChunk{}
	if err := proto.Unmarshal(header, c); err != nil {
		return nil, false // proto.Unmarshal of the whole says why
	}
	c.Data = (*payloads.Get().(*[]byte))[:len(payload)]
	copy(c.Data, payload)
	return c, true
}

var chunkDataField = protowire.Number((&federav1.TensorChunk{}).ProtoReflect().Descriptor().Fields().ByName("data").Number())

// ReleasePayload returns a handled chunk's payload for reuse and clears
// it; nil and payloads of any other size are left alone. Only what
// handled the chunk may release it, and nothing may keep the payload:
// Assembler.Add copies it, SumStream.Add consumes it, as does
// federav1.RingAssembler.Add.
func ReleasePayload(c *federav1.TensorChunk) {
	if c == nil || cap(c.Data) != payloadCap {
		return
	}
	b := c.Data[:payloadCap]
	c.Data = nil
	payloads.Put(&b)
}

// Codec is gRPC's protobuf codec, except that a large message holding
// only a tensor chunk — its field named "chunk", a TensorChunk, as in
// SiteMessage and CoordinatorMessage — gets the chunk's payload in a
// reused buffer (DecodeChunkMessage), to be given back with
// ReleasePayload once the chunk is handled. It keeps the codec's name, so
// the peer sees an ordinary protobuf stream, and decodes every message
// exactly as proto.Unmarshal does.
type Codec struct{ proto encoding.CodecV2 }

// NewCodec wraps gRPC's registered protobuf codec.
func NewCodec() Codec { return Codec{proto: encoding.GetCodecV2("proto")} }

// Marshal is the protobuf codec's.
func (c Codec) Marshal(v any) (mem.BufferSlice, error) { return c.proto.Marshal(v) }

// Unmarshal decodes a chunk message with its payload in a reused buffer,
// anything else as the protobuf codec does.
func (c Codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok || data.Len() < PayloadMinMessage {
		return c.proto.Unmarshal(data, v)
	}
	fd := m.ProtoReflect().Descriptor().Fields().ByName("chunk")
	if fd == nil || fd.Message() == nil || fd.Message().FullName() != chunkMessage {
		return c.proto.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	b := buf.ReadOnlyData()
	if ch, ok := DecodeChunkMessage(b, fd.Number()); ok {
		proto.Reset(m)
		m.ProtoReflect().Set(fd, protoreflect.ValueOfMessage(ch.ProtoReflect()))
		return nil
	}
	return proto.Unmarshal(b, m)
}

// Name is the protobuf codec's, "proto".
func (Codec) Name() string { return "proto" }

var chunkMessage = (&federav1.TensorChunk{}).ProtoReflect().Descriptor().FullName()
