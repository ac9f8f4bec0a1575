package auditlog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/mod/sumdb/tlog"
)

// VerifyError names the first thing found wrong with a log or an export.
type VerifyError struct {
	// Index is the first entry that is missing, damaged or not what the
	// log signed, or -1 when the problem is a checkpoint alone (a forged
	// or altered signature says nothing about the entries).
	Index int64
	// Checkpoint is the tree size of the checkpoint involved, or -1.
	Checkpoint int64
	Reason     string
}

func (e *VerifyError) Error() string {
	switch {
	case e.Index >= 0 && e.Checkpoint >= 0:
		return fmt.Sprintf("audit log entry %d (checkpoint %d): %s", e.Index, e.Checkpoint, e.Reason)
	case e.Index >= 0:
		return fmt.Sprintf("audit log entry %d: %s", e.Index, e.Reason)
	case e.Checkpoint >= 0:
		return fmt.Sprintf("audit log checkpoint %d: %s", e.Checkpoint, e.Reason)
	}
	return "audit log: " + e.Reason
}

// Report summarises a successful verification.
type Report struct {
	Origin string    // origin line of the checkpoints
	Size   int64     // entries read and recomputed
	Root   tlog.Hash // tree hash of all Size entries, recomputed
	// Checkpoints is how many checkpoints were verified; LatestCheckpoint
	// is the largest tree size among them (0 if none).
	Checkpoints      int
	LatestCheckpoint int64
	// Unvouched counts entries after the latest checkpoint: well formed,
	// but no signature covers them yet.
	Unvouched int64
	// Witnessed maps each witness named to Verify to the largest tree size
	// it co-signed.
	Witnessed map[string]int64
	// TornTailBytes is the size of a torn final record left by a crash
	// (never acknowledged; the next Open removes it).
	TornTailBytes int64
}

// problems keeps the problem to report: the smallest entry index, and
// among equal ones the first found; problems with checkpoints alone come
// after any entry problem.
type problems struct{ first *VerifyError }

func (p *problems) add(index, checkpoint int64, format string, args ...any) {
	e := &VerifyError{Index: index, Checkpoint: checkpoint, Reason: fmt.Sprintf(format, args...)}
	f := p.first
	switch {
	case f == nil:
	case e.Index >= 0 && (f.Index < 0 || e.Index < f.Index):
	case e.Index < 0 && f.Index < 0 && e.Checkpoint >= 0 && e.Checkpoint < f.Checkpoint:
	default:
		return
	}
	p.first = e
}

func (p *problems) err() error {
	if p.first == nil {
		return nil
	}
	return p.first
}

// Verify checks the log in dir without trusting anything in it but the
// log key (and the witness keys given):
//
//   - every record is intact and a canonical Entry;
//   - the Merkle tree is recomputed from the entries, ignoring hashes.bin;
//   - every stored checkpoint is signed by logKey, and any co-signature by
//     a listed witness is valid; each listed witness co-signed at least one;
//   - each checkpoint's root equals the recomputed tree at its size, and
//     consecutive checkpoints are consistent (proofs from the recomputed
//     tree, checked with tlog.CheckTree);
//   - hashes.bin agrees with the recomputed tree, so proofs the log serves
//     are right.
//
// A failure is a *VerifyError naming the first bad entry (or checkpoint).
// When the entries no longer match a checkpoint, the entry is pinned down
// with hashes.bin if that file still hashes to the signed root; if it was
// rewritten too, the error names the first entry not vouched for by an
// earlier checkpoint. Verify cannot see a history rewritten wholesale,
// checkpoints included, by someone holding the log key: that is what
// witnesses are for.
//
// The Report is returned even with an error, filled as far as it got.
// Verify holds the whole tree in memory, about 64 bytes per entry. Run it
// on a closed log or a copy: on a log being appended to, the batch in
// flight can show up as missing hashes.
func Verify(dir, logKey string, witnessKeys ...string) (*Report, error) {
	ks, err := newKeySet(logKey, witnessKeys)
	if err != nil {
		return nil, fmt.Errorf("verify audit log %s: %w", dir, err)
	}
	rep := &Report{Witnessed: map[string]int64{}}
	var p problems

	f, err := os.Open(filepath.Join(dir, entriesFile))
	if err != nil {
		return nil, fmt.Errorf("verify audit log %s: %w", dir, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("verify audit log %s: %w", dir, err)
	}
	hashesPath := filepath.Join(dir, hashesFile)
	var hashBytes int64
	if hst, err := os.Stat(hashesPath); err == nil {
		hashBytes = hst.Size()
	}

	tree := &memTree{}
	var batch leafBatch
	notCanonical := func(i int64, problem string) { p.add(i, -1, "not a canonical entry: %s", problem) }
	rr := newRecordReader(f)
	for i := int64(0); ; i++ {
		data, err := rr.next()
		if err == io.EOF {
			break
		}
		if errors.Is(err, errBadRecord) {
			if hashBytes > tlog.StoredHashIndex(0, i)*tlog.HashSize {
				p.add(i, -1, "record at offset %d of %s is damaged: %v", rr.off, entriesFile, err)
			} else {
				rep.TornTailBytes = st.Size() - rr.off
			}
			break
		}
		if err != nil {
			return nil, fmt.Errorf("verify audit log %s: read %s: %w", dir, entriesFile, err)
		}
		batch.add(data)
		if batch.full() {
			if err := batch.flush(tree, notCanonical); err != nil {
				return nil, fmt.Errorf("verify audit log %s: %w", dir, err)
			}
		}
	}
	if err := batch.flush(tree, notCanonical); err != nil {
		return nil, fmt.Errorf("verify audit log %s: %w", dir, err)
	}
	n := tree.n
	rep.Size = n
	if rep.Root, err = tree.root(n); err != nil {
		return nil, fmt.Errorf("verify audit log %s: %w", dir, err)
	}

	files, err := listCheckpoints(dir)
	if err != nil {
		return rep, fmt.Errorf("verify audit log %s: %w", dir, err)
	}
	var prev *Checkpoint
	mismatched := false
	cosigned := map[string]bool{}
	for _, cf := range files {
		msg, err := os.ReadFile(cf.path)
		if err != nil {
			return rep, fmt.Errorf("verify audit log %s: %w", dir, err)
		}
		cp, err := ks.open(msg)
		if err != nil {
			p.add(-1, cf.size, "%v", err)
			continue
		}
		if cp.Size != cf.size {
			p.add(-1, cf.size, "file %s holds a checkpoint of size %d", filepath.Base(cf.path), cp.Size)
			continue
		}
		if rep.Origin == "" {
			rep.Origin = cp.Origin
		} else if cp.Origin != rep.Origin {
			p.add(-1, cp.Size, "origin %q, earlier checkpoints say %q", cp.Origin, rep.Origin)
			continue
		}
		rep.Checkpoints++
		var root tlog.Hash
		if cp.Size <= n {
			if root, err = tree.root(cp.Size); err != nil {
				return rep, fmt.Errorf("verify audit log %s: %w", dir, err)
			}
		}
		if cp.Size > n || root != cp.Root {
			// Only the first mismatch can be located; later ones follow
			// from it.
			if !mismatched {
				mismatched = true
				lo := int64(0)
				if prev != nil {
					lo = prev.Size
				}
				i, reason := locate(tree, hashesPath, lo, cp)
				p.add(i, cp.Size, "%s", reason)
			}
			continue
		}
		if prev != nil && prev.Size > 0 && prev.Size < cp.Size {
			proof, err := tlog.ProveTree(cp.Size, prev.Size, tree)
			if err == nil {
				err = tlog.CheckTree(proof, cp.Size, cp.Root, prev.Size, prev.Root)
			}
			if err != nil {
				p.add(-1, cp.Size, "not consistent with checkpoint %d: %v", prev.Size, err)
				continue
			}
		}
		for _, w := range cp.Witnesses {
			cosigned[w] = true
			rep.Witnessed[w] = max(rep.Witnessed[w], cp.Size)
		}
		prev = &cp
		rep.LatestCheckpoint = cp.Size
	}
	for _, w := range ks.witnesses {
		if !cosigned[w.Name()] {
			p.add(-1, -1, "witness %s co-signed no checkpoint that matches the entries", w.Name())
		}
	}
	checkStoredHashes(&p, hashesPath, hashBytes, tree)
	rep.Unvouched = n - rep.LatestCheckpoint
	if err := p.err(); err != nil {
		return rep, err
	}
	return rep, nil
}

// locate finds the first entry that keeps the tree from hashing to cp's
// signed root, given that the first lo entries are vouched for by an
// earlier checkpoint.
func locate(tree *memTree, hashesPath string, lo int64, cp Checkpoint) (int64, string) {
	// hashes.bin is untrusted, but if its leaf hashes alone rebuild the
	// signed root they are the hashes the log signed, and comparing them
	// with the recomputed ones points at the exact entry.
	want := tlog.StoredHashCount(cp.Size)
	if stored, err := readStoredHashes(hashesPath, want); err == nil && int64(len(stored)) == want {
		signed := &memTree{hashes: make([]tlog.Hash, 0, want)}
		for i := int64(0); i < cp.Size; i++ {
			if signed.add(stored[tlog.StoredHashIndex(0, i)]) != nil {
				break
			}
		}
		if root, err := signed.root(cp.Size); err == nil && signed.n == cp.Size && root == cp.Root {
			for i := lo; i < cp.Size; i++ {
				if i >= tree.n {
					return i, fmt.Sprintf("entry %d, covered by checkpoint %d, is missing", i, cp.Size)
				}
				if signed.leaf(i) != tree.leaf(i) {
					return i, fmt.Sprintf("differs from the entry the log signed in checkpoint %d", cp.Size)
				}
			}
		}
	}
	if lo >= tree.n {
		return tree.n, fmt.Sprintf("checkpoint %d covers %d entries, the log holds %d: entries from %d were removed", cp.Size, cp.Size, tree.n, tree.n)
	}
	return lo, fmt.Sprintf("entries %d to %d do not hash to the root signed in checkpoint %d: either one of them changed and %s was rewritten to match (so %d is the first entry that may have changed), or the log key signed a different history", lo, min(cp.Size, tree.n)-1, cp.Size, hashesFile, lo)
}

// checkStoredHashes compares hashes.bin with the recomputed tree. It is
// not needed for authenticity, but the log serves proofs from that file.
func checkStoredHashes(p *problems, path string, hashBytes int64, tree *memTree) {
	want := int64(len(tree.hashes))
	stored, err := readStoredHashes(path, want+1)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		p.add(-1, -1, "read %s: %v", hashesFile, err)
		return
	}
	for x := int64(0); x < min(want, int64(len(stored))); x++ {
		if stored[x] != tree.hashes[x] {
			level, k := tlog.SplitStoredHashIndex(x)
			j := (k+1)<<level - 1
			if level == 0 {
				p.add(j, -1, "its stored hash in %s differs from the entry", hashesFile)
			} else {
				p.add(j, -1, "stored hash %d (level %d, written with entry %d) in %s is wrong", x, level, j, hashesFile)
			}
			return
		}
	}
	switch {
	case int64(len(stored)) > want || hashBytes > want*tlog.HashSize:
		p.add(tree.n, -1, "%s holds hashes for entries beyond the %d in %s: entries were removed", hashesFile, tree.n, entriesFile)
	case int64(len(stored)) < want:
		j := int64(0)
		for j < tree.n && tlog.StoredHashCount(j+1) <= int64(len(stored)) {
			j++
		}
		p.add(j, -1, "%s lacks the hashes from entry %d on (after a crash, opening the log once repairs this)", hashesFile, j)
	}
}
