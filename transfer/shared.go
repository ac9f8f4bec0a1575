package transfer

import (
	"sync"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// SharedChunk is a message holding only a tensor chunk (its field named
// "chunk", as in CoordinatorMessage) that Codec sends without copying the
// chunk's payload: it encodes the message's other bytes and hands gRPC
// the payload's own memory, so a model fanned out to a thousand sites is
// not copied a thousand times into encode buffers, nor held in them while
// they wait for the connection. The payload must not change until
// Release is called, which gRPC does once it has written the payload to
// the connection or dropped it (the stream ended); a sender that gives up
// on a stream whose connection died may call it itself (it runs once).
//
// The bytes on the wire are a valid encoding of the same message, with
// the payload field last; receivers decode them as any other.
type SharedChunk struct {
	msg  proto.Message
	once sync.Once
	fn   func()
}

// NewSharedChunk wraps msg, which must hold a chunk in its field named
// "chunk" and nothing else (anything else is sent as protobuf encodes it,
// copied, and released at once). release (nil: none) is called once,
// when the payload's memory is no longer read.
func NewSharedChunk(msg proto.Message, release func()) *SharedChunk {
	return &SharedChunk{msg: msg, fn: release}
}

// Release says the payload's memory is no longer read; only the first
// call counts.
func (s *SharedChunk) Release() {
	s.once.Do(func() {
		if s.fn != nil {
			s.fn()
		}
	})
}

// Message is the wrapped message.
func (s *SharedChunk) Message() proto.Message { return s.msg }

// encode is the message's encoding: its bytes before the payload, then
// the payload's own memory. ok is false for a message that is not one
// chunk with a payload worth sharing.
func (s *SharedChunk) encode() (mem.BufferSlice, bool, error) {
	m := s.msg.ProtoReflect()
	fd := m.Descriptor().Fields().ByName("chunk")
	if fd == nil || fd.Message() == nil || fd.Message().FullName() != chunkMessage || !m.Has(fd) {
		return nil, false, nil
	}
	others := false
	m.Range(func(f protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		others = f != fd
		return !others
	})
	if others || len(m.GetUnknown()) > 0 {
		return nil, false, nil
	}
	chunk := m.Get(fd).Message()
	dataFD := chunk.Descriptor().Fields().ByNumber(chunkDataField)
	payload := chunk.Get(dataFD).Bytes()
	if mem.IsBelowBufferPoolingThreshold(cap(payload)) {
		// gRPC would not hand such a buffer back (Release would never
		// come): copy it like any message.
		return nil, false, nil
	}
	// The chunk without its payload, then the payload's tag and length.
	head := chunk.New()
	chunk.Range(func(f protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if f.Number() != chunkDataField {
			head.Set(f, v)
		}
		return true
	})
	inner, err := proto.Marshal(head.Interface())
	if err != nil {
		return nil, false, err
	}
	tail := protowire.AppendVarint(protowire.AppendTag(nil, chunkDataField, protowire.BytesType), uint64(len(payload)))
	n := len(inner) + len(tail) + len(payload)
	b := protowire.AppendVarint(protowire.AppendTag(make([]byte, 0, 16+len(inner)+len(tail)), fd.Number(), protowire.BytesType), uint64(n))
	b = append(append(b, inner...), tail...)
	return mem.BufferSlice{mem.SliceBuffer(b), mem.NewBuffer(&payload, releaser{s})}, true, nil
}

// releaser is the "pool" gRPC returns a shared payload to when it has
// done with it: returning it releases the SharedChunk.
type releaser struct{ s *SharedChunk }

func (r releaser) Get(n int) *[]byte { b := make([]byte, n); return &b }
func (r releaser) Put(*[]byte)       { r.s.Release() }
