package coordinator

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/transfer"
)

// wireCodec is gRPC's protobuf codec, except that a SiteMessage carrying
// a tensor chunk gets its payload in a reused buffer
// (transfer.DecodeChunkMessage), released once the chunk is handled
// (releaseChunkPayload), instead of a fresh megabyte. A round's updates
// pass through the coordinator a megabyte at a time, and in a profile of
// the round the fresh memory's page faults, not the summing or hashing,
// were most of the coordinator's CPU. The message decodes exactly as
// proto.Unmarshal decodes it.
type wireCodec struct{ proto encoding.CodecV2 }

func serverCodec() grpc.ServerOption {
	return grpc.ForceServerCodecV2(wireCodec{proto: encoding.GetCodecV2("proto")})
}

func (c wireCodec) Marshal(v any) (mem.BufferSlice, error) { return c.proto.Marshal(v) }

func (c wireCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(*federav1.SiteMessage)
	if !ok || data.Len() < transfer.PayloadMinMessage {
		return c.proto.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	b := buf.ReadOnlyData()
	if ch, ok := transfer.DecodeChunkMessage(b, siteChunkField); ok {
		proto.Reset(m)
		m.Body = &federav1.SiteMessage_Chunk{Chunk: ch}
		return nil
	}
	return proto.Unmarshal(b, m)
}

func (wireCodec) Name() string { return "proto" }

var siteChunkField = protowire.Number((&federav1.SiteMessage{}).ProtoReflect().Descriptor().Fields().ByName("chunk").Number())

// releaseChunkPayload returns a handled chunk's payload for reuse: what
// handles a chunk (transfer.Assembler, transfer.SumStream,
// federav1.RingAssembler) copies or consumes its payload and keeps none
// of it, so once handleSiteMessage returned the buffer is free.
func releaseChunkPayload(m *federav1.SiteMessage) { transfer.ReleasePayload(m.GetChunk()) }
