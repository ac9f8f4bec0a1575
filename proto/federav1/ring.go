package federav1

import (
	"encoding/binary"
	"fmt"
)

// RingTensor names the one tensor of a ring transfer: a secure-aggregation
// masked input, elements of Z_2^32.
const RingTensor = "secagg.masked"

// ChunkRing splits a vector of Z_2^32 elements into TensorChunks with ring
// set, at most MaxChunkBytes of payload each; the last has Last set.
func ChunkRing(transferID string, v []uint32) []*TensorChunk {
	per := MaxChunkBytes / 4
	shape := []int64{int64(len(v))}
	var out []*TensorChunk
	for off := 0; off < len(v) || off == 0; off += per {
		end := min(off+per, len(v))
		buf := make([]byte, 4*(end-off))
		for i, x := range v[off:end] {
			binary.LittleEndian.PutUint32(buf[4*i:], x)
		}
		out = append(out, &TensorChunk{TransferId: transferID, Name: RingTensor, Shape: shape, Offset: int64(off), Data: buf, Ring: true})
		if len(v) == 0 {
			break
		}
	}
	out[len(out)-1].Last = true
	return out
}

// RingAssembler rebuilds a ring vector of exactly a known length from the
// chunks of one transfer, checking every chunk so a malformed or hostile
// stream is an error, never a panic or an unbounded allocation.
type RingAssembler struct {
	id       string
	v        []uint32
	filled   int
	finished bool
}

// NewRingAssembler accepts the chunks of transferID holding n elements.
func NewRingAssembler(transferID string, n int64) *RingAssembler {
	return &RingAssembler{id: transferID, v: make([]uint32, n)}
}

// Add takes the next chunk. It returns true once the transfer is complete.
func (a *RingAssembler) Add(c *TensorChunk) (bool, error) {
	switch {
	case a.finished:
		return true, fmt.Errorf("ring transfer %s: chunk after the last one", a.id)
	case c.GetTransferId() != a.id:
		return false, fmt.Errorf("ring transfer %s: chunk belongs to transfer %q", a.id, c.GetTransferId())
	case !c.GetRing() || c.GetName() != RingTensor:
		return false, fmt.Errorf("ring transfer %s: chunk of tensor %q is not a ring chunk of %q", a.id, c.GetName(), RingTensor)
	case len(c.GetShape()) != 1 || c.GetShape()[0] != int64(len(a.v)):
		return false, fmt.Errorf("ring transfer %s: shape %v, want [%d]", a.id, c.GetShape(), len(a.v))
	case len(c.GetData())%4 != 0:
		return false, fmt.Errorf("ring transfer %s: payload of %d bytes is not whole uint32 values", a.id, len(c.GetData()))
	case c.GetOffset() != int64(a.filled):
		return false, fmt.Errorf("ring transfer %s: chunk at offset %d, want %d (chunks must arrive in order)", a.id, c.GetOffset(), a.filled)
	}
	n := len(c.GetData()) / 4
	if a.filled+n > len(a.v) {
		return false, fmt.Errorf("ring transfer %s: chunk overruns the vector (%d+%d > %d values)", a.id, a.filled, n, len(a.v))
	}
	for i := range n {
		a.v[a.filled+i] = binary.LittleEndian.Uint32(c.GetData()[4*i:])
	}
	a.filled += n
	if !c.GetLast() {
		return false, nil
	}
	if a.filled != len(a.v) {
		return false, fmt.Errorf("ring transfer %s: ended with %d of %d values", a.id, a.filled, len(a.v))
	}
	a.finished = true
	return true, nil
}

// Values returns the vector once Add has returned true.
func (a *RingAssembler) Values() []uint32 { return a.v }
