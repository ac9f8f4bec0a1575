package site

import (
	"testing"

	"github.com/federa-dev/federa/models"
)

// TestOverlaps: an update that shares any memory with its task's model —
// the same tensor, or a slice of it — is not kept as a spare.
func TestOverlaps(t *testing.T) {
	mem := make([]float32, 100)
	model := models.Weights{"w": {Name: "w", Shape: []int{60}, Data: mem[:60]}, "b": {Name: "b", Shape: []int{0}}}
	for _, c := range []struct {
		name string
		upd  models.Weights
		want bool
	}{
		{"its own memory", models.Weights{"w": {Data: make([]float32, 60)}}, false},
		{"the model's tensor handed back", models.Weights{"w": model["w"]}, true},
		{"a tensor in the model's memory", models.Weights{"x": {Data: mem[59:61]}}, true},
		{"just past the model's memory", models.Weights{"x": {Data: mem[60:70]}}, false},
		{"empty tensors", models.Weights{"b": {}}, false},
		{"nil", nil, false},
	} {
		if got := overlaps(c.upd, model); got != c.want {
			t.Errorf("%s: overlaps = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestSpareIsTakenOnce: a spare goes to one taker.
func TestSpareIsTakenOnce(t *testing.T) {
	var s spareWeights
	w := models.Weights{"w": {Data: make([]float32, 4)}}
	s.put(w)
	if got := s.take(); got == nil || &got["w"].Data[0] != &w["w"].Data[0] {
		t.Fatal("the spare was not handed back")
	}
	if s.take() != nil {
		t.Error("the spare was handed out twice")
	}
}
