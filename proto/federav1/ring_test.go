package federav1

import (
	"bytes"
	"strings"
	"testing"
)

// TestRingTransfer: a packed vector of several chunks arrives whole, and a
// stream that is short, out of order, oversized or of float weights is
// refused, naming what is wrong.
func TestRingTransfer(t *testing.T) {
	n := MaxChunkBytes/4*2 + 5 // three chunks
	packed := make([]byte, 4*n)
	for i := range packed {
		packed[i] = byte(i * 7)
	}
	chunks := ChunkRing("t1", packed)
	if len(chunks) != 3 || !chunks[2].GetLast() || chunks[0].GetLast() {
		t.Fatalf("%d chunks", len(chunks))
	}
	a := NewRingAssembler("t1", int64(n))
	for i, c := range chunks {
		done, err := a.Add(c)
		if err != nil || done != (i == 2) {
			t.Fatalf("chunk %d: done %v, %v", i, done, err)
		}
	}
	if !bytes.Equal(a.Packed(), packed) {
		t.Fatal("the vector did not arrive whole")
	}
	for _, tc := range []struct {
		name   string
		n      int64
		chunks []*TensorChunk
		want   string
	}{
		{"short", int64(n + 1), chunks, "shape"},
		{"out of order", int64(n), []*TensorChunk{chunks[1]}, "chunks must arrive in order"},
		{"ends early", int64(n), []*TensorChunk{chunks[0], chunks[1], {TransferId: "t1", Name: RingTensor, Shape: []int64{int64(n)}, Offset: int64(2 * MaxChunkBytes / 4), Ring: true, Last: true}}, "ended with"},
		{"not a ring chunk", int64(n), []*TensorChunk{{TransferId: "t1", Name: RingTensor, Shape: []int64{int64(n)}, Data: packed[:8]}}, "not a ring chunk"},
		{"another transfer", int64(n), ChunkRing("t2", packed), "belongs to transfer"},
	} {
		a := NewRingAssembler("t1", tc.n)
		var err error
		for _, c := range tc.chunks {
			if _, err = a.Add(c); err != nil {
				break
			}
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
