package federav1

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzRingAssembler feeds a ring assembler a stream of chunks built from
// fuzz bytes: ids, names, shapes, offsets, sizes and Last flags all come
// from the input. It must never panic nor hold more than the n elements it
// was made for; it completes only with exactly those bytes, in order; every
// refusal names the transfer. A vector chunked by ChunkRing always
// reassembles.
func FuzzRingAssembler(f *testing.F) {
	f.Add(uint8(3), []byte{0, 0, 0, 0, 12, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	f.Add(uint8(2), []byte{0, 0, 0, 0, 4, 1, 2, 3, 4, 0, 0, 0, 1, 4, 5, 6, 7, 8})
	f.Add(uint8(2), []byte{1, 0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, n uint8, in []byte) {
		packed := bytes.Repeat([]byte{0xA5}, 4*int(n))
		for i, c := range ChunkRing("t", packed) {
			done, err := NewRingAssembler("t", int64(n)).Add(c)
			if i == 0 && (err != nil || done != c.GetLast()) {
				t.Fatalf("ChunkRing's first chunk of %d values: done %v, %v", n, done, err)
			}
		}
		a := NewRingAssembler("t", int64(n))
		var got []byte
		next := func() byte {
			if len(in) == 0 {
				return 0
			}
			c := in[0]
			in = in[1:]
			return c
		}
		for len(in) > 0 {
			flags := next()
			c := &TensorChunk{TransferId: "t", Name: RingTensor, Ring: true, Shape: []int64{int64(n)}, Last: flags&1 != 0}
			if flags&2 != 0 {
				c.TransferId = "other"
			}
			if flags&4 != 0 {
				c.Name = "w"
			}
			if flags&8 != 0 {
				c.Ring = false
			}
			if flags&16 != 0 {
				c.Shape = []int64{int64(next()) << (next() % 48)}
			}
			c.Offset = int64(next())
			if flags&32 != 0 {
				c.Offset = -c.Offset
			}
			size := min(int(next()), len(in))
			c.Data, in = in[:size], in[size:]
			done, err := a.Add(c)
			if err != nil {
				if !strings.HasPrefix(err.Error(), "ring transfer t: ") {
					t.Fatalf("error %q does not name the transfer", err)
				}
				if done {
					// Only a chunk after the last: the vector stays whole.
					if !bytes.Equal(a.Packed(), got) {
						t.Fatal("a refused chunk after the last changed the vector")
					}
				}
				return
			}
			got = append(got, c.Data...)
			if len(got) > 4*int(n) {
				t.Fatalf("accepted %d bytes for %d values", len(got), n)
			}
			if done {
				if len(got) != 4*int(n) || !bytes.Equal(a.Packed(), got) {
					t.Fatalf("complete with %d bytes for %d values, or not the bytes sent", len(got), n)
				}
			}
		}
	})
}
