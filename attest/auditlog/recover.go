package auditlog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"

	"golang.org/x/mod/sumdb/tlog"
)

// recover brings entries.log and hashes.bin back to a state a completed
// Append could have left, or reports ErrDamaged.
//
// Append writes and fsyncs the records before writing the hashes, so:
//   - a record with no hash slot on disk was never acknowledged; if it is
//     torn it is cut off, and if it is whole its hashes are recomputed;
//   - a damaged or missing record that has a hash slot had been fsynced,
//     so it is damage, not a crash, and Open stops;
//   - stored hashes up to the latest checkpoint were fsynced before it was
//     signed and are checked against its root; hashes after it may be
//     garbage from a crash mid-write and are recomputed from the records.
func (l *Log) recover() error {
	hst, err := l.hashes.Stat()
	if err != nil {
		return err
	}
	hashBytes := hst.Size()
	haveHashes := hashBytes / tlog.HashSize

	cp, haveCP, err := latestCheckpointHead(l.dir)
	if err != nil {
		return err
	}
	// base: records whose stored hashes are trusted (via the checkpoint);
	// everything after is rehashed. Without all the checkpoint's hashes
	// (say, hashes.bin deleted to force a rebuild) the whole tree is
	// rebuilt and then checked against the checkpoint instead.
	var base int64
	if haveCP && haveHashes >= tlog.StoredHashCount(cp.Size) {
		base = cp.Size
	}

	offsets := []int64{0}
	var leaves []tlog.Hash
	rr := newRecordReader(io.NewSectionReader(l.records, 0, math.MaxInt64))
	var bad error
	for i := int64(0); ; i++ {
		data, err := rr.next()
		if err == io.EOF {
			break
		}
		if errors.Is(err, errBadRecord) {
			bad = err
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", entriesFile, err)
		}
		offsets = append(offsets, rr.off)
		if i >= base {
			leaves = append(leaves, tlog.RecordHash(data))
		}
	}
	n := int64(len(offsets) - 1)
	end := offsets[n]

	if hashBytes > tlog.StoredHashIndex(0, n)*tlog.HashSize {
		if bad != nil {
			return fmt.Errorf("%w: entry %d at offset %d of %s is unreadable (%v), but its hash was written, so it had been acknowledged", ErrDamaged, n, end, entriesFile, bad)
		}
		return fmt.Errorf("%w: %s holds hashes for entry %d, but %s ends after %d entries: acknowledged entries are missing", ErrDamaged, hashesFile, n, entriesFile, n)
	}
	if haveCP && cp.Size > n {
		return fmt.Errorf("%w: checkpoint signed at size %d, but %s holds %d entries", ErrDamaged, cp.Size, entriesFile, n)
	}
	st, err := l.records.Stat()
	if err != nil {
		return err
	}
	if st.Size() > end {
		// A torn tail nobody was told about (it has no hash slot).
		if err := l.records.Truncate(end); err != nil {
			return fmt.Errorf("truncate torn tail of %s at %d: %w", entriesFile, end, err)
		}
		if err := l.records.Sync(); err != nil {
			return fmt.Errorf("truncate torn tail of %s: fsync: %w", entriesFile, err)
		}
	}

	fr := &fileHashes{f: l.hashes, n: tlog.StoredHashCount(base)}
	if base > 0 {
		root, err := tlog.TreeHash(base, fr)
		if err != nil {
			return fmt.Errorf("read %s: %w", hashesFile, err)
		}
		if root != cp.Root {
			return fmt.Errorf("%w: %s disagrees with the checkpoint at size %d (run Verify)", ErrDamaged, hashesFile, cp.Size)
		}
	}
	for i, leaf := range leaves {
		hs, err := tlog.StoredHashesForRecordHash(base+int64(i), leaf, fr)
		if err != nil {
			return fmt.Errorf("rehash entry %d: %w", base+int64(i), err)
		}
		fr.pending = append(fr.pending, hs...)
	}
	if haveCP && base == 0 && cp.Size > 0 {
		root, err := tlog.TreeHash(cp.Size, fr)
		if err != nil {
			return fmt.Errorf("rehash: %w", err)
		}
		if root != cp.Root {
			return fmt.Errorf("%w: entries do not match the checkpoint at size %d (run Verify)", ErrDamaged, cp.Size)
		}
	}
	if err := l.rewriteHashes(fr, haveHashes, hashBytes); err != nil {
		return err
	}

	l.offsets = offsets
	l.size = n
	// The hashes the checkpoint vouches for were fsynced before it was
	// signed, and rewriteHashes fsyncs what it writes; hashes it found
	// already in place after the checkpoint may only be in the page cache
	// of a process that crashed, so they count as not yet durable.
	l.syncedHashes = tlog.StoredHashCount(base)
	l.root, err = tlog.TreeHash(n, &fileHashes{f: l.hashes, n: tlog.StoredHashCount(n)})
	if err != nil {
		return fmt.Errorf("tree hash: %w", err)
	}
	return nil
}

// rewriteHashes makes hashes.bin hold the trusted prefix followed by
// fr.pending, writing only from the first hash that differs.
func (l *Log) rewriteHashes(fr *fileHashes, haveHashes, hashBytes int64) error {
	want := fr.n + int64(len(fr.pending))
	onDisk := min(haveHashes, want) - fr.n
	var stored []byte
	if onDisk > 0 {
		stored = make([]byte, onDisk*tlog.HashSize)
		if _, err := l.hashes.ReadAt(stored, fr.n*tlog.HashSize); err != nil {
			return fmt.Errorf("read %s: %w", hashesFile, err)
		}
	}
	k := int64(0)
	for ; k < onDisk; k++ {
		if !bytes.Equal(stored[k*tlog.HashSize:(k+1)*tlog.HashSize], fr.pending[k][:]) {
			break
		}
	}
	if k == int64(len(fr.pending)) && hashBytes == want*tlog.HashSize {
		return nil
	}
	buf := make([]byte, 0, (int64(len(fr.pending))-k)*tlog.HashSize)
	for _, h := range fr.pending[k:] {
		buf = append(buf, h[:]...)
	}
	if _, err := l.hashes.WriteAt(buf, (fr.n+k)*tlog.HashSize); err != nil {
		return fmt.Errorf("rewrite %s: %w", hashesFile, err)
	}
	if err := l.hashes.Truncate(want * tlog.HashSize); err != nil {
		return fmt.Errorf("rewrite %s: %w", hashesFile, err)
	}
	if err := l.hashes.Sync(); err != nil {
		return fmt.Errorf("rewrite %s: fsync: %w", hashesFile, err)
	}
	return nil
}
