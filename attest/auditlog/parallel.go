package auditlog

import (
	"runtime"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// checkedLeaf is one entry as the verifiers see it: its leaf hash, and why
// it is not a canonical entry (empty if it is).
type checkedLeaf struct {
	hash    tlog.Hash
	problem string
}

// checkLeaves parses and hashes leaves on all CPUs. Parsing dominates
// verification (encoding/json, around 10µs an entry) and each entry
// stands alone, so only the tree has to be built in order afterwards.
func checkLeaves(leaves [][]byte, out []checkedLeaf) {
	workers := min(runtime.GOMAXPROCS(0), max(1, len(leaves)/64))
	var wg sync.WaitGroup
	per := (len(leaves) + workers - 1) / workers
	for lo := 0; lo < len(leaves); lo += per {
		hi := min(lo+per, len(leaves))
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				out[i].hash = tlog.RecordHash(leaves[i])
				out[i].problem = ""
				if _, err := ParseEntry(leaves[i]); err != nil {
					out[i].problem = err.Error()
				}
			}
		})
	}
	wg.Wait()
}

// leafBatch gathers leaves (copied) for checkLeaves, in batches big enough
// to keep the CPUs busy and small enough to bound memory.
type leafBatch struct {
	first  int64 // index of leaves[0]
	leaves [][]byte
	buf    []byte
	out    []checkedLeaf
}

const leafBatchBytes = 4 << 20

func (b *leafBatch) full() bool { return len(b.buf) >= leafBatchBytes }

func (b *leafBatch) add(leaf []byte) {
	// buf grows as needed (a small log should not cost a 4 MiB buffer);
	// leaves taken before a regrowth keep pointing at the old array.
	start := len(b.buf)
	b.buf = append(b.buf, leaf...)
	b.leaves = append(b.leaves, b.buf[start:len(b.buf):len(b.buf)])
}

// flush checks the batch, adds its leaves to tree in order and reports
// each non-canonical entry to bad; then the batch is empty again.
func (b *leafBatch) flush(tree *memTree, bad func(index int64, problem string)) error {
	if cap(b.out) < len(b.leaves) {
		b.out = make([]checkedLeaf, len(b.leaves))
	}
	out := b.out[:len(b.leaves)]
	checkLeaves(b.leaves, out)
	for i, c := range out {
		if c.problem != "" {
			bad(b.first+int64(i), c.problem)
		}
		if err := tree.add(c.hash); err != nil {
			return err
		}
	}
	b.first += int64(len(b.leaves))
	b.leaves, b.buf = b.leaves[:0], b.buf[:0]
	return nil
}
