package updates

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/federa-dev/federa/models"
)

// fuzzGlobal is a two-tensor model of 6 parameters.
func fuzzGlobal() models.Weights {
	return models.Weights{
		"b": {Name: "b", Shape: []int{2}, Data: []float32{0.5, -0.5}},
		"w": {Name: "w", Shape: []int{2, 2}, Data: []float32{1, 2, -3, 0.25}},
	}
}

// sumOf reads a sum vector of any length from fuzz bytes, 4 per element
// (the ring is 32 bits; the high half of each element is set from the
// same bytes so values past the ring are fed too).
func sumOf(b []byte) []uint64 {
	out := make([]uint64, len(b)/4)
	for i := range out {
		v := uint64(binary.LittleEndian.Uint32(b[4*i:]))
		if v&1 != 0 {
			v |= v << 32
		}
		out[i] = v
	}
	return out
}

// checkDecoded holds for anything a codec's Decode returns: the global
// model's shape, every value finite.
func checkDecoded(t *testing.T, global, w models.Weights) {
	t.Helper()
	if err := w.Validate(global); err != nil {
		t.Fatalf("decoded model does not fit the global one: %v", err)
	}
}

// FuzzDecode feeds the secure-aggregation codec's Decode an arbitrary sum
// (a hostile site controls its share of it): never a panic, an error that
// says it is the secure aggregation's, or a model of the global shape with
// finite values. A one-site sum of an encoded update decodes back to it.
func FuzzDecode(f *testing.F) {
	c, err := New(3, 1000, 1)
	if err != nil {
		f.Fatal(err)
	}
	global := fuzzGlobal()
	local := fuzzGlobal()
	for _, t := range local {
		for i := range t.Data {
			t.Data[i] += 0.125
		}
	}
	enc, err := c.Encode(global, local, 10, 0.5)
	if err != nil {
		f.Fatal(err)
	}
	b := make([]byte, 4*len(enc))
	for i, v := range enc {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
	}
	f.Add(b, 10.0, float32(0.1))
	f.Add(b[:8], 1.0, float32(0))
	f.Add(make([]byte, 32), 5.0, float32(-1))
	f.Fuzz(func(t *testing.T, b []byte, loss float64, d float32) {
		w, total, meanLoss, err := c.Decode(global, sumOf(b))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "secure aggregation: ") && !strings.HasPrefix(err.Error(), "secagg: ") {
				t.Fatalf("error %q does not say what refused", err)
			}
		} else {
			checkDecoded(t, global, w)
			if total < 1 || math.IsNaN(meanLoss) {
				t.Fatalf("total %d, loss %v", total, meanLoss)
			}
		}
		// Round trip: one site's update, within the clip, decodes back.
		if math.IsNaN(float64(d)) || math.IsInf(float64(d), 0) {
			return
		}
		d = float32(math.Max(-1, math.Min(1, float64(d))))
		local := fuzzGlobal()
		for _, t := range local {
			for i := range t.Data {
				t.Data[i] += d
			}
		}
		enc, err := c.Encode(global, local, 7, loss)
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		back, total, _, err := c.Decode(global, enc)
		if err != nil || total != 7 {
			t.Fatalf("Decode of one encoded update: total %d, %v", total, err)
		}
		for name, tn := range back {
			for i, v := range tn.Data {
				if math.Abs(float64(v-local[name].Data[i])) > 1e-3 {
					t.Fatalf("%s[%d]: decoded %v, sent %v", name, i, v, local[name].Data[i])
				}
			}
		}
	})
}

// FuzzDPDecode does the same for the distributed-DP codec: an arbitrary
// sum and learning rate never panic Decode, and what it returns fits the
// model with finite values or is refused with a reason.
func FuzzDPDecode(f *testing.F) {
	global := fuzzGlobal()
	c, err := NewDP(3, 2, 1000, 6, 0.1, 1, 1)
	if err != nil {
		f.Fatal(err)
	}
	g := models.ClippedSum{Grad: map[string][]float64{"b": {0.5, -1}, "w": {1, 2, 3, -4}}}
	enc, err := c.Encode(global, g, 50, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		f.Fatal(err)
	}
	b := make([]byte, 4*len(enc))
	for i, v := range enc {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
	}
	f.Add(b, 0.1)
	f.Add(b[:4], 1.0)
	f.Add(make([]byte, 32), 1e300)
	f.Fuzz(func(t *testing.T, b []byte, lr float64) {
		w, total, err := c.Decode(global, sumOf(b), lr)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "distributed DP: ") {
				t.Fatalf("error %q does not say what refused", err)
			}
			return
		}
		if total < 1 {
			t.Fatalf("total %d accepted", total)
		}
		checkDecoded(t, global, w)
	})
}
