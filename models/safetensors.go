package models

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"unsafe"

	"github.com/nlpodyssey/safetensors"
)

// The safetensors codec is github.com/nlpodyssey/safetensors: it writes
// the canonical layout (8-byte little-endian header length, JSON header
// with sorted keys padded to 8 bytes, contiguous tensor data) and on read
// validates that offsets are contiguous, non-overlapping, match each shape
// and end exactly at the end of the file. This file adds what it does not
// do: float32 conversion, a dtype check, clearer errors for truncated files,
// and its own bounds check before slicing, so a future library change
// cannot turn a hostile file into a panic.

// metadataKey is the reserved header entry holding string metadata; it
// cannot be a tensor name.
const metadataKey = "__metadata__"

// tensorViews converts w into little-endian F32 views, rejecting tensors
// the format or this package cannot represent faithfully.
func tensorViews(w Weights) (map[string]safetensors.TensorView, error) {
	views := make(map[string]safetensors.TensorView, len(w))
	for _, name := range w.Names() {
		t := w[name]
		if name == "" || name == metadataKey {
			return nil, fmt.Errorf("invalid tensor name %q", name)
		}
		if err := t.check(name); err != nil {
			return nil, err
		}
		// The library counts a rank-0 shape as zero elements, so a scalar
		// would not round-trip; no federa model needs one.
		if len(t.Shape) == 0 {
			return nil, fmt.Errorf("tensor %q is a scalar; scalars are not supported", name)
		}
		shape := make([]uint64, len(t.Shape))
		for i, d := range t.Shape {
			shape[i] = uint64(d)
		}
		data := make([]byte, 4*len(t.Data))
		for i, v := range t.Data {
			binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
		}
		v, err := safetensors.NewTensorView(safetensors.F32, shape, data)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		views[name] = v
	}
	return views, nil
}

// EncodeWeights serializes w as safetensors bytes (all tensors F32, no
// metadata), e.g. for checkpoints. Values must be finite.
func EncodeWeights(w Weights) ([]byte, error) {
	views, err := tensorViews(w)
	if err != nil {
		return nil, fmt.Errorf("encoding weights: %w", err)
	}
	b, err := safetensors.Serialize(views, nil)
	if err != nil {
		return nil, fmt.Errorf("encoding weights: %w", err)
	}
	return b, nil
}

// DecodeWeights parses safetensors bytes holding only F32 tensors. Any
// metadata is ignored. Values are not checked for finiteness; call
// Validate against the expected layout before use.
func DecodeWeights(b []byte) (Weights, error) {
	w, _, err := decodeSafetensors(b)
	if err != nil {
		return nil, fmt.Errorf("decoding weights: %w", err)
	}
	return w, nil
}

// decodeSafetensors parses a whole safetensors file into float32 tensors and
// its string metadata.
func decodeSafetensors(b []byte) (Weights, map[string]string, error) {
	if len(b) < 8 {
		return nil, nil, fmt.Errorf("truncated file: %d bytes, need at least 8 for the header length", len(b))
	}
	if n := binary.LittleEndian.Uint64(b); n > uint64(len(b)-8) {
		return nil, nil, fmt.Errorf("header length %d exceeds the %d bytes after it", n, len(b)-8)
	}
	n, meta, err := safetensors.ReadMetadata(b)
	if err != nil {
		return nil, nil, fmt.Errorf("invalid safetensors layout: %w", err)
	}
	data := b[8+n:]
	w := make(Weights, len(meta.Tensors()))
	for name, info := range meta.Tensors() {
		if info.DType != safetensors.F32 {
			return nil, nil, fmt.Errorf("tensor %q has dtype %s, want F32", name, info.DType)
		}
		shape := make([]int, len(info.Shape))
		for i, d := range info.Shape {
			if d > math.MaxInt32 {
				return nil, nil, fmt.Errorf("tensor %q has oversized dimension %d", name, d)
			}
			shape[i] = int(d)
		}
		count, err := numElements(shape)
		if err != nil {
			return nil, nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		if len(shape) == 0 {
			return nil, nil, fmt.Errorf("tensor %q is a scalar; scalars are not supported", name)
		}
		start, end := info.DataOffsets[0], info.DataOffsets[1]
		if start > end || end > uint64(len(data)) {
			return nil, nil, fmt.Errorf("tensor %q has data offsets [%d,%d] outside the %d data bytes", name, start, end, len(data))
		}
		if end-start != 4*uint64(count) {
			return nil, nil, fmt.Errorf("tensor %q has %d data bytes, shape %v needs %d", name, end-start, shape, 4*count)
		}
		raw := data[start:end]
		vals := MakeValues(int(count))
		for i := range vals {
			vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		w[name] = &Tensor{Name: name, Shape: shape, Data: vals}
	}
	return w, meta.Metadata(), nil
}

// maxModelBytes bounds how much ReadSafetensors will buffer, so a hostile
// or mistaken stream cannot exhaust memory. A logistic regression file is
// tiny; 1 GiB leaves room for far larger models.
const maxModelBytes = 1 << 30

// readAllLimited reads r fully, failing if it holds more than limit bytes.
func readAllLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("file is larger than %d bytes", limit)
	}
	return b, nil
}

// layoutView is a tensor's dtype and shape without its data: enough for
// the safetensors header, which depends on nothing else.
type layoutView struct {
	shape []uint64
	n     uint64
}

func (v layoutView) DType() safetensors.DType { return safetensors.F32 }
func (v layoutView) Shape() []uint64          { return v.shape }
func (v layoutView) Data() []byte             { return nil }
func (v layoutView) DataLen() uint64          { return 4 * v.n }

// SafetensorsPrefix is what EncodeWeights writes before the tensor data
// for any weights of layout's names and shapes (their values do not
// matter): the header length and the header. After it, EncodeWeights
// writes each tensor's values as little-endian float32, tensors in name
// order — the order transfer.ChunkWeights sends them in — so
// sha256(prefix ‖ chunk payloads in order) is sha256(EncodeWeights(w)),
// computable as chunks arrive without holding w.
func SafetensorsPrefix(layout Weights) ([]byte, error) {
	views := make(map[string]layoutView, len(layout))
	for _, name := range layout.Names() {
		t := layout[name]
		if t == nil || name == "" || name == metadataKey || len(t.Shape) == 0 {
			return nil, fmt.Errorf("safetensors header: tensor %q cannot be encoded", name)
		}
		n, err := numElements(t.Shape)
		if err != nil {
			return nil, fmt.Errorf("safetensors header: tensor %q: %w", name, err)
		}
		shape := make([]uint64, len(t.Shape))
		for i, d := range t.Shape {
			shape[i] = uint64(d)
		}
		views[name] = layoutView{shape: shape, n: uint64(n)}
	}
	var buf prefixWriter
	if err := safetensors.SerializeToWriter(views, nil, &buf); err != nil {
		return nil, fmt.Errorf("safetensors header: %w", err)
	}
	return buf.b, nil
}

// prefixWriter keeps what SerializeToWriter writes; layoutViews write no data.
type prefixWriter struct{ b []byte }

func (w *prefixWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

// WriteWeights writes w as EncodeWeights encodes it, tensor by tensor,
// without building the file in memory: on a little-endian machine each
// tensor's values are written straight from w's memory. Unlike
// EncodeWeights it does not check that the values are finite; w must not
// change while it runs.
func WriteWeights(out io.Writer, w Weights) error {
	views := make(map[string]f32View, len(w))
	for _, name := range w.Names() {
		t := w[name]
		if name == "" || name == metadataKey || t == nil || len(t.Shape) == 0 {
			return fmt.Errorf("encoding weights: tensor %q cannot be encoded", name)
		}
		n, err := numElements(t.Shape)
		if err != nil || n != len(t.Data) {
			return fmt.Errorf("encoding weights: tensor %q holds %d values for shape %v", name, len(t.Data), t.Shape)
		}
		shape := make([]uint64, len(t.Shape))
		for i, d := range t.Shape {
			shape[i] = uint64(d)
		}
		views[name] = f32View{shape: shape, data: t.Data}
	}
	if err := safetensors.SerializeToWriter(views, nil, out); err != nil {
		return fmt.Errorf("encoding weights: %w", err)
	}
	return nil
}

// f32View is a float32 tensor as safetensors writes it: little-endian
// bytes, w's own memory where the machine is little-endian.
type f32View struct {
	shape []uint64
	data  []float32
}

func (v f32View) DType() safetensors.DType { return safetensors.F32 }
func (v f32View) Shape() []uint64          { return v.shape }
func (v f32View) DataLen() uint64          { return 4 * uint64(len(v.data)) }
func (v f32View) Data() []byte {
	if len(v.data) == 0 {
		return nil
	}
	if littleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(&v.data[0])), 4*len(v.data))
	}
	b := make([]byte, 4*len(v.data))
	for i, x := range v.data {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// littleEndian: float32 values in memory are their little-endian bytes.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()
