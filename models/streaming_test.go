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
