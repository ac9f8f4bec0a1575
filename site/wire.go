package site

import (
	"sync"
	"unsafe"
	"weak"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/federa-dev/federa/models"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/transfer"
)

// A release's messages are encoded deterministically: the egress journal
// records the SHA-256 of those encodings, and the same encodings are what
// is sent. The journal is written before anything leaves. A tensor chunk
// is hashed and sent from the update's own memory
// (transfer.SharedChunk: the fields around the payload encoded, the
// payload not copied); any other message is encoded twice — once to
// hash, into one buffer reused across the release, and once to send,
// into a buffer gRPC hands back when it has written it (encodeBuffers).

// encodedMessage is a SiteMessage encoded by sendRelease, sent as it is.
type encodedMessage struct{ b *[]byte }

var deterministic = proto.MarshalOptions{Deterministic: true}

// hashEncoding appends m's deterministic encoding to scratch[:0]: the
// bytes the journal's digest covers, and that sendRelease sends.
func hashEncoding(scratch []byte, m *federav1.SiteMessage) ([]byte, error) {
	return deterministic.MarshalAppend(scratch[:0], m)
}

// sendRelease sends m as hashEncoding encodes it: whole, or in fragments
// (send encodes those the same way) when it is too large for one gRPC
// message.
func (c *conn) sendRelease(m *federav1.SiteMessage) error {
	size := proto.Size(m)
	if size > federav1.MaxWholeMessageBytes {
		return c.send(m)
	}
	bp := encodeBuffers.Get(size)
	b, err := deterministic.MarshalAppend((*bp)[:0], m)
	if err != nil {
		encodeBuffers.Put(bp)
		return err
	}
	*bp = b
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.stream.SendMsg(encodedMessage{bp})
}

// sendShared sends a chunk from the update's memory, the bytes
// SharedChunk.WriteTo hashed.
func (c *conn) sendShared(m *transfer.SharedChunk) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.stream.SendMsg(m)
}

// encodeBuffers lends the buffers sendRelease encodes into; gRPC returns
// each once it has written it (mem.Buffer's pool).
var encodeBuffers = &bufferPool{}

type bufferPool struct{ p sync.Pool }

func (p *bufferPool) Get(n int) *[]byte {
	if bp, ok := p.p.Get().(*[]byte); ok && cap(*bp) >= n {
		*bp = (*bp)[:n]
		return bp
	}
	b := make([]byte, n, max(n, federav1.MaxChunkBytes+4096))
	return &b
}

func (p *bufferPool) Put(bp *[]byte) { p.p.Put(bp) }

// wireCodec is gRPC's protobuf codec, except that an encodedMessage is
// sent as it is, and a CoordinatorMessage carrying a tensor chunk gets its
// payload in a reused buffer (transfer.DecodeChunkMessage; released once
// the assembler copied it), not a fresh megabyte: a site takes in the
// model twice a round. It keeps the codec's name, so the coordinator sees
// an ordinary protobuf stream.
type wireCodec struct{ transfer.Codec }

func newWireCodec() grpc.CallOption {
	return grpc.ForceCodecV2(wireCodec{transfer.NewCodec()})
}

func (c wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	if e, ok := v.(encodedMessage); ok {
		return mem.BufferSlice{mem.NewBuffer(e.b, encodeBuffers)}, nil
	}
	return c.Codec.Marshal(v)
}

// spareWeights keeps the weights of the last task that finished, weakly,
// for the next task's assembler (transfer.Assembler.Reuse): a site
// receives the model every task, and memory still in use costs no page
// faults where fresh memory must be faulted in and zeroed. Weakly: the
// spare lasts until the next garbage collection, so an idle site holds no
// model for it.
type spareWeights struct {
	mu sync.Mutex
	p  weak.Pointer[spare]
}

type spare struct{ w models.Weights }

func (s *spareWeights) put(w models.Weights) {
	if w == nil {
		return
	}
	s.mu.Lock()
	s.p = weak.Make(&spare{w: w})
	s.mu.Unlock()
}

// take returns the spare weights, if the collector has not taken them,
// and forgets them: they are the caller's alone.
func (s *spareWeights) take() models.Weights {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := s.p.Value()
	s.p = weak.Pointer[spare]{}
	if sp == nil {
		return nil
	}
	return sp.w
}

func (c *conn) putSpare(w models.Weights) { c.spare.put(w) }
func (c *conn) takeSpare() models.Weights { return c.spare.take() }

// putSpareUpdate keeps an update that has left for the next training
// (models.IntoTrainer), the way putSpare keeps a task's model for the next
// assembler: a big model's update is as large as the model.
func (c *conn) putSpareUpdate(w models.Weights) { c.update.put(w) }
func (c *conn) takeSpareUpdate() models.Weights { return c.update.take() }

// overlaps says whether any tensor of a shares memory with one of b: an
// update that is a view of its task's model (an architecture may hand a
// tensor back unchanged) must not be kept as a second spare, or the next
// task's model and the next update would be written into the same memory.
func overlaps(a, b models.Weights) bool {
	type span struct{ lo, hi uintptr }
	var spans []span
	for _, t := range b {
		if t != nil && len(t.Data) > 0 {
			lo := uintptr(unsafe.Pointer(&t.Data[0]))
			spans = append(spans, span{lo, lo + uintptr(4*len(t.Data))})
		}
	}
	for _, t := range a {
		if t == nil || len(t.Data) == 0 {
			continue
		}
		lo := uintptr(unsafe.Pointer(&t.Data[0]))
		hi := lo + uintptr(4*len(t.Data))
		for _, s := range spans {
			if lo < s.hi && s.lo < hi {
				return true
			}
		}
	}
	return false
}
