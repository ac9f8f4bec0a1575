package models

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/nlpodyssey/safetensors"
)

// rawFile assembles a safetensors file from a header (a value to marshal,
// or a string used verbatim) and data bytes without any validation, to
// produce malformed inputs.
func rawFile(t *testing.T, header any, data []byte) []byte {
	t.Helper()
	h, ok := header.(string)
	if !ok {
		b, err := json.Marshal(header)
		if err != nil {
			t.Fatal(err)
		}
		h = string(b)
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	out = append(out, h...)
	return append(out, data...)
}

// buildFile serializes tensors and metadata with the library directly,
// bypassing Model validation, to produce well-formed files with bad content.
func buildFile(t *testing.T, tensors Weights, meta map[string]string) []byte {
	t.Helper()
	views, err := tensorViews(tensors)
	if err != nil {
		t.Fatal(err)
	}
	b, err := safetensors.Serialize(views, meta)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type parsedTensor struct {
	dtype string
	shape []int
	data  []float32
}

// parseIndependently reads a safetensors file the way a ~20-line numpy
// script would, without the library, and checks the layout promises: 8-byte
// little-endian header length, 8-byte aligned header, keys in sorted order
// with contiguous offsets from 0 to the end of the file.
func parseIndependently(t *testing.T, b []byte) (map[string]parsedTensor, map[string]string) {
	t.Helper()
	if len(b) < 8 {
		t.Fatalf("file is %d bytes", len(b))
	}
	n := binary.LittleEndian.Uint64(b)
	if n%8 != 0 {
		t.Errorf("header length %d is not 8-byte aligned", n)
	}
	header, body := b[8:8+n], b[8+n:]
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(header, &raw); err != nil {
		t.Fatalf("header is not JSON: %v", err)
	}
	var meta map[string]string
	if m, ok := raw["__metadata__"]; ok {
		if err := json.Unmarshal(m, &meta); err != nil {
			t.Fatalf("metadata is not a string map: %v", err)
		}
		delete(raw, "__metadata__")
	}
	names := make([]string, 0, len(raw))
	for name := range raw {
		names = append(names, name)
	}
	slices.Sort(names)
	// Keys appear in sorted order in the header text itself.
	last := -1
	for _, name := range names {
		i := bytes.Index(header, []byte(`"`+name+`":`))
		if i < last {
			t.Errorf("key %q is out of order in the header", name)
		}
		last = i
	}
	tensors := map[string]parsedTensor{}
	next := 0
	for _, name := range names {
		var info struct {
			Dtype       string `json:"dtype"`
			Shape       []int  `json:"shape"`
			DataOffsets [2]int `json:"data_offsets"`
		}
		if err := json.Unmarshal(raw[name], &info); err != nil {
			t.Fatalf("tensor %q: %v", name, err)
		}
		if info.DataOffsets[0] != next {
			t.Errorf("tensor %q starts at %d, want %d (contiguous, sorted)", name, info.DataOffsets[0], next)
		}
		next = info.DataOffsets[1]
		count := 1
		for _, d := range info.Shape {
			count *= d
		}
		if info.DataOffsets[1]-info.DataOffsets[0] != 4*count {
			t.Errorf("tensor %q spans %d bytes, shape %v needs %d", name, info.DataOffsets[1]-info.DataOffsets[0], info.Shape, 4*count)
		}
		vals := make([]float32, count)
		for i := range vals {
			vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[info.DataOffsets[0]+4*i:]))
		}
		tensors[name] = parsedTensor{info.Dtype, info.Shape, vals}
	}
	if next != len(body) {
		t.Errorf("tensor data ends at %d, body is %d bytes", next, len(body))
	}
	return tensors, meta
}

func TestEncodeDecodeWeights(t *testing.T) {
	w := Weights{
		"layer.0.weight": {Name: "layer.0.weight", Shape: []int{2, 3}, Data: []float32{1, -2, 3.5, 0, math.SmallestNonzeroFloat32, math.MaxFloat32}},
		"layer.0.bias":   {Name: "layer.0.bias", Shape: []int{2}, Data: []float32{-0.25, 7}},
		"empty":          {Name: "empty", Shape: []int{0, 4}, Data: []float32{}},
	}
	b, err := EncodeWeights(w)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeWeights(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, w) {
		t.Errorf("round trip changed weights:\n got %+v\nwant %+v", dump(got), dump(w))
	}
	parsed, meta := parseIndependently(t, b)
	if meta != nil {
		t.Errorf("unexpected metadata %v", meta)
	}
	for name, want := range w {
		p := parsed[name]
		if p.dtype != "F32" || !reflect.DeepEqual(p.shape, want.Shape) || !slices.Equal(p.data, want.Data) {
			t.Errorf("independent parse of %q = %+v, want %v %v", name, p, want.Shape, want.Data)
		}
	}

	t.Run("encode errors", func(t *testing.T) {
		tests := []struct {
			name string
			w    Weights
			want string
		}{
			{"scalar", Weights{"s": {Shape: []int{}, Data: []float32{1}}}, `tensor "s" is a scalar`},
			{"nan", Weights{"x": {Shape: []int{1}, Data: []float32{float32(math.NaN())}}}, `tensor "x" has non-finite value`},
			{"reserved name", Weights{"__metadata__": {Shape: []int{1}, Data: []float32{1}}}, `invalid tensor name "__metadata__"`},
			{"empty name", Weights{"": {Shape: []int{1}, Data: []float32{1}}}, `invalid tensor name ""`},
			{"shape mismatch", Weights{"x": {Shape: []int{3}, Data: []float32{1}}}, `tensor "x" has 1 values, shape [3] needs 3`},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				_, err := EncodeWeights(tc.w)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.want)
				}
			})
		}
	})
}

func TestDecodeWeightsMalformed(t *testing.T) {
	good, err := EncodeWeights(Weights{"a": {Shape: []int{2}, Data: []float32{1, 2}}, "b": {Shape: []int{1}, Data: []float32{3}}})
	if err != nil {
		t.Fatal(err)
	}
	twelve := make([]byte, 12)
	tensor := func(dtype string, shape []int, s, e int) map[string]any {
		return map[string]any{"dtype": dtype, "shape": shape, "data_offsets": []int{s, e}}
	}
	hugeLen := binary.LittleEndian.AppendUint64(nil, 1<<40)
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "truncated file: 0 bytes"},
		{"short length", good[:7], "truncated file: 7 bytes"},
		{"header length beyond file", append(hugeLen, good[8:]...), "header length 1099511627776 exceeds"},
		{"truncated data", good[:len(good)-1], "invalid safetensors layout"},
		{"trailing data", append(slices.Clone(good), 0), "invalid safetensors layout"},
		{"bad json", rawFile(t, `{"a":`, nil), "invalid safetensors layout"},
		{"header not an object", rawFile(t, []int{1}, nil), "invalid safetensors layout"},
		{"wrong dtype", rawFile(t, map[string]any{"a": tensor("I32", []int{3}, 0, 12)}, twelve), `tensor "a" has dtype I32, want F32`},
		{"dtype size mismatch", rawFile(t, map[string]any{"a": tensor("F64", []int{3}, 0, 12)}, twelve), "invalid safetensors layout"},
		{"unknown dtype", rawFile(t, map[string]any{"a": tensor("F8", []int{3}, 0, 12)}, twelve), "invalid safetensors layout"},
		{"offset out of range", rawFile(t, map[string]any{"a": tensor("F32", []int{3}, 0, 12), "b": tensor("F32", []int{1}, 12, 16)}, twelve), "invalid safetensors layout"},
		{"overlapping offsets", rawFile(t, map[string]any{"a": tensor("F32", []int{3}, 0, 12), "b": tensor("F32", []int{1}, 8, 12)}, twelve), "invalid safetensors layout"},
		{"gap between tensors", rawFile(t, map[string]any{"a": tensor("F32", []int{1}, 0, 4), "b": tensor("F32", []int{1}, 8, 12)}, twelve), "invalid safetensors layout"},
		{"shape mismatch", rawFile(t, map[string]any{"a": tensor("F32", []int{2}, 0, 12)}, twelve), "invalid safetensors layout"},
		{"negative dimension", rawFile(t, map[string]any{"a": tensor("F32", []int{-3}, 0, 12)}, twelve), "invalid safetensors layout"},
		{"scalar", rawFile(t, map[string]any{"a": tensor("F32", []int{}, 0, 4)}, twelve[:4]), "scalar"},
		{"non-string metadata", rawFile(t, map[string]any{"__metadata__": map[string]any{"k": 1}}, nil), "invalid safetensors layout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeWeights(tc.b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
