package auditlog

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// faultyFile is entries.log or hashes.bin on a disk that fills up: WriteAt
// writes at most budget bytes (a short write, as a full disk makes) and
// then fails with ENOSPC; the next failSyncs Syncs fail with EIO (as
// a device error reports once, to the next fsync); Truncate fails while
// told to.
type faultyFile struct {
	logFile
	budget       int64 // bytes WriteAt may still write; < 0: no limit
	failSyncs    int
	failTruncate bool
	writes       []int64 // offsets of the WriteAt calls
}

var errNoSpace = &os.PathError{Op: "write", Path: "(disk)", Err: syscall.ENOSPC}

func (f *faultyFile) WriteAt(b []byte, off int64) (int, error) {
	f.writes = append(f.writes, off)
	if f.budget >= 0 && int64(len(b)) > f.budget {
		n, _ := f.logFile.WriteAt(b[:f.budget], off)
		f.budget -= int64(n)
		return n, errNoSpace
	}
	if f.budget >= 0 {
		f.budget -= int64(len(b))
	}
	return f.logFile.WriteAt(b, off)
}

func (f *faultyFile) Sync() error {
	if f.failSyncs > 0 {
		f.failSyncs--
		return &os.PathError{Op: "fsync", Path: f.Name(), Err: syscall.EIO}
	}
	return f.logFile.Sync()
}

func (f *faultyFile) Truncate(n int64) error {
	if f.failTruncate {
		return &os.PathError{Op: "truncate", Path: f.Name(), Err: syscall.EIO}
	}
	return f.logFile.Truncate(n)
}

func (f *faultyFile) heal() { f.budget, f.failSyncs, f.failTruncate = -1, 0, false }

// checkOnDisk asserts the files hold exactly what the Log accounts for:
// no torn tail, no stray hash.
func checkOnDisk(t *testing.T, l *Log) {
	t.Helper()
	if st, err := os.Stat(filepath.Join(l.Dir(), entriesFile)); err != nil || st.Size() != l.offsets[l.size] {
		t.Fatalf("entries.log: %v, %d bytes; the log accounts for %d", err, st.Size(), l.offsets[l.size])
	}
	if st, err := os.Stat(filepath.Join(l.Dir(), hashesFile)); err != nil || st.Size() != tlog.StoredHashCount(l.size)*tlog.HashSize {
		t.Fatalf("hashes.bin: %v, %d bytes; want %d", err, st.Size(), tlog.StoredHashCount(l.size)*tlog.HashSize)
	}
}

// TestFailedAppendLeavesTheLogAppendable: a write or fsync that fails in
// the middle of an Append (a full disk) leaves the log as it was before
// the call — files cut back, size and root unchanged — and once the fault
// is gone the same Log appends again, without a reopen, and the result
// verifies and reopens.
func TestFailedAppendLeavesTheLogAppendable(t *testing.T) {
	cases := []struct {
		name string
		// fault breaks the files after the first good appends.
		fault func(records, hashes *faultyFile)
		want  string // in the error
	}{
		{"entries.log short write", func(r, _ *faultyFile) { r.budget = 100 }, "no space left on device"},
		{"entries.log fsync", func(r, _ *faultyFile) { r.failSyncs = 1 }, "fsync"},
		{"hashes.bin short write", func(_, h *faultyFile) { h.budget = 40 }, "no space left on device"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			signer, vkey := testKey(t, "federa.test/log")
			l := openTestLog(t, dir, signer)
			for i := range 5 {
				mustAppend(t, l, sampleEntry(t, i, ""))
			}
			mustCheckpoint(t, l)
			rec := &faultyFile{logFile: l.records, budget: -1}
			hs := &faultyFile{logFile: l.hashes, budget: -1}
			l.records, l.hashes = rec, hs
			size, root := l.Size(), l.Root()

			tc.fault(rec, hs)
			_, err := l.Append(sampleEntry(t, 5, ""), sampleEntry(t, 6, ""), sampleEntry(t, 7, ""))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "nothing was appended") {
				t.Fatalf("append on a failing disk: %v; want an error with %q saying nothing was appended", err, tc.want)
			}
			if l.Size() != size || l.Root() != root {
				t.Fatalf("after the failed append: size %d root %v, want %d %v", l.Size(), l.Root(), size, root)
			}
			checkOnDisk(t, l)

			rec.heal()
			hs.heal()
			first, err := l.Append(sampleEntry(t, 5, ""), sampleEntry(t, 6, ""))
			if err != nil || first != size {
				t.Fatalf("append once the space is back: first %d, %v; want %d, nil", first, err, size)
			}
			checkOnDisk(t, l)
			mustCheckpoint(t, l)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			rep, err := Verify(dir, vkey)
			if err != nil || rep.Size != size+2 {
				t.Fatalf("verify: %+v, %v; want %d entries", rep, err, size+2)
			}
			l2 := openTestLog(t, dir, signer)
			if l2.Size() != size+2 {
				t.Fatalf("reopened with %d entries, want %d", l2.Size(), size+2)
			}
		})
	}
}

// TestFailedRollbackIsRetried: when even cutting the files back fails,
// Append says so, refuses to write on top of the stray bytes, and retries
// the cut first at every later Append; the first that gets through
// appends where the log really ended.
func TestFailedRollbackIsRetried(t *testing.T) {
	dir := t.TempDir()
	signer, vkey := testKey(t, "federa.test/log")
	l := openTestLog(t, dir, signer)
	mustAppend(t, l, sampleEntry(t, 0, ""), sampleEntry(t, 1, ""))
	rec := &faultyFile{logFile: l.records, budget: 70, failTruncate: true}
	l.records = rec
	if _, err := l.Append(sampleEntry(t, 2, "")); err == nil || !strings.Contains(err.Error(), "undoing the partial write failed") {
		t.Fatalf("append with a failing cut: %v", err)
	}
	rec.budget = -1
	writes := len(rec.writes)
	if _, err := l.Append(sampleEntry(t, 3, "")); err == nil || !strings.Contains(err.Error(), "undo an earlier failed write") {
		t.Fatalf("append while the cut still fails: %v", err)
	}
	if len(rec.writes) != writes {
		t.Fatal("append wrote on top of an uncut partial write")
	}
	rec.heal()
	if first, err := l.Append(sampleEntry(t, 4, "")); err != nil || first != 2 {
		t.Fatalf("append once the cut succeeds: %d, %v; want 2, nil", first, err)
	}
	checkOnDisk(t, l)
	mustCheckpoint(t, l)
	l.Close()
	if rep, err := Verify(dir, vkey); err != nil || rep.Size != 3 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}

// TestFailedHashSyncIsRedone: a checkpoint whose fsync of hashes.bin
// fails is not signed, appends go on, and the next checkpoint writes the
// hashes not known to be durable again before it fsyncs (a second fsync
// alone could report success for pages the first one dropped).
func TestFailedHashSyncIsRedone(t *testing.T) {
	dir := t.TempDir()
	signer, vkey := testKey(t, "federa.test/log")
	l := openTestLog(t, dir, signer)
	mustAppend(t, l, sampleEntry(t, 0, ""), sampleEntry(t, 1, ""))
	mustCheckpoint(t, l)
	synced := l.syncedHashes
	hs := &faultyFile{logFile: l.hashes, budget: -1, failSyncs: 1}
	l.hashes = hs
	mustAppend(t, l, sampleEntry(t, 2, ""))
	if _, err := l.Checkpoint(); err == nil || !strings.Contains(err.Error(), "sync hashes") {
		t.Fatalf("checkpoint with a failing fsync: %v", err)
	}
	mustAppend(t, l, sampleEntry(t, 3, ""))
	hs.heal()
	hs.writes = nil
	mustCheckpoint(t, l)
	if len(hs.writes) != 1 || hs.writes[0] != synced*tlog.HashSize {
		t.Fatalf("the checkpoint after a failed fsync wrote hashes at %v, want once at %d (the first hash not known durable)", hs.writes, synced*tlog.HashSize)
	}
	l.Close()
	if rep, err := Verify(dir, vkey); err != nil || rep.Size != 4 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}

// TestAppendOnFullTmpfs is the same promise on a real full disk: a 1 MB
// tmpfs filled until an Append fails with ENOSPC (a short write leaves a
// torn record behind), then space freed.
func TestAppendOnFullTmpfs(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("skipped: cannot mount a tmpfs to fill (needs root with CAP_SYS_ADMIN; the fault-injected cases above run anyway): %v: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", mnt).Run() })
	dir := filepath.Join(mnt, "audit")
	signer, vkey := testKey(t, "federa.test/log")
	l := openTestLog(t, dir, signer)
	for i := range 4 {
		mustAppend(t, l, sampleEntry(t, i, ""))
	}
	mustCheckpoint(t, l)
	// Leave less room than one batch below.
	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	f.Close()
	var big []Entry
	for i := range 200 {
		big = append(big, sampleEntry(t, 4+i, "padding"))
	}
	size, root := l.Size(), l.Root()
	_, err = l.Append(big...)
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), entriesFile) {
		t.Fatalf("append to a full tmpfs: %v; want ENOSPC naming %s", err, entriesFile)
	}
	t.Logf("full disk: %v", err)
	if l.Size() != size || l.Root() != root {
		t.Fatalf("after the failed append: size %d, want %d", l.Size(), size)
	}
	checkOnDisk(t, l)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if first, err := l.Append(big...); err != nil || first != size {
		t.Fatalf("append once the space is back: %d, %v", first, err)
	}
	mustCheckpoint(t, l)
	l.Close()
	if rep, err := Verify(dir, vkey); err != nil || rep.Size != size+200 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}
