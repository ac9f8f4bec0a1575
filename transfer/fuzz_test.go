package transfer_test

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/federa-dev/federa/models"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/transfer"
)

// frame encodes chunks as the fuzz input: each a varint length and a
// marshalled TensorChunk.
func frame(t testing.TB, chunks []*federav1.TensorChunk) []byte {
	var b []byte
	for _, c := range chunks {
		data, err := proto.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		b = protowire.AppendBytes(b, data)
	}
	return b
}

// FuzzAssembler feeds arbitrary chunk sequences to an Assembler, as a
// hostile peer could. It must never panic or allocate beyond its limit,
// and whatever it completes must be consistent weights.
func FuzzAssembler(f *testing.F) {
	const limit = 1 << 12
	good := models.Weights{
		"bias":   {Name: "bias", Shape: []int{3}, Data: []float32{1, 2, 3}},
		"weight": {Name: "weight", Shape: []int{3, 4}, Data: make([]float32, 12)},
		"zero":   {Name: "zero", Shape: []int{0, 5}},
	}
	f.Add(frame(f, transfer.ChunkWeights("t", good, 8)))
	f.Add(frame(f, transfer.ChunkWeights("t", good, 0)))
	f.Add(frame(f, transfer.ChunkWeights("t", nil, 0)))
	f.Add(frame(f, transfer.ChunkWeights("other", good, 0)))
	f.Add(frame(f, []*federav1.TensorChunk{
		{TransferId: "t", Name: "w", Shape: []int64{1 << 40, 1 << 40}},
		{TransferId: "t", Name: "w", Shape: []int64{2}, Offset: 1, Data: []byte{1, 2, 3}, Last: true},
	}))
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, in []byte) {
		a := transfer.NewAssembler("t", limit)
		done := false
		for len(in) > 0 {
			data, n := protowire.ConsumeBytes(in)
			if n < 0 {
				return
			}
			in = in[n:]
			var c federav1.TensorChunk
			if proto.Unmarshal(data, &c) != nil {
				continue
			}
			ok, err := a.Add(&c)
			if done && err == nil {
				t.Fatal("Add accepted a chunk after the transfer completed")
			}
			if err != nil {
				if ok && !done {
					t.Fatalf("Add reported done together with error %v", err)
				}
				return
			}
			done = ok
		}
		if !done {
			return
		}
		total := 0
		for name, tn := range a.Weights() {
			if tn.Name != name {
				t.Fatalf("tensor %q has Name %q", name, tn.Name)
			}
			n := 1
			for _, d := range tn.Shape {
				if d < 0 {
					t.Fatalf("tensor %q has shape %v", name, tn.Shape)
				}
				n *= d
			}
			if n != len(tn.Data) {
				t.Fatalf("tensor %q has shape %v but %d values", name, tn.Shape, len(tn.Data))
			}
			total += n
		}
		if total > limit {
			t.Fatalf("assembled %d values, limit %d", total, limit)
		}
		// Completed weights chunk and assemble back to themselves.
		b := transfer.NewAssembler("t", limit)
		for _, c := range transfer.ChunkWeights("t", a.Weights(), 16) {
			if _, err := b.Add(c); err != nil {
				t.Fatalf("re-chunked weights refused: %v", err)
			}
		}
	})
}
