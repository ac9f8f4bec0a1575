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
// larger than a chunk's, fields around it over 4 KiB, a malformed
// message) it reports false and proto.Unmarshal of the whole is the
// caller's to do.
func DecodeChunkMessage(b []byte, field protowire.Number) (*federav1.TensorChunk, bool) {
	return decodeChunk(mem.BufferSlice{mem.SliceBuffer(b)}, field)
}

// headMax bounds the bytes read around a chunk's payload (the message's
// other fields: transfer ID, tensor name, shape, offset, flags).
const headMax = 4 << 10

// decodeChunk is DecodeChunkMessage over the buffers a message arrived
// in, without joining them: the fields around the payload are copied out
// and parsed, the payload copied once, straight into a reused buffer.
func decodeChunk(data mem.BufferSlice, field protowire.Number) (*federav1.TensorChunk, bool) {
	total := data.Len()
	var buf [headMax]byte
	head := buf[:min(total, headMax)]
	copyAt(data, 0, head)
	num, typ, n := protowire.ConsumeTag(head)
	if n < 0 || num != field || typ != protowire.BytesType {
		return nil, false
	}
	inner, m := protowire.ConsumeVarint(head[n:])
	if m < 0 || uint64(total-n-m) != inner {
		return nil, false // malformed, or more fields follow
	}
	// The chunk's fields up to its payload must lie in head.
	off := n + m
	var start, at, end int // the payload field's tag, its bytes, their end
	for {
		if off == total {
			return nil, false // no payload
		}
		num, typ, tn := protowire.ConsumeTag(head[off:])
		if tn < 0 {
			return nil, false
		}
		if num == chunkDataField {
			if typ != protowire.BytesType {
				return nil, false
			}
			l, ln := protowire.ConsumeVarint(head[off+tn:])
			if ln < 0 || l > uint64(total-off-tn-ln) || l > payloadCap {
				return nil, false
			}
			start, at = off, off+tn+ln
			end = at + int(l)
			break
		}
		l := protowire.ConsumeFieldValue(num, typ, head[off+tn:])
		if l < 0 {
			return nil, false
		}
		off += tn + l
	}
	if total-end > headMax {
		return nil, false
	}
	// The fields after the payload: well formed, no payload again (the
	// last would win).
	tail := make([]byte, total-end)
	copyAt(data, end, tail)
	for off := 0; off < len(tail); {
		num, typ, tn := protowire.ConsumeTag(tail[off:])
		if tn < 0 || num == chunkDataField {
			return nil, false
		}
		l := protowire.ConsumeFieldValue(num, typ, tail[off+tn:])
		if l < 0 {
			return nil, false
		}
		off += tn + l
	}
	c := &federav1.TensorChunk{}
	header := make([]byte, 0, start-(n+m)+len(tail))
	header = append(append(header, head[n+m:start]...), tail...)
	if err := proto.Unmarshal(header, c); err != nil {
		return nil, false // proto.Unmarshal of the whole says why
	}
	c.Data = (*payloads.Get().(*[]byte))[:end-at]
	copyAt(data, at, c.Data)
	return c, true
}

// copyAt copies len(dst) bytes of data from offset off.
func copyAt(data mem.BufferSlice, off int, dst []byte) {
	for _, b := range data {
		if len(dst) == 0 {
			return
		}
		d := b.ReadOnlyData()
		if off >= len(d) {
			off -= len(d)
			continue
		}
		n := copy(dst, d[off:])
		dst, off = dst[n:], 0
	}
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

// Marshal is the protobuf codec's, except for a *SharedChunk, whose
// payload is sent from its own memory.
func (c Codec) Marshal(v any) (mem.BufferSlice, error) {
	if s, ok := v.(*SharedChunk); ok {
		return s.buffers()
	}
	return c.proto.Marshal(v)
}

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
	if ch, ok := decodeChunk(data, fd.Number()); ok {
		proto.Reset(m)
		m.ProtoReflect().Set(fd, protoreflect.ValueOfMessage(ch.ProtoReflect()))
		return nil
	}
	return c.proto.Unmarshal(data, v)
}

// Name is the protobuf codec's, "proto".
func (Codec) Name() string { return "proto" }

var chunkMessage = (&federav1.TensorChunk{}).ProtoReflect().Descriptor().FullName()
