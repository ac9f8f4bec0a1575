package auditlog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/federa-dev/federa/internal/fsutil"
)

// File names inside a log directory.
const (
	entriesFile    = "entries.log"
	hashesFile     = "hashes.bin"
	lockFileName   = "LOCK"
	checkpointsDir = "checkpoints"
)

var (
	// ErrLocked means another Log (in this or another process) has the
	// directory open for writing.
	ErrLocked = errors.New("auditlog: log is open elsewhere")
	// ErrClosed is returned by a Log after Close.
	ErrClosed = errors.New("auditlog: log closed")
	// ErrNoSigner is returned by Checkpoint when Options.Signer is nil.
	ErrNoSigner = errors.New("auditlog: no signer configured")
	// ErrNoCheckpoint is returned by LatestCheckpoint before the first
	// Checkpoint.
	ErrNoCheckpoint = errors.New("auditlog: no checkpoint yet")
	// ErrDamaged means the files on disk disagree in a way a crash cannot
	// explain; Open refuses to repair it because that could drop
	// acknowledged entries. Run Verify to find out what changed.
	ErrDamaged = errors.New("auditlog: log damaged")
)

// Options configures a Log. The zero value opens a log that can append
// and prove but not sign checkpoints.
type Options struct {
	// Origin is the first line of every checkpoint, naming this log. It
	// defaults to the signer's name.
	Origin string
	// Signer signs checkpoints. Nil disables Checkpoint.
	Signer note.Signer
	// Now stamps entries appended with a zero Time. Default time.Now.
	Now func() time.Time
}

// Log is an append-only, tamper-evident audit log stored in one directory.
// It is safe for concurrent use; one process at a time may open a
// directory.
type Log struct {
	dir  string
	opts Options

	mu      sync.RWMutex
	records logFile
	hashes  logFile
	lock    *os.File
	// offsets[i] is where record i starts in entries.log; offsets[size] is
	// the end of the last record, where the next one will be written.
	offsets []int64
	size    int64
	root    tlog.Hash
	// broken is set when a write or fsync failed and undoing it (rollback)
	// failed too: the files may hold bytes past what this Log accounts
	// for. The next Append tries the rollback again before it writes.
	broken error
	// resyncHashes is set when fsyncing hashes.bin failed: pages the
	// kernel could not write may since have been marked clean, so the next
	// Checkpoint writes the hashes from syncedHashes on again before it
	// fsyncs and signs.
	resyncHashes bool
	// syncedHashes is how many stored hashes are known to be on disk.
	syncedHashes int64
	closed       bool
}

// logFile is what a Log needs of entries.log and hashes.bin; *os.File in
// production.
type logFile interface {
	io.ReaderAt
	io.WriterAt
	io.Closer
	Sync() error
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
	Name() string
}

// Open opens the log in dir, creating it if needed, and repairs what a
// crash can leave behind: a torn tail record that was never acknowledged
// is cut off, and stored hashes missing or garbled after the latest
// checkpoint are recomputed from the records. Anything else that does not
// add up is ErrDamaged, never repaired.
//
// Open reads every record once (to index them and check their checksums),
// checks the stored subtree hashes that make up the latest checkpoint's
// root, and rehashes the records appended since that checkpoint. It does
// not re-verify every stored hash; Verify does.
func Open(dir string, opts Options) (*Log, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Origin == "" && opts.Signer != nil {
		opts.Origin = opts.Signer.Name()
	}
	// The origin is the first line of a signed note, which must be UTF-8
	// without control characters, or the checkpoints could not be opened.
	if !utf8.ValidString(opts.Origin) || strings.IndexFunc(opts.Origin, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return nil, fmt.Errorf("open audit log %s: origin %q must be UTF-8 text on one line", dir, opts.Origin)
	}
	if err := os.MkdirAll(filepath.Join(dir, checkpointsDir), 0o750); err != nil {
		return nil, fmt.Errorf("open audit log %s: %w", dir, err)
	}
	l := &Log{dir: dir, opts: opts}
	if err := l.open(); err != nil {
		l.closeFiles()
		return nil, fmt.Errorf("open audit log %s: %w", dir, err)
	}
	return l, nil
}

func (l *Log) open() error {
	var err error
	if l.lock, err = os.OpenFile(filepath.Join(l.dir, lockFileName), os.O_RDWR|os.O_CREATE, 0o640); err != nil {
		return err
	}
	if err := lockFile(l.lock); err != nil {
		return err
	}
	// A crash while a signed checkpoint was written leaves its temporary
	// file; the checkpoint never counted (nothing reads it), so it goes.
	if _, err := fsutil.RemoveTemps(filepath.Join(l.dir, checkpointsDir), "*.txt"); err != nil {
		return err
	}
	records, err := os.OpenFile(filepath.Join(l.dir, entriesFile), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	l.records = records
	hashes, err := os.OpenFile(filepath.Join(l.dir, hashesFile), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	l.hashes = hashes
	// The files may have just been created; their names must survive a
	// crash as surely as their contents.
	if err := syncDir(l.dir); err != nil {
		return err
	}
	return l.recover()
}

func (l *Log) closeFiles() {
	if l.records != nil {
		l.records.Close()
	}
	if l.hashes != nil {
		l.hashes.Close()
	}
	if l.lock != nil {
		l.lock.Close()
	}
}

// Close releases the files and the directory lock. It is idempotent.
// Everything appended is already durable, so Close has nothing to flush.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	var errs []error
	for _, f := range []io.Closer{l.records, l.hashes, l.lock} {
		if err := f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close audit log %s: %w", l.dir, err)
	}
	return nil
}

// Dir returns the log's directory.
func (l *Log) Dir() string { return l.dir }

// Size returns the number of entries.
func (l *Log) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.size
}

// Root returns the RFC 6962 Merkle tree hash of all entries.
func (l *Log) Root() tlog.Hash {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.root
}

// RootAt returns the tree hash of the first size entries.
func (l *Log) RootAt(size int64) (tlog.Hash, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.readable(); err != nil {
		return tlog.Hash{}, err
	}
	if size < 0 || size > l.size {
		return tlog.Hash{}, fmt.Errorf("tree hash at size %d: log has %d entries", size, l.size)
	}
	h, err := tlog.TreeHash(size, l.hashReader())
	if err != nil {
		return tlog.Hash{}, fmt.Errorf("tree hash at size %d: %w", size, err)
	}
	return h, nil
}

// Append adds entries in order and returns the index of the first. The
// records are fsynced before Append returns, so an acknowledged entry
// survives any crash (their hashes are recomputed if a crash loses them). Entries with a zero Time get
// Options.Now. An entry that does not encode fails the whole call before
// anything is written.
//
// If writing or fsyncing fails (a full disk, say), Append cuts the files
// back to where they ended before the call, fsyncs that, and returns the
// error: none of the call's entries is in the log, the Log's size and root
// are unchanged, and the next Append (once there is space) goes on from
// there; no reopen is needed. If the cut itself fails, the error says so
// and every later Append tries it again before writing. Only a crash in
// between (before the cut is durable) can leave the call's entries in the
// log after a failed Append — whole, never part of one, as after any crash
// — so a caller that retries after a restart must be able to tell.
func (l *Log) Append(entries ...Entry) (first int64, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.readable(); err != nil {
		return 0, err
	}
	if l.broken != nil {
		if err := l.rollback(); err != nil {
			return 0, fmt.Errorf("append: undo an earlier failed write (%v): %w", l.broken, err)
		}
	}
	first = l.size
	if len(entries) == 0 {
		return first, nil
	}

	var recs []byte
	hr := l.hashReader()
	offsets := make([]int64, 0, len(entries))
	end := l.offsets[l.size]
	for i, e := range entries {
		if e.Time.IsZero() {
			e.Time = l.opts.Now()
		}
		b, err := e.Canonical()
		if err != nil {
			return 0, fmt.Errorf("append entry %d of %d: %w", i+1, len(entries), err)
		}
		recs = appendRecord(recs, b)
		offsets = append(offsets, end+int64(len(recs)))
		hs, err := tlog.StoredHashes(first+int64(i), b, hr)
		if err != nil {
			return 0, fmt.Errorf("append entry %d of %d: hash: %w", i+1, len(entries), err)
		}
		hr.pending = append(hr.pending, hs...)
	}
	n := first + int64(len(entries))
	root, err := tlog.TreeHash(n, hr)
	if err != nil {
		return 0, fmt.Errorf("append: tree hash: %w", err)
	}

	// Records first, durably, then hashes: Open relies on this order. A
	// hash on disk proves its record was fsynced, so a damaged record with
	// a hash is corruption to report, while one without is a torn write
	// nobody was told about, safe to cut off.
	if err := writeSync(l.records, recs, end); err != nil {
		return 0, l.undo(fmt.Errorf("append %d entries to %s: %w", len(entries), l.records.Name(), err))
	}
	// The records are durable, their hashes and the tree are not
	// (chaos/failpoint_test.go).
	// gofail: var auditAfterRecords struct{}
	hbuf := make([]byte, 0, len(hr.pending)*tlog.HashSize)
	for _, h := range hr.pending {
		hbuf = append(hbuf, h[:]...)
	}
	// Hashes are written but not fsynced here: an entry is durable once its
	// record is, and hashes that a crash loses are recomputed from the
	// records at the next Open. Checkpoint fsyncs them before it signs, so
	// hashes a checkpoint vouches for are always on disk. One fsync per
	// Append instead of two halves the cost of a round's audit entries.
	if _, err := l.hashes.WriteAt(hbuf, hr.n*tlog.HashSize); err != nil {
		return 0, l.undo(fmt.Errorf("append %d entries to %s: %w", len(entries), l.hashes.Name(), err))
	}

	l.offsets = append(l.offsets, offsets...)
	l.size = n
	l.root = root
	return first, nil
}

func writeSync(f logFile, b []byte, off int64) error {
	if _, err := f.WriteAt(b, off); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync: %w", err)
	}
	return nil
}

// undo is Append's failure path: it rolls the files back to what the Log
// accounts for and returns err saying whether that worked.
func (l *Log) undo(err error) error {
	l.broken = err
	if rerr := l.rollback(); rerr != nil {
		return fmt.Errorf("%w; undoing the partial write failed too, so the next append retries that first: %v", err, rerr)
	}
	return fmt.Errorf("%w (nothing was appended; the log is as it was)", err)
}

// rollback cuts entries.log and hashes.bin back to the Log's size and
// makes the cut durable. The in-memory state (offsets, size, root) is
// only ever advanced after a successful write, so it is the truth the
// files are cut back to.
//
// Hashes first: once entries.log is cut, a hash on disk past its end would
// read as an acknowledged entry gone missing (ErrDamaged at Open), while a
// whole record past the hashes' end is only an unacknowledged one, which
// Open keeps or cuts.
//
// A failed fsync may have dropped dirty pages (marking them clean), but
// every byte before the cut was fsynced by an earlier, successful Append
// and never written since, so after the cut and a successful fsync the
// file on disk is exactly the log's records.
func (l *Log) rollback() error {
	want := tlog.StoredHashCount(l.size) * tlog.HashSize
	if err := l.hashes.Truncate(want); err != nil {
		return fmt.Errorf("cut %s back to %d bytes: %w", l.hashes.Name(), want, err)
	}
	if err := l.hashes.Sync(); err != nil {
		return fmt.Errorf("cut %s back to %d bytes: fsync: %w", l.hashes.Name(), want, err)
	}
	end := l.offsets[l.size]
	if err := l.records.Truncate(end); err != nil {
		return fmt.Errorf("cut %s back to %d bytes: %w", l.records.Name(), end, err)
	}
	if err := l.records.Sync(); err != nil {
		return fmt.Errorf("cut %s back to %d bytes: fsync: %w", l.records.Name(), end, err)
	}
	l.broken = nil
	return nil
}

func (l *Log) readable() error {
	if l.closed {
		return ErrClosed
	}
	return nil
}

func (l *Log) hashReader() *fileHashes {
	return &fileHashes{f: l.hashes, n: tlog.StoredHashCount(l.size)}
}

// Entry returns the exact bytes of entry i (its canonical encoding, the
// Merkle leaf). ParseEntry decodes them.
func (l *Log) Entry(i int64) ([]byte, error) {
	l.mu.RLock()
	if err := l.readable(); err != nil {
		l.mu.RUnlock()
		return nil, err
	}
	if i < 0 || i >= l.size {
		l.mu.RUnlock()
		return nil, fmt.Errorf("read entry %d: log has %d entries", i, l.size)
	}
	start, end := l.offsets[i], l.offsets[i+1]
	l.mu.RUnlock()
	// Records before size never change, so the read needs no lock.
	return readRecordAt(l.records, start, end)
}

func readRecordAt(f logFile, start, end int64) ([]byte, error) {
	buf := make([]byte, end-start)
	if _, err := f.ReadAt(buf, start); err != nil {
		return nil, fmt.Errorf("read record at %d in %s: %w", start, f.Name(), err)
	}
	var hdr [recordHeaderSize]byte
	copy(hdr[:], buf)
	data := buf[recordHeaderSize:]
	if err := checkRecord(hdr, data); err != nil {
		return nil, fmt.Errorf("read record at %d in %s: %w", start, f.Name(), err)
	}
	return data, nil
}

// InclusionProof proves that entry i is in the tree of the given size
// (RFC 6962 audit path; check with tlog.CheckRecord or VerifyInclusion).
func (l *Log) InclusionProof(i, size int64) (tlog.RecordProof, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.readable(); err != nil {
		return nil, err
	}
	if size > l.size || i < 0 || i >= size {
		return nil, fmt.Errorf("inclusion proof of %d in tree of size %d: log has %d entries", i, size, l.size)
	}
	p, err := tlog.ProveRecord(size, i, l.hashReader())
	if err != nil {
		return nil, fmt.Errorf("inclusion proof of %d in tree of size %d: %w", i, size, err)
	}
	return p, nil
}

// ConsistencyProof proves that the tree of size newSize extends the tree
// of size oldSize (RFC 6962 consistency proof; check with tlog.CheckTree).
// From an empty tree the proof is empty.
func (l *Log) ConsistencyProof(oldSize, newSize int64) (tlog.TreeProof, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.readable(); err != nil {
		return nil, err
	}
	if oldSize < 0 || oldSize > newSize || newSize > l.size {
		return nil, fmt.Errorf("consistency proof %d -> %d: log has %d entries", oldSize, newSize, l.size)
	}
	if oldSize == 0 {
		return tlog.TreeProof{}, nil
	}
	p, err := tlog.ProveTree(newSize, oldSize, l.hashReader())
	if err != nil {
		return nil, fmt.Errorf("consistency proof %d -> %d: %w", oldSize, newSize, err)
	}
	return p, nil
}
