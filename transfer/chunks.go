package transfer

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"math"
	"unsafe"

	"github.com/federa-dev/federa/models"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// ChunkWeights splits w into chunks of at most maxBytes of payload
// (federav1.MaxChunkBytes when maxBytes ≤ 0), tensors in name order. The last chunk
// has Last set; empty weights give one empty chunk with Last set.
func ChunkWeights(transferID string, w models.Weights, maxBytes int) []*federav1.TensorChunk {
	if maxBytes <= 0 {
		maxBytes = federav1.MaxChunkBytes
	}
	per := max(maxBytes/4, 1)
	var out []*federav1.TensorChunk
	for _, name := range w.Names() {
		t := w[name]
		shape := make([]int64, len(t.Shape))
		for i, d := range t.Shape {
			shape[i] = int64(d)
		}
		for off := 0; off < len(t.Data) || (off == 0 && len(t.Data) == 0); off += per {
			end := min(off+per, len(t.Data))
			buf := make([]byte, 4*(end-off))
			for i, v := range t.Data[off:end] {
				binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
			}
			out = append(out, &federav1.TensorChunk{TransferId: transferID, Name: name, Shape: shape, Offset: int64(off), Data: buf})
			if len(t.Data) == 0 {
				break
			}
		}
	}
	if len(out) == 0 {
		out = append(out, &federav1.TensorChunk{TransferId: transferID})
	}
	out[len(out)-1].Last = true
	return out
}

// Retarget returns chunks as chunks of transferID: new headers over the
// same payloads, so weights chunked once can go to many transfers without
// being encoded again. The payloads are shared: neither copy may be
// changed. nil stays nil.
func Retarget(chunks []*federav1.TensorChunk, transferID string) []*federav1.TensorChunk {
	if chunks == nil {
		return nil
	}
	out := make([]*federav1.TensorChunk, len(chunks))
	for i, c := range chunks {
		out[i] = &federav1.TensorChunk{TransferId: transferID, Name: c.GetName(), Shape: c.GetShape(), Offset: c.GetOffset(),
			Data: c.GetData(), Last: c.GetLast(), Ring: c.GetRing()}
	}
	return out
}

// Assembler rebuilds weights from the chunks of one transfer, checking
// every chunk so a malformed or hostile stream is an error, never a panic
// or an unbounded allocation.
type Assembler struct {
	id       string
	limit    int64 // most float32 elements accepted in all
	total    int64
	w        models.Weights
	filled   map[string]int
	finished bool
	// The digest, if asked for (HashAs): the hash of the prefix and each
	// chunk's payload as it arrived, valid while the tensors come in name
	// order.
	h         hash.Hash
	lastName  string
	unordered bool
	reuse     models.Weights // tensors whose memory a new tensor of their name and size may take
}

// Reuse lets the assembler put a tensor into the memory of w's tensor of
// the same name and size instead of new memory (a model is received
// every task; memory already in use costs no page faults). Every value is
// overwritten before Add reports the transfer complete; w must not be
// used again by anyone else. Call it before the first Add.
func (a *Assembler) Reuse(w models.Weights) { a.reuse = w }

// NewAssembler accepts chunks of transferID, at most maxElems float32
// values in all.
func NewAssembler(transferID string, maxElems int64) *Assembler {
	return &Assembler{id: transferID, limit: maxElems, w: models.Weights{}, filled: map[string]int{}}
}

// HashAs makes the assembler hash the update as its chunks arrive:
// prefix (models.SafetensorsPrefix of the expected layout), then each
// payload, so Digest is the SHA-256 of models.EncodeWeights of the
// weights without encoding them again. Call it before the first Add.
func (a *Assembler) HashAs(prefix []byte) {
	a.h = sha256.New()
	a.h.Write(prefix)
}

// Digest is "sha256:…" of models.EncodeWeights(a.Weights()) for a
// complete transfer whose tensors came in name order, as ChunkWeights
// sends them, and whose layout is the one HashAs was given; "" if the
// chunks came in another order or HashAs was not called. (A layout other
// than the expected one is the caller's to refuse.)
func (a *Assembler) Digest() string {
	if a.h == nil || a.unordered || !a.finished {
		return ""
	}
	return "sha256:" + hex.EncodeToString(a.h.Sum(nil))
}

// Add takes the next chunk. It returns true once the transfer is complete.
func (a *Assembler) Add(c *federav1.TensorChunk) (bool, error) {
	if a.finished {
		return true, fmt.Errorf("tensor transfer %s: chunk after the last one", a.id)
	}
	if c.GetTransferId() != a.id {
		return false, fmt.Errorf("tensor transfer %s: chunk belongs to transfer %q", a.id, c.GetTransferId())
	}
	if c.GetRing() {
		return false, fmt.Errorf("tensor transfer %s: a ring chunk where float32 weights belong", a.id)
	}
	if c.GetName() == "" && (len(c.GetData()) > 0 || len(c.GetShape()) > 0) {
		return false, fmt.Errorf("tensor transfer %s: chunk with data but no tensor name", a.id)
	}
	if c.GetName() != "" {
		if err := a.addData(c); err != nil {
			return false, fmt.Errorf("tensor transfer %s: tensor %q: %w", a.id, c.GetName(), err)
		}
	}
	if !c.GetLast() {
		return false, nil
	}
	for name, t := range a.w {
		if a.filled[name] != len(t.Data) {
			return false, fmt.Errorf("tensor transfer %s: tensor %q ended with %d of %d values", a.id, name, a.filled[name], len(t.Data))
		}
	}
	a.finished = true
	return true, nil
}

func (a *Assembler) addData(c *federav1.TensorChunk) error {
	if len(c.GetData())%4 != 0 {
		return fmt.Errorf("payload of %d bytes is not whole float32 values", len(c.GetData()))
	}
	t, ok := a.w[c.GetName()]
	if !ok {
		n := int64(1)
		shape := make([]int, len(c.GetShape()))
		for i, d := range c.GetShape() {
			if d < 0 || d > a.limit {
				return fmt.Errorf("dimension %d is out of range", d)
			}
			// Checked before multiplying: with a large limit n*d can
			// overflow int64 and wrap to a small, acceptable count.
			if d != 0 && n > a.limit/d {
				return fmt.Errorf("shape %v exceeds the limit of %d values", c.GetShape(), a.limit)
			}
			n *= d
			shape[i] = int(d)
		}
		if a.total+n > a.limit {
			return fmt.Errorf("transfer exceeds the limit of %d values", a.limit)
		}
		a.total += n
		t = &models.Tensor{Name: c.GetName(), Shape: shape}
		if r := a.reuse[c.GetName()]; r != nil && int64(len(r.Data)) == n {
			t.Data = r.Data
			delete(a.reuse, c.GetName())
		} else {
			t.Data = models.MakeValues(int(n))
		}
		a.w[c.GetName()] = t
	} else if !sameShape(t.Shape, c.GetShape()) {
		return fmt.Errorf("shape %v differs from earlier chunk's %v", c.GetShape(), t.Shape)
	}
	off := int(c.GetOffset())
	if c.GetOffset() != int64(a.filled[c.GetName()]) {
		return fmt.Errorf("chunk at offset %d, want %d (chunks must arrive in order)", c.GetOffset(), a.filled[c.GetName()])
	}
	n := len(c.GetData()) / 4
	if off+n > len(t.Data) {
		return fmt.Errorf("chunk overruns the tensor (%d+%d > %d values)", off, n, len(t.Data))
	}
	if dst := t.Data[off : off+n]; littleEndian {
		// The payload is the values' memory image: one copy.
		copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(dst))), 4*n), c.GetData())
	} else {
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(c.GetData()[4*i:]))
		}
	}
	a.filled[c.GetName()] = off + n
	if a.h != nil {
		if c.GetName() < a.lastName {
			a.unordered = true
		}
		a.lastName = c.GetName()
		a.h.Write(c.GetData())
	}
	return nil
}

func sameShape(a []int, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if int64(a[i]) != b[i] {
			return false
		}
	}
	return true
}

// Weights returns the assembled weights once Add has returned true.
func (a *Assembler) Weights() models.Weights { return a.w }

// ShareWeights is ChunkWeights without the copy: on a little-endian
// machine each chunk's payload is a view of w's own memory (elsewhere it
// is ChunkWeights). The chunks are then only valid while w is not
// changed: the caller must not write to w until every message holding
// them has been sent (marshalled).
func ShareWeights(transferID string, w models.Weights, maxBytes int) []*federav1.TensorChunk {
	if !littleEndian {
		return ChunkWeights(transferID, w, maxBytes)
	}
	if maxBytes <= 0 {
		maxBytes = federav1.MaxChunkBytes
	}
	per := max(maxBytes/4, 1)
	var out []*federav1.TensorChunk
	for _, name := range w.Names() {
		t := w[name]
		shape := make([]int64, len(t.Shape))
		for i, d := range t.Shape {
			shape[i] = int64(d)
		}
		for off := 0; off < len(t.Data) || (off == 0 && len(t.Data) == 0); off += per {
			end := min(off+per, len(t.Data))
			var buf []byte
			if end > off {
				buf = unsafe.Slice((*byte)(unsafe.Pointer(&t.Data[off])), 4*(end-off))
			}
			out = append(out, &federav1.TensorChunk{TransferId: transferID, Name: name, Shape: shape, Offset: int64(off), Data: buf})
			if len(t.Data) == 0 {
				break
			}
		}
	}
	if len(out) == 0 {
		out = append(out, &federav1.TensorChunk{TransferId: transferID})
	}
	out[len(out)-1].Last = true
	return out
}

// littleEndian: a float32's bytes in memory are its little-endian encoding.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()
