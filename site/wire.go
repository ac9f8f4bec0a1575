package site

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/transfer"
)

// encodedMessage is a SiteMessage already encoded (deterministically):
// a release is encoded once, the egress journal hashes those bytes, and
// they are what is sent — not a second encoding of the same message.
type encodedMessage []byte

// encode is m's deterministic encoding, the bytes a release's journal
// digest covers and the stream sends.
func encode(m *federav1.SiteMessage) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}

// wireCodec is gRPC's protobuf codec, except that an encodedMessage is
// sent as it is, and a CoordinatorMessage carrying a tensor chunk gets its
// payload in a reused buffer (transfer.DecodeChunkMessage; released once
// the assembler copied it), not a fresh megabyte: a site takes in the
// model twice a round. It keeps the codec's name, so the coordinator sees
// an ordinary protobuf stream.
type wireCodec struct{ proto encoding.CodecV2 }

func newWireCodec() grpc.CallOption {
	return grpc.ForceCodecV2(wireCodec{proto: encoding.GetCodecV2("proto")})
}

func (c wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	if b, ok := v.(encodedMessage); ok {
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	return c.proto.Marshal(v)
}

func (c wireCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(*federav1.CoordinatorMessage)
	if !ok || data.Len() < transfer.PayloadMinMessage {
		return c.proto.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	b := buf.ReadOnlyData()
	if ch, ok := transfer.DecodeChunkMessage(b, coordinatorChunkField); ok {
		proto.Reset(m)
		m.Body = &federav1.CoordinatorMessage_Chunk{Chunk: ch}
		return nil
	}
	return proto.Unmarshal(b, m)
}

var coordinatorChunkField = protowire.Number((&federav1.CoordinatorMessage{}).ProtoReflect().Descriptor().Fields().ByName("chunk").Number())

func (wireCodec) Name() string { return "proto" }

// sendEncoded sends a message encode made, whole, or in fragments when it
// is too large for one gRPC message — the same fragments send would make
// of the message, without encoding it again.
func (c *conn) sendEncoded(b []byte) error {
	if len(b) <= federav1.MaxWholeMessageBytes {
		c.sendMu.Lock()
		defer c.sendMu.Unlock()
		return c.stream.SendMsg(encodedMessage(b))
	}
	for _, f := range transfer.Fragments(fmt.Sprintf("s%d", c.fragments.Add(1)), b, 0) {
		c.sendMu.Lock()
		err := c.stream.Send(&federav1.SiteMessage{Body: &federav1.SiteMessage_Fragment{Fragment: f}})
		c.sendMu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}
