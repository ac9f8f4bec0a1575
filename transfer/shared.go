package transfer

import (
	"io"
	"sync"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// SharedChunk is a message holding only a tensor chunk (its field named
// "chunk", as in SiteMessage and CoordinatorMessage) that Codec sends
// without copying the chunk's payload: it encodes the fields around the
// payload and hands gRPC the payload's own memory. A model fanned out to
// many sites is not copied into an encode buffer per site, nor held in
// them while they wait for the connection; a site's update is not copied
// to be sent.
//
// The payload must not change until Release is called, which gRPC does
// once it has written the payload to the connection or dropped it (the
// stream ended); a sender that gives up on a broken stream may call it
// itself (it runs once).
//
// The bytes sent are the message's deterministic protobuf encoding, the
// same bytes WriteTo writes: a sender can hash what it sends (the site's
// egress journal) without encoding it.
type SharedChunk struct {
	msg  proto.Message
	once sync.Once
	fn   func()

	encoded sync.Once
	// The encoding: head, payload, tail. A message that is not one chunk
	// with a payload worth sharing is all head, its payload nil.
	head, payload, tail []byte
	err                 error
}

// NewSharedChunk wraps msg, which should hold a chunk in its field named
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

// WriteTo writes the bytes Codec sends for the message to w (a hash, to
// record what leaves): its deterministic encoding.
func (s *SharedChunk) WriteTo(w io.Writer) (int64, error) {
	s.encode()
	if s.err != nil {
		return 0, s.err
	}
	var n int64
	for _, b := range [][]byte{s.head, s.payload, s.tail} {
		m, err := w.Write(b)
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Size is the encoding's length in bytes.
func (s *SharedChunk) Size() int {
	s.encode()
	return len(s.head) + len(s.payload) + len(s.tail)
}

var deterministic = proto.MarshalOptions{Deterministic: true}

// encode splits the message's encoding around the chunk's payload, once.
// Fields are written in number order, as protobuf's deterministic
// encoding writes them: the chunk's fields before its payload, the
// payload's tag and length, then (tail) the fields after it.
func (s *SharedChunk) encode() {
	s.encoded.Do(func() {
		if !s.split() {
			s.head, s.payload, s.tail = nil, nil, nil
			s.head, s.err = deterministic.Marshal(s.msg)
		}
	})
}

func (s *SharedChunk) split() bool {
	m := s.msg.ProtoReflect()
	fd := m.Descriptor().Fields().ByName("chunk")
	if fd == nil || fd.Message() == nil || fd.Message().FullName() != chunkMessage || !m.Has(fd) {
		return false
	}
	others := false
	m.Range(func(f protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		others = f != fd
		return !others
	})
	if others || len(m.GetUnknown()) > 0 {
		return false
	}
	chunk := m.Get(fd).Message()
	if len(chunk.GetUnknown()) > 0 {
		return false
	}
	payload := chunk.Get(chunk.Descriptor().Fields().ByNumber(chunkDataField)).Bytes()
	if mem.IsBelowBufferPoolingThreshold(cap(payload)) {
		// gRPC would not hand such a buffer back (Release would never
		// come): it is copied like any message.
		return false
	}
	before, after := chunk.New(), chunk.New()
	chunk.Range(func(f protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case f.Number() < chunkDataField:
			before.Set(f, v)
		case f.Number() > chunkDataField:
			after.Set(f, v)
		}
		return true
	})
	b, err := deterministic.Marshal(before.Interface())
	if err != nil {
		return false
	}
	tail, err := deterministic.Marshal(after.Interface())
	if err != nil {
		return false
	}
	inner := len(b) + protowire.SizeTag(chunkDataField) + protowire.SizeBytes(len(payload)) + len(tail)
	head := protowire.AppendVarint(protowire.AppendTag(make([]byte, 0, 16+len(b)), fd.Number(), protowire.BytesType), uint64(inner))
	head = append(head, b...)
	head = protowire.AppendVarint(protowire.AppendTag(head, chunkDataField, protowire.BytesType), uint64(len(payload)))
	s.head, s.payload, s.tail = head, payload, tail
	return true
}

// buffers is what Codec hands gRPC: the payload as its own memory,
// released when gRPC frees it; copied and released at once when the
// message is not shared.
func (s *SharedChunk) buffers() (mem.BufferSlice, error) {
	s.encode()
	if s.err != nil {
		s.Release()
		return nil, s.err
	}
	if s.payload == nil {
		defer s.Release()
		return mem.BufferSlice{mem.SliceBuffer(s.head)}, nil
	}
	out := mem.BufferSlice{mem.SliceBuffer(s.head), mem.NewBuffer(&s.payload, releaser{s})}
	if len(s.tail) > 0 {
		out = append(out, mem.SliceBuffer(s.tail))
	}
	return out, nil
}

// Shares are the SharedChunks of one send, for a sender that reuses their
// payloads' memory only once every one is released.
type Shares struct {
	pending sync.WaitGroup
	chunks  []*SharedChunk
}

// Share wraps msg (as NewSharedChunk) as one of the send's chunks.
func (s *Shares) Share(msg proto.Message) *SharedChunk {
	s.pending.Add(1)
	c := NewSharedChunk(msg, s.pending.Done)
	s.chunks = append(s.chunks, c)
	return c
}

// ReleaseAll releases every chunk not yet released: the stream they went
// on ended, so gRPC never writes (or hands back) what it still holds.
func (s *Shares) ReleaseAll() {
	for _, c := range s.chunks {
		c.Release()
	}
}

// AfterRelease calls f once every chunk is released, or once done is
// closed (then it releases the rest first: see ReleaseAll); it reports,
// to f, whether gRPC released them all.
func (s *Shares) AfterRelease(done <-chan struct{}, f func(written bool)) {
	written := make(chan struct{})
	go func() { s.pending.Wait(); close(written) }()
	go func() {
		select {
		case <-written:
			f(true)
		case <-done:
			s.ReleaseAll()
			f(false)
		}
	}()
}

// releaser is the "pool" gRPC returns a shared payload to when it has
// done with it: returning it releases the SharedChunk.
type releaser struct{ s *SharedChunk }

func (r releaser) Get(n int) *[]byte { b := make([]byte, n); return &b }
func (r releaser) Put(*[]byte)       { r.s.Release() }
