package coordinator

import (
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// wireCodec is gRPC's protobuf codec, except that a SiteMessage carrying
// a tensor chunk gets its payload in a buffer the coordinator reuses
// (chunkPayloads) instead of a fresh allocation. A round's updates pass
// through the coordinator a megabyte at a time — 1.2 GB a round for three
// sites' 100M-parameter updates — and each fresh megabyte is new memory
// the kernel must fault in and zero: in a profile of the round that
// copy, not the summing or hashing, was most of the coordinator's CPU.
//
// The message decodes exactly as proto.Unmarshal decodes it: the chunk's
// other fields go through proto.Unmarshal, only the payload's bytes are
// copied by hand, and anything unusual (another field beside the chunk,
// the payload repeated or absent, a small payload) is left to
// proto.Unmarshal whole.
type wireCodec struct{ proto encoding.CodecV2 }

func serverCodec() grpc.ServerOption {
	return grpc.ForceServerCodecV2(wireCodec{proto: encoding.GetCodecV2("proto")})
}

func (c wireCodec) Marshal(v any) (mem.BufferSlice, error) { return c.proto.Marshal(v) }

func (c wireCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(*federav1.SiteMessage)
	if !ok || data.Len() < chunkPayloadCap/4 {
		return c.proto.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	b := buf.ReadOnlyData()
	if unmarshalChunk(b, m) {
		return nil
	}
	return proto.Unmarshal(b, m)
}

func (wireCodec) Name() string { return "proto" }

var (
	siteChunkField = protowire.Number((&federav1.SiteMessage{}).ProtoReflect().Descriptor().Fields().ByName("chunk").Number())
	chunkDataField = protowire.Number((&federav1.TensorChunk{}).ProtoReflect().Descriptor().Fields().ByName("data").Number())
)

// unmarshalChunk decodes b into m if b is a SiteMessage of one field, a
// chunk, whose payload occurs once; the payload lands in a buffer from
// chunkPayloads. It reports false, m untouched, for anything else.
func unmarshalChunk(b []byte, m *federav1.SiteMessage) bool {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || num != siteChunkField || typ != protowire.BytesType {
		return false
	}
	inner, m2 := protowire.ConsumeBytes(b[n:])
	if m2 < 0 || n+m2 != len(b) {
		return false // malformed, or more fields follow
	}
	start, end := -1, -1 // the payload field's bytes, tag included
	var payload []byte
	for off := 0; off < len(inner); {
		num, typ, n := protowire.ConsumeTag(inner[off:])
		if n < 0 {
			return false
		}
		l := protowire.ConsumeFieldValue(num, typ, inner[off+n:])
		if l < 0 {
			return false
		}
		if num == chunkDataField {
			if start >= 0 || typ != protowire.BytesType {
				return false // repeated (the last would win) or mistyped
			}
			v, vn := protowire.ConsumeBytes(inner[off+n:])
			if vn != l {
				return false
			}
			start, end, payload = off, off+n+l, v
		}
		off += n + l
	}
	if start < 0 || len(payload) > chunkPayloadCap {
		return false
	}
	header := make([]byte, 0, len(inner)-(end-start))
	header = append(append(header, inner[:start]...), inner[end:]...)
	c := &federav1.TensorChunk{}
	if err := proto.Unmarshal(header, c); err != nil {
		return false // proto.Unmarshal of the whole says why
	}
	c.Data = takeChunkPayload(len(payload))
	copy(c.Data, payload)
	proto.Reset(m)
	m.Body = &federav1.SiteMessage_Chunk{Chunk: c}
	return true
}

// chunkPayloadCap is the size of the reused payload buffers: a chunk's
// largest payload.
const chunkPayloadCap = federav1.MaxChunkBytes

var chunkPayloads = sync.Pool{New: func() any { b := make([]byte, chunkPayloadCap); return &b }}

func takeChunkPayload(n int) []byte {
	return (*chunkPayloads.Get().(*[]byte))[:n]
}

// releaseChunkPayload returns a handled chunk's payload for reuse. What
// handles a chunk (transfer.Assembler, transfer.SumStream,
// federav1.RingAssembler) copies or consumes its payload and keeps none
// of it, so once handleSiteMessage returned the buffer is free.
func releaseChunkPayload(m *federav1.SiteMessage) {
	c := m.GetChunk()
	if c == nil || cap(c.Data) != chunkPayloadCap {
		return
	}
	b := c.Data[:chunkPayloadCap]
	c.Data = nil
	chunkPayloads.Put(&b)
}
