package models

import (
	"bytes"
	"testing"
)

// TestWriteWeightsIsEncodeWeights: the streamed encoding is the file
// EncodeWeights builds, byte for byte, and SafetensorsPrefix is its
// beginning, so a digest hashed as the chunks arrive is the file's.
func TestWriteWeightsIsEncodeWeights(t *testing.T) {
	w := Weights{
		"layers.0.weight": {Name: "layers.0.weight", Shape: []int{3, 5}, Data: make([]float32, 15)},
		"b":               {Name: "b", Shape: []int{7}, Data: make([]float32, 7)},
		"z":               {Name: "z", Shape: []int{2, 0}, Data: []float32{}},
	}
	for _, tt := range w {
		for i := range tt.Data {
			tt.Data[i] = float32(i)*1.25 - 4
		}
	}
	want, err := EncodeWeights(w)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := WriteWeights(&got, w); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("WriteWeights wrote %d bytes, EncodeWeights %d, and they differ", got.Len(), len(want))
	}
	prefix, err := SafetensorsPrefix(w)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(want, prefix) || len(want)-len(prefix) != 4*22 {
		t.Fatalf("the prefix (%d bytes) is not the file's header before its %d data bytes", len(prefix), 4*22)
	}
}

// TestServerOptNextFromMean: the in-place step from the mean is the
// step Aggregate takes from the same updates, bit for bit, round after
// round, state included.
func TestServerOptNextFromMean(t *testing.T) {
	for _, rule := range []string{"fedadam", "fedyogi", "fedadagrad"} {
		t.Run(rule, func(t *testing.T) {
			a, _ := NewAggregator(rule, AggregatorParams{})
			b, _ := NewAggregator(rule, AggregatorParams{})
			global := Weights{"w": {Name: "w", Shape: []int{2, 50}, Data: make([]float32, 100)}}
			gb := global
			for round := range 3 {
				var ups []Update
				for s := range 3 {
					u := Weights{"w": {Name: "w", Shape: []int{2, 50}, Data: make([]float32, 100)}}
					for i := range u["w"].Data {
						u["w"].Data[i] = float32((i*(s+2)+round*7)%13)*0.1 - 0.6
					}
					ups = append(ups, Update{Weights: u, Examples: 5 + 3*s})
				}
				want, err := a.Aggregate(global, ups)
				if err != nil {
					t.Fatal(err)
				}
				mean, err := FedAvg{}.Aggregate(gb, ups)
				if err != nil {
					t.Fatal(err)
				}
				got, err := b.(FromMean).NextFromMean(gb, mean, 24)
				if err != nil {
					t.Fatal(err)
				}
				for i, x := range want["w"].Data {
					if got["w"].Data[i] != x {
						t.Fatalf("round %d w[%d]: in place %v, Aggregate %v", round, i, got["w"].Data[i], x)
					}
				}
				sa, sb := a.(Stateful).State(), b.(Stateful).State()
				for k, tt := range sa {
					for i, x := range tt.Data {
						if sb[k].Data[i] != x {
							t.Fatalf("round %d state %s[%d]: %v vs %v", round, k, i, sb[k].Data[i], x)
						}
					}
				}
				global, gb = want, got
			}
		})
	}
}
