package auditlog

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/mod/sumdb/tlog"
)

// hashes.bin holds the tree's stored hashes, 32 bytes each, in
// tlog.StoredHashIndex order: the hashes written with record n start at
// StoredHashIndex(0, n), so the file only ever grows at the end and a
// log of n records has exactly tlog.StoredHashCount(n) hashes.

// fileHashes reads stored hashes from hashes.bin, with the hashes of a
// batch still being built (pending) layered on top of the file.
type fileHashes struct {
	f       io.ReaderAt
	n       int64       // hashes readable from the file
	pending []tlog.Hash // hashes with stored index n, n+1, …
}

func (r *fileHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		switch {
		case x >= 0 && x < r.n:
			if _, err := r.f.ReadAt(out[i][:], x*tlog.HashSize); err != nil {
				return nil, fmt.Errorf("read stored hash %d: %w", x, err)
			}
		case x >= r.n && x-r.n < int64(len(r.pending)):
			out[i] = r.pending[x-r.n]
		default:
			return nil, fmt.Errorf("read stored hash %d: only %d hashes", x, r.n+int64(len(r.pending)))
		}
	}
	return out, nil
}

// memTree is a whole tree held in memory, built from record hashes. Verify
// uses it so that nothing it checks comes from hashes.bin.
type memTree struct {
	hashes []tlog.Hash // stored hashes, in StoredHashIndex order
	n      int64       // records
}

func (t *memTree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(t.hashes)) {
			return nil, fmt.Errorf("read stored hash %d: only %d hashes", x, len(t.hashes))
		}
		out[i] = t.hashes[x]
	}
	return out, nil
}

func (t *memTree) add(leaf tlog.Hash) error {
	hs, err := tlog.StoredHashesForRecordHash(t.n, leaf, t)
	if err != nil {
		return err
	}
	t.hashes = append(t.hashes, hs...)
	t.n++
	return nil
}

func (t *memTree) leaf(i int64) tlog.Hash { return t.hashes[tlog.StoredHashIndex(0, i)] }

func (t *memTree) root(n int64) (tlog.Hash, error) { return tlog.TreeHash(n, t) }

// readStoredHashes reads up to count hashes from the start of hashes.bin;
// a short file yields fewer.
func readStoredHashes(path string, count int64) ([]tlog.Hash, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, 1<<16)
	var out []tlog.Hash
	for int64(len(out)) < count {
		want := min(int64(len(buf)), (count-int64(len(out)))*tlog.HashSize)
		n, err := io.ReadFull(f, buf[:want])
		for i := 0; i+tlog.HashSize <= n; i += tlog.HashSize {
			out = append(out, tlog.Hash(buf[i:i+tlog.HashSize]))
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
