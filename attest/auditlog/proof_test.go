package auditlog

import (
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"
)

func hashesToBytes[H ~[]tlog.Hash](p H) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out
}

// TestProofsAgainstSecondImplementation checks the proofs the log serves
// (x/mod/sumdb/tlog) with transparency-dev/merkle, an independent RFC 6962
// implementation, and with tlog itself.
func TestProofsAgainstSecondImplementation(t *testing.T) {
	const n = 37
	l := openTestLog(t, t.TempDir(), nil)
	roots := []tlog.Hash{l.Root()}
	for i := range n {
		mustAppend(t, l, sampleEntry(t, i, ""))
		roots = append(roots, l.Root())
	}
	h := rfc6962.DefaultHasher
	if got := roots[0]; string(got[:]) != string(h.EmptyRoot()) {
		t.Fatalf("empty root %x, want %x", got, h.EmptyRoot())
	}
	t.Run("inclusion", func(t *testing.T) {
		for size := int64(1); size <= n; size++ {
			for i := int64(0); i < size; i++ {
				leaf, err := l.Entry(i)
				if err != nil {
					t.Fatal(err)
				}
				p, err := l.InclusionProof(i, size)
				if err != nil {
					t.Fatal(err)
				}
				root := roots[size]
				if err := proof.VerifyInclusion(h, uint64(i), uint64(size), h.HashLeaf(leaf), hashesToBytes(p), root[:]); err != nil {
					t.Fatalf("merkle rejects inclusion of %d in %d: %v", i, size, err)
				}
				cp := Checkpoint{Size: size, Root: root}
				if err := cp.CheckInclusion(i, leaf, p); err != nil {
					t.Fatal(err)
				}
				if err := cp.CheckInclusion(i, append([]byte{' '}, leaf...), p); err == nil {
					t.Fatalf("inclusion of a different leaf at %d accepted", i)
				}
			}
		}
	})
	t.Run("consistency", func(t *testing.T) {
		for newSize := int64(1); newSize <= n; newSize++ {
			for oldSize := int64(1); oldSize <= newSize; oldSize++ {
				p, err := l.ConsistencyProof(oldSize, newSize)
				if err != nil {
					t.Fatal(err)
				}
				o, nw := roots[oldSize], roots[newSize]
				if err := proof.VerifyConsistency(h, uint64(oldSize), uint64(newSize), hashesToBytes(p), o[:], nw[:]); err != nil {
					t.Fatalf("merkle rejects consistency %d -> %d: %v", oldSize, newSize, err)
				}
				if err := tlog.CheckTree(p, newSize, nw, oldSize, o); err != nil {
					t.Fatalf("tlog rejects consistency %d -> %d: %v", oldSize, newSize, err)
				}
				if oldSize < newSize {
					if err := proof.VerifyConsistency(h, uint64(oldSize), uint64(newSize), hashesToBytes(p), nw[:], o[:]); err == nil {
						t.Fatalf("swapped roots accepted for %d -> %d", oldSize, newSize)
					}
				}
			}
		}
		if p, err := l.ConsistencyProof(0, n); err != nil || len(p) != 0 {
			t.Fatalf("proof from the empty tree: %v, %v", p, err)
		}
	})
	t.Run("bad requests", func(t *testing.T) {
		for _, c := range [][2]int64{{-1, 3}, {3, 3}, {0, n + 1}} {
			if _, err := l.InclusionProof(c[0], c[1]); err == nil {
				t.Errorf("InclusionProof(%d, %d) succeeded", c[0], c[1])
			}
		}
		for _, c := range [][2]int64{{4, 3}, {1, n + 1}, {-1, 2}} {
			if _, err := l.ConsistencyProof(c[0], c[1]); err == nil {
				t.Errorf("ConsistencyProof(%d, %d) succeeded", c[0], c[1])
			}
		}
	})
}
