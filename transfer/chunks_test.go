package transfer_test

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/federa-dev/federa/models"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/transfer"
)

// tensor returns a tensor of the given shape with distinct values, so a
// chunk put in the wrong place shows.
func tensor(name string, shape ...int) *models.Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = float32(i)*0.5 - 3
	}
	return &models.Tensor{Name: name, Shape: shape, Data: data}
}

func weights(ts ...*models.Tensor) models.Weights {
	w := models.Weights{}
	for _, t := range ts {
		w[t.Name] = t
	}
	return w
}

// assemble feeds chunks to a fresh Assembler and returns the weights.
func assemble(t *testing.T, id string, chunks []*federav1.TensorChunk) models.Weights {
	t.Helper()
	a := transfer.NewAssembler(id, 1<<26)
	for i, c := range chunks {
		done, err := a.Add(c)
		if err != nil {
			t.Fatalf("Add chunk %d: %v", i, err)
		}
		if want := i == len(chunks)-1; done != want {
			t.Fatalf("Add chunk %d of %d: done = %v", i, len(chunks), done)
		}
	}
	return a.Weights()
}

// sameWeights compares by key, shape and data; nil and empty shapes are
// the same shape.
func sameWeights(t *testing.T, got, want models.Weights) {
	t.Helper()
	if !slices.Equal(got.Names(), want.Names()) {
		t.Fatalf("tensors %v, want %v", got.Names(), want.Names())
	}
	for name, w := range want {
		g := got[name]
		if g.Name != name {
			t.Errorf("tensor %q has Name %q", name, g.Name)
		}
		if !slices.Equal(g.Shape, w.Shape) {
			t.Errorf("tensor %q shape %v, want %v", name, g.Shape, w.Shape)
		}
		if !slices.Equal(g.Data, w.Data) {
			t.Errorf("tensor %q data differs (%d values, want %d)", name, len(g.Data), len(w.Data))
		}
	}
}

func TestChunkRoundTrip(t *testing.T) {
	tests := []struct {
		name       string
		w          models.Weights
		maxBytes   int
		wantChunks int
	}{
		{"nil weights", nil, 0, 1},
		{"empty weights", models.Weights{}, 0, 1},
		{"zero-element tensor", weights(tensor("empty", 0)), 0, 1},
		{"zero-element matrix", weights(tensor("empty", 3, 0)), 0, 1},
		{"scalar", weights(tensor("bias")), 0, 1},
		{"logreg", weights(tensor("weight", 3, 8), tensor("bias", 3)), 0, 2},
		{"exactly one chunk", weights(tensor("w", 4)), 16, 1},
		{"one value over", weights(tensor("w", 5)), 16, 2},
		{"many small chunks", weights(tensor("w", 10, 10)), 12, 34},
		{"maxBytes not a multiple of 4", weights(tensor("w", 10)), 10, 5},
		{"maxBytes below one value", weights(tensor("w", 3)), 1, 3},
		{"negative maxBytes means default", weights(tensor("w", 10)), -1, 1},
		{"bigger than the default chunk", weights(tensor("w", 3, federav1.MaxChunkBytes/4)), 0, 3},
		{"mixed with empty tensors", weights(tensor("a", 7), tensor("b", 0), tensor("c", 2, 2), tensor("d", 1)), 8, 4 + 1 + 2 + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chunks := transfer.ChunkWeights("xfer-1", tt.w, tt.maxBytes)
			if len(chunks) != tt.wantChunks {
				t.Errorf("%d chunks, want %d", len(chunks), tt.wantChunks)
			}
			limit := tt.maxBytes
			if limit <= 0 {
				limit = federav1.MaxChunkBytes
			}
			limit = max(limit, 4) // a float32 is never split
			prevName := ""
			for i, c := range chunks {
				if len(c.GetData()) > limit {
					t.Errorf("chunk %d carries %d bytes, more than %d", i, len(c.GetData()), limit)
				}
				if c.GetTransferId() != "xfer-1" {
					t.Errorf("chunk %d has transfer id %q", i, c.GetTransferId())
				}
				if c.GetLast() != (i == len(chunks)-1) {
					t.Errorf("chunk %d of %d has Last = %v", i, len(chunks), c.GetLast())
				}
				if c.GetName() < prevName {
					t.Errorf("chunk %d for %q after %q: tensors not in name order", i, c.GetName(), prevName)
				}
				prevName = c.GetName()
			}
			sameWeights(t, assemble(t, "xfer-1", chunks), tt.w)
		})
	}
}

func TestChunkRoundTripThroughWire(t *testing.T) {
	w := weights(tensor("weight", 2, 300), tensor("bias", 2))
	w["weight"].Data[7] = float32(math.Inf(-1))
	w["weight"].Data[8] = math.SmallestNonzeroFloat32
	w["weight"].Data[9] = -0.0
	a := transfer.NewAssembler("x", 1000)
	for _, c := range transfer.ChunkWeights("x", w, 256) {
		data, err := proto.Marshal(&federav1.CoordinatorMessage{Body: &federav1.CoordinatorMessage_Chunk{Chunk: c}})
		if err != nil {
			t.Fatal(err)
		}
		var msg federav1.CoordinatorMessage
		if err := proto.Unmarshal(data, &msg); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Add(msg.GetChunk()); err != nil {
			t.Fatalf("Add: %v", err)
		}
	}
	got := a.Weights()
	for name, want := range w {
		for i := range want.Data {
			if math.Float32bits(got[name].Data[i]) != math.Float32bits(want.Data[i]) {
				t.Fatalf("%s[%d] = %v, want %v bit for bit", name, i, got[name].Data[i], want.Data[i])
			}
		}
	}
}

func TestDefaultChunksFitGRPCLimit(t *testing.T) {
	// A 10M-parameter model must go through gRPC's default 4 MiB message
	// limit once chunked.
	const params = 10_000_000
	w := weights(tensor("weight", 2, params/2-5), tensor("bias", 10))
	if got := w.NumParams(); got != params {
		t.Fatalf("test weights have %d params", got)
	}
	chunks := transfer.ChunkWeights("task-0123456789abcdef", w, 0)
	if len(chunks) < 10 {
		t.Errorf("only %d chunks for %d params", len(chunks), params)
	}
	const limit = 4 << 20
	for i, c := range chunks {
		for _, m := range []proto.Message{
			&federav1.CoordinatorMessage{Body: &federav1.CoordinatorMessage_Chunk{Chunk: c}},
			&federav1.SiteMessage{Body: &federav1.SiteMessage_Chunk{Chunk: c}},
		} {
			if n := proto.Size(m); n >= limit {
				t.Fatalf("chunk %d: %T is %d bytes, want < %d", i, m, n, limit)
			}
		}
	}
	a := transfer.NewAssembler("task-0123456789abcdef", params)
	var done bool
	for _, c := range chunks {
		var err error
		if done, err = a.Add(c); err != nil {
			t.Fatalf("Add: %v", err)
		}
	}
	if !done || a.Weights().NumParams() != params {
		t.Errorf("assembled %d params, done=%v", a.Weights().NumParams(), done)
	}
}

// floats encodes values as a chunk payload.
func floats(vs ...float32) []byte {
	b := make([]byte, 4*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func TestAssemblerErrors(t *testing.T) {
	chunk := func(name string, shape []int64, off int64, data []byte, last bool) *federav1.TensorChunk {
		return &federav1.TensorChunk{TransferId: "t", Name: name, Shape: shape, Offset: off, Data: data, Last: last}
	}
	tests := []struct {
		name   string
		limit  int64
		chunks []*federav1.TensorChunk // the last one must fail
		want   string
	}{
		{"wrong transfer id", 100, []*federav1.TensorChunk{
			{TransferId: "other", Name: "w", Shape: []int64{1}, Data: floats(1), Last: true},
		}, `belongs to transfer "other"`},
		{"wrong transfer id mid-stream", 100, []*federav1.TensorChunk{
			chunk("w", []int64{2}, 0, floats(1), false),
			{TransferId: "", Name: "w", Shape: []int64{2}, Offset: 1, Data: floats(2)},
		}, `belongs to transfer ""`},
		{"payload not whole floats", 100, []*federav1.TensorChunk{
			chunk("w", []int64{2}, 0, []byte{1, 2, 3, 4, 5}, false),
		}, "5 bytes is not whole float32 values"},
		{"first chunk not at offset 0", 100, []*federav1.TensorChunk{
			chunk("w", []int64{4}, 2, floats(1, 2), false),
		}, "offset 2, want 0"},
		{"chunk repeated", 100, []*federav1.TensorChunk{
			chunk("w", []int64{4}, 0, floats(1, 2), false),
			chunk("w", []int64{4}, 0, floats(1, 2), false),
		}, "offset 0, want 2"},
		{"chunk skipped", 100, []*federav1.TensorChunk{
			chunk("w", []int64{6}, 0, floats(1, 2), false),
			chunk("w", []int64{6}, 4, floats(5, 6), false),
		}, "offset 4, want 2"},
		{"negative offset", 100, []*federav1.TensorChunk{
			chunk("w", []int64{4}, -1, floats(1), false),
		}, "offset -1"},
		{"overrun in one chunk", 100, []*federav1.TensorChunk{
			chunk("w", []int64{2}, 0, floats(1, 2, 3), false),
		}, "overruns the tensor (0+3 > 2 values)"},
		{"overrun in a later chunk", 100, []*federav1.TensorChunk{
			chunk("w", []int64{3}, 0, floats(1, 2), false),
			chunk("w", []int64{3}, 2, floats(3, 4), false),
		}, "overruns the tensor (2+2 > 3 values)"},
		{"shape changes between chunks", 100, []*federav1.TensorChunk{
			chunk("w", []int64{2, 2}, 0, floats(1, 2), false),
			chunk("w", []int64{4}, 2, floats(3, 4), false),
		}, "shape [4] differs from earlier chunk's [2 2]"},
		{"shape grows between chunks", 100, []*federav1.TensorChunk{
			chunk("w", []int64{2}, 0, floats(1, 2), false),
			chunk("w", []int64{3}, 2, floats(3), false),
		}, "differs"},
		{"negative dimension", 100, []*federav1.TensorChunk{
			chunk("w", []int64{-2}, 0, nil, false),
		}, "dimension -2 is out of range"},
		{"one tensor over the limit", 10, []*federav1.TensorChunk{
			chunk("w", []int64{11}, 0, floats(1), false),
		}, "dimension 11 is out of range"},
		{"product over the limit", 10, []*federav1.TensorChunk{
			chunk("w", []int64{4, 3}, 0, floats(1), false),
		}, "exceeds the limit of 10 values"},
		{"dimension over the limit", 10, []*federav1.TensorChunk{
			chunk("w", []int64{0, 1 << 40}, 0, nil, false),
		}, "out of range"},
		{"tensors together over the limit", 10, []*federav1.TensorChunk{
			chunk("a", []int64{6}, 0, floats(1), false),
			chunk("b", []int64{5}, 0, floats(1), false),
		}, "transfer exceeds the limit of 10 values"},
		{"product overflows int64", math.MaxInt64, []*federav1.TensorChunk{
			chunk("w", []int64{1<<62 + 1, 4}, 0, floats(1, 2, 3, 4), true),
		}, "exceeds the limit"},
		{"chunk after last", 100, []*federav1.TensorChunk{
			chunk("w", []int64{1}, 0, floats(1), true),
			chunk("w", []int64{1}, 0, floats(1), false),
		}, "chunk after the last one"},
		{"last before the tensor is complete", 100, []*federav1.TensorChunk{
			chunk("w", []int64{4}, 0, floats(1, 2), true),
		}, `tensor "w" ended with 2 of 4 values`},
		{"last before an earlier tensor is complete", 100, []*federav1.TensorChunk{
			chunk("a", []int64{4}, 0, floats(1, 2), false),
			chunk("b", []int64{1}, 0, floats(1), true),
		}, `tensor "a" ended with 2 of 4 values`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := transfer.NewAssembler("t", tt.limit)
			for i, c := range tt.chunks {
				_, err := a.Add(c)
				if i < len(tt.chunks)-1 {
					if err != nil {
						t.Fatalf("chunk %d: %v", i, err)
					}
					continue
				}
				if err == nil {
					t.Fatalf("Add accepted the bad chunk; weights now %v", a.Weights())
				}
				if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "tensor transfer t") {
					t.Errorf("error %q, want it to name the transfer and contain %q", err, tt.want)
				}
			}
		})
	}
}

func TestAssemblerAfterLastKeepsWeights(t *testing.T) {
	w := weights(tensor("w", 3))
	a := transfer.NewAssembler("t", 100)
	for _, c := range transfer.ChunkWeights("t", w, 0) {
		if _, err := a.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	// A stray chunk after the end is refused and changes nothing.
	done, err := a.Add(&federav1.TensorChunk{TransferId: "t", Name: "w", Shape: []int64{3}, Data: floats(9, 9, 9), Last: true})
	if err == nil || !done {
		t.Errorf("Add after last = %v, %v; want done and an error", done, err)
	}
	sameWeights(t, a.Weights(), w)
}

func TestAssemblerInterleavedTensors(t *testing.T) {
	// Chunks of different tensors may interleave as long as each tensor's
	// own chunks are in order.
	a := transfer.NewAssembler("t", 100)
	seq := []*federav1.TensorChunk{
		{TransferId: "t", Name: "a", Shape: []int64{3}, Offset: 0, Data: floats(1)},
		{TransferId: "t", Name: "b", Shape: []int64{2}, Offset: 0, Data: floats(10)},
		{TransferId: "t", Name: "a", Shape: []int64{3}, Offset: 1, Data: floats(2, 3)},
		{TransferId: "t", Name: "b", Shape: []int64{2}, Offset: 1, Data: floats(20), Last: true},
	}
	for i, c := range seq {
		done, err := a.Add(c)
		if err != nil || done != (i == len(seq)-1) {
			t.Fatalf("chunk %d: done=%v err=%v", i, done, err)
		}
	}
	sameWeights(t, a.Weights(), models.Weights{
		"a": {Name: "a", Shape: []int{3}, Data: []float32{1, 2, 3}},
		"b": {Name: "b", Shape: []int{2}, Data: []float32{10, 20}},
	})
}

func ExampleChunkWeights() {
	w := models.Weights{"w": {Name: "w", Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}}}
	chunks := transfer.ChunkWeights("task-1", w, 8) // two float32 values per chunk
	a := transfer.NewAssembler("task-1", 1<<20)
	for _, c := range chunks {
		done, err := a.Add(c)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(c.GetName(), c.GetOffset(), len(c.GetData()), done)
	}
	fmt.Println(a.Weights()["w"].Shape, a.Weights()["w"].Data)
	// Output:
	// w 0 8 false
	// w 2 8 false
	// w 4 8 true
	// [2 3] [1 2 3 4 5 6]
}

func TestWeightsTransferRefusesRingChunks(t *testing.T) {
	chunks := federav1.ChunkRing("t1", make([]byte, 12))
	if _, err := transfer.NewAssembler("t1", 3).Add(chunks[0]); err == nil || !strings.Contains(err.Error(), "ring chunk") {
		t.Errorf("a ring chunk in a weights transfer: %v", err)
	}
}

// TestAssemblerReuse: given spare weights, the assembler puts a tensor of
// the same name and size into the spare's memory — every value the
// sender's, none left over — and allocates for one whose size differs.
func TestAssemblerReuse(t *testing.T) {
	w := models.Weights{"a": tensor("a", 3, 700), "b": tensor("b", 50)}
	spare := models.Weights{
		"a": {Name: "a", Shape: []int{2100}, Data: make([]float32, 2100)},
		"b": {Name: "b", Shape: []int{49}, Data: make([]float32, 49)},
	}
	for i := range spare["a"].Data {
		spare["a"].Data[i] = -1
	}
	spareA := &spare["a"].Data[0]
	a := transfer.NewAssembler("t", 1<<20)
	a.Reuse(spare)
	var done bool
	for _, c := range transfer.ChunkWeights("t", w, 4000) {
		var err error
		if done, err = a.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	if !done {
		t.Fatal("transfer not complete")
	}
	got := a.Weights()
	if &got["a"].Data[0] != spareA {
		t.Error("tensor a was not put in the spare's memory")
	}
	if !slices.Equal(got["a"].Shape, []int{3, 700}) || !slices.Equal(got["a"].Data, w["a"].Data) {
		t.Errorf("tensor a: shape %v, values differ from the sender's: %v", got["a"].Shape, !slices.Equal(got["a"].Data, w["a"].Data))
	}
	if !slices.Equal(got["b"].Data, w["b"].Data) || len(got["b"].Data) != 50 {
		t.Errorf("tensor b (the spare's is 49 values): %d values", len(got["b"].Data))
	}
}
