package federav1

import (
	"fmt"
)

// RingTensor names the one tensor of a ring transfer: a secure-aggregation
// masked input, elements of Z_2^32 packed little-endian, 4 bytes each
// (secagg.Pack with 32 bits).
const RingTensor = "secagg.masked"

// ChunkRing splits a packed ring vector into TensorChunks with ring set,
// at most MaxChunkBytes of payload each; the last has Last set. len(packed)
// must be a multiple of 4.
func ChunkRing(transferID string, packed []byte) []*TensorChunk {
	per := MaxChunkBytes / 4 * 4
	shape := []int64{int64(len(packed) / 4)}
	var out []*TensorChunk
	for off := 0; off < len(packed) || off == 0; off += per {
		end := min(off+per, len(packed))
		out = append(out, &TensorChunk{TransferId: transferID, Name: RingTensor, Shape: shape, Offset: int64(off / 4), Data: packed[off:end], Ring: true})
		if len(packed) == 0 {
			break
		}
	}
	out[len(out)-1].Last = true
	return out
}

// RingAssembler rebuilds a packed ring vector of exactly a known length
// from the chunks of one transfer, checking every chunk so a malformed or
// hostile stream is an error, never a panic or an unbounded allocation.
type RingAssembler struct {
	id       string
	b        []byte
	filled   int // bytes
	finished bool
}

// NewRingAssembler accepts the chunks of transferID holding n elements.
func NewRingAssembler(transferID string, n int64) *RingAssembler {
	return &RingAssembler{id: transferID, b: make([]byte, 4*n)}
}

// Add takes the next chunk. It returns true once the transfer is complete.
func (a *RingAssembler) Add(c *TensorChunk) (bool, error) {
	n := int64(len(a.b) / 4)
	switch {
	case a.finished:
		return true, fmt.Errorf("ring transfer %s: chunk after the last one", a.id)
	case c.GetTransferId() != a.id:
		return false, fmt.Errorf("ring transfer %s: chunk belongs to transfer %q", a.id, c.GetTransferId())
	case !c.GetRing() || c.GetName() != RingTensor:
		return false, fmt.Errorf("ring transfer %s: chunk of tensor %q is not a ring chunk of %q", a.id, c.GetName(), RingTensor)
	case len(c.GetShape()) != 1 || c.GetShape()[0] != n:
		return false, fmt.Errorf("ring transfer %s: shape %v, want [%d]", a.id, c.GetShape(), n)
	case len(c.GetData())%4 != 0:
		return false, fmt.Errorf("ring transfer %s: payload of %d bytes is not whole uint32 values", a.id, len(c.GetData()))
	case c.GetOffset() != int64(a.filled/4):
		return false, fmt.Errorf("ring transfer %s: chunk at offset %d, want %d (chunks must arrive in order)", a.id, c.GetOffset(), a.filled/4)
	case a.filled+len(c.GetData()) > len(a.b):
		return false, fmt.Errorf("ring transfer %s: chunk overruns the vector (%d+%d > %d values)", a.id, a.filled/4, len(c.GetData())/4, n)
	}
	a.filled += copy(a.b[a.filled:], c.GetData())
	if !c.GetLast() {
		return false, nil
	}
	if a.filled != len(a.b) {
		return false, fmt.Errorf("ring transfer %s: ended with %d of %d values", a.id, a.filled/4, n)
	}
	a.finished = true
	return true, nil
}

// Packed returns the packed vector once Add has returned true.
func (a *RingAssembler) Packed() []byte { return a.b }
