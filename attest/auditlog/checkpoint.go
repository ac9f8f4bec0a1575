package auditlog

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	tlogfmt "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is a verified tree head: a C2SP tlog-checkpoint signed by the
// log, possibly co-signed by witnesses.
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
	// Witnesses names the witness keys whose co-signatures were verified.
	Witnesses []string
}

// checkpointName is the file for the checkpoint of a tree size. Zero
// padding makes lexical order size order, and one file per size means a
// checkpoint is rewritten only to add co-signatures (ed25519 signatures
// are deterministic, so re-signing a size yields the same bytes).
func checkpointName(size int64) string { return fmt.Sprintf("%020d.txt", size) }

func checkpointPath(dir string, size int64) string {
	return filepath.Join(dir, checkpointsDir, checkpointName(size))
}

type checkpointFile struct {
	size int64 // from the file name
	path string
}

// listCheckpoints returns the checkpoint files of a log, smallest first.
// Other files (temporary files of an interrupted write) are skipped.
func listCheckpoints(dir string) ([]checkpointFile, error) {
	des, err := os.ReadDir(filepath.Join(dir, checkpointsDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	var out []checkpointFile
	for _, de := range des {
		name := de.Name()
		digits, ok := strings.CutSuffix(name, ".txt")
		if !ok || len(digits) != 20 || !de.Type().IsRegular() {
			continue
		}
		size, err := strconv.ParseInt(digits, 10, 64)
		if err != nil || size < 0 {
			continue
		}
		out = append(out, checkpointFile{size: size, path: filepath.Join(dir, checkpointsDir, name)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].size < out[j].size })
	return out, nil
}

// latestCheckpointHead reads the newest checkpoint's tree head without
// checking signatures: Open uses it only to check its own files against
// what it signed. Verify does the real checking.
func latestCheckpointHead(dir string) (Checkpoint, bool, error) {
	files, err := listCheckpoints(dir)
	if err != nil || len(files) == 0 {
		return Checkpoint{}, false, err
	}
	last := files[len(files)-1]
	msg, err := os.ReadFile(last.path)
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("read checkpoint: %w", err)
	}
	n, err := openUnverified(msg)
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("%w: checkpoint %s: %v", ErrDamaged, last.path, err)
	}
	cp, err := parseCheckpointText(n.Text)
	if err != nil || cp.Size != last.size {
		return Checkpoint{}, false, fmt.Errorf("%w: checkpoint %s does not hold a tree of size %d", ErrDamaged, last.path, last.size)
	}
	return cp, true, nil
}

// openUnverified parses a note without checking any signature; every
// signature lands in UnverifiedSigs.
func openUnverified(msg []byte) (*note.Note, error) {
	_, err := note.Open(msg, note.VerifierList())
	var u *note.UnverifiedNoteError
	if errors.As(err, &u) {
		return u.Note, nil
	}
	if err == nil {
		return nil, errors.New("note verified by an empty verifier list")
	}
	return nil, err
}

// parseCheckpointText parses the body of a checkpoint note strictly: the
// three C2SP lines and nothing else, in the one spelling Marshal produces.
// This log never writes extension lines, so any are refused rather than
// ignored.
func parseCheckpointText(text string) (Checkpoint, error) {
	var c tlogfmt.Checkpoint
	rest, err := c.Unmarshal([]byte(text))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("parse checkpoint: %w", err)
	}
	if len(rest) > 0 {
		return Checkpoint{}, errors.New("parse checkpoint: unexpected extension lines")
	}
	if len(c.Hash) != tlog.HashSize {
		return Checkpoint{}, fmt.Errorf("parse checkpoint: root hash is %d bytes, want %d", len(c.Hash), tlog.HashSize)
	}
	if c.Size > math.MaxInt64 {
		return Checkpoint{}, fmt.Errorf("parse checkpoint: size %d too large", c.Size)
	}
	if !bytes.Equal(c.Marshal(), []byte(text)) {
		return Checkpoint{}, errors.New("parse checkpoint: not in canonical form")
	}
	return Checkpoint{Origin: c.Origin, Size: int64(c.Size), Root: tlog.Hash(c.Hash)}, nil
}

func marshalCheckpoint(origin string, size int64, root tlog.Hash) []byte {
	return tlogfmt.Checkpoint{Origin: origin, Size: uint64(size), Hash: root[:]}.Marshal()
}

// Checkpoint signs the current tree head, stores it under
// checkpoints/<size>.txt and returns the signed note. Every checkpoint is
// kept: Verify checks each one and the consistency between them. Signing
// the same size again returns the stored note with any co-signatures.
func (l *Log) Checkpoint() ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.readable(); err != nil {
		return nil, err
	}
	if l.opts.Signer == nil {
		return nil, ErrNoSigner
	}
	text := marshalCheckpoint(l.opts.Origin, l.size, l.root)
	path := checkpointPath(l.dir, l.size)
	if old, err := os.ReadFile(path); err == nil {
		// Never replace a signed statement about this size: if the text
		// differs (the origin was changed) the old one stays and the
		// operator decides.
		if n, err := openUnverified(old); err != nil || n.Text != string(text) {
			return nil, fmt.Errorf("sign checkpoint at size %d: %s already holds a different checkpoint", l.size, path)
		}
		return old, nil
	}
	// The hashes this checkpoint vouches for must be on disk first (Append
	// leaves their fsync to here).
	if err := l.syncHashes(); err != nil {
		return nil, fmt.Errorf("sign checkpoint at size %d: sync hashes: %w", l.size, err)
	}
	msg, err := note.Sign(&note.Note{Text: string(text)}, l.opts.Signer)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint at size %d: %w", l.size, err)
	}
	if err := writeFileAtomic(path, msg, 0o644); err != nil {
		return nil, fmt.Errorf("store checkpoint at size %d: %w", l.size, err)
	}
	return msg, nil
}

// syncHashes makes every stored hash durable. After a failed fsync the
// kernel may have marked the pages it could not write clean, so a second
// fsync would report success for hashes that never reached the disk: the
// next call writes the hashes not known to be durable again (from the page
// cache, which holds what Append wrote) before it fsyncs.
func (l *Log) syncHashes() error {
	n := tlog.StoredHashCount(l.size)
	if l.resyncHashes && n > l.syncedHashes {
		buf := make([]byte, (n-l.syncedHashes)*tlog.HashSize)
		if _, err := l.hashes.ReadAt(buf, l.syncedHashes*tlog.HashSize); err != nil {
			return fmt.Errorf("reread %s: %w", l.hashes.Name(), err)
		}
		if _, err := l.hashes.WriteAt(buf, l.syncedHashes*tlog.HashSize); err != nil {
			return fmt.Errorf("rewrite %s: %w", l.hashes.Name(), err)
		}
	}
	if err := l.hashes.Sync(); err != nil {
		l.resyncHashes = true
		return err
	}
	l.resyncHashes = false
	l.syncedHashes = n
	return nil
}

// Checkpoints returns every stored checkpoint note, smallest tree first.
func (l *Log) Checkpoints() ([][]byte, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	files, err := listCheckpoints(l.dir)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, 0, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f.path)
		if err != nil {
			return nil, fmt.Errorf("read checkpoint: %w", err)
		}
		out = append(out, b)
	}
	return out, nil
}

// LatestCheckpoint returns the checkpoint of the largest tree, or
// ErrNoCheckpoint.
func (l *Log) LatestCheckpoint() ([]byte, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	files, err := listCheckpoints(l.dir)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, ErrNoCheckpoint
	}
	b, err := os.ReadFile(files[len(files)-1].path)
	if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	return b, nil
}

// AddCoSignature stores a witness's co-signature next to the log's own on
// the stored checkpoint of the same tree. The witness signature is checked
// first, so a bad one can never make the stored log fail Verify.
func (l *Log) AddCoSignature(cosigned []byte, witnessKey string) error {
	wv, err := note.NewVerifier(witnessKey)
	if err != nil {
		return fmt.Errorf("add co-signature: witness key: %w", err)
	}
	n, err := note.Open(cosigned, note.VerifierList(wv))
	if err != nil {
		return fmt.Errorf("add co-signature of %s: %w", wv.Name(), err)
	}
	cp, err := parseCheckpointText(n.Text)
	if err != nil {
		return fmt.Errorf("add co-signature of %s: %w", wv.Name(), err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.readable(); err != nil {
		return err
	}
	path := checkpointPath(l.dir, cp.Size)
	old, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("add co-signature of %s to checkpoint %d: %w", wv.Name(), cp.Size, err)
	}
	stored, err := openUnverified(old)
	if err != nil {
		return fmt.Errorf("add co-signature of %s to checkpoint %d: stored note: %w", wv.Name(), cp.Size, err)
	}
	if stored.Text != n.Text {
		return fmt.Errorf("add co-signature of %s: it signs a different tree of size %d than this log did", wv.Name(), cp.Size)
	}
	sig := n.Sigs[0]
	for _, s := range stored.UnverifiedSigs {
		if s.Name == sig.Name && s.Hash == sig.Hash {
			return nil
		}
	}
	stored.UnverifiedSigs = append(stored.UnverifiedSigs, sig)
	msg, err := note.Sign(stored)
	if err != nil {
		return fmt.Errorf("add co-signature of %s to checkpoint %d: %w", wv.Name(), cp.Size, err)
	}
	return writeFileAtomic(path, msg, 0o644)
}

// CoSign is what a witness does: check that checkpoint carries a valid
// signature by the log (logKey), then add its own. Signatures already on
// the note, the log's and other witnesses', are kept. A witness should
// co-sign only after Witness.Observe accepted the checkpoint.
func CoSign(checkpoint []byte, logKey string, signer note.Signer) ([]byte, error) {
	lv, err := note.NewVerifier(logKey)
	if err != nil {
		return nil, fmt.Errorf("co-sign checkpoint: log key: %w", err)
	}
	n, err := note.Open(checkpoint, note.VerifierList(lv))
	if err != nil {
		return nil, fmt.Errorf("co-sign checkpoint: %w", err)
	}
	if _, err := parseCheckpointText(n.Text); err != nil {
		return nil, fmt.Errorf("co-sign checkpoint: %w", err)
	}
	out, err := note.Sign(n, signer)
	if err != nil {
		return nil, fmt.Errorf("co-sign checkpoint as %s: %w", signer.Name(), err)
	}
	return out, nil
}

// VerifyCheckpoint checks msg's signature by the log key and a valid
// co-signature by every witness key given, and parses the tree head.
func VerifyCheckpoint(msg []byte, logKey string, witnessKeys ...string) (Checkpoint, error) {
	ks, err := newKeySet(logKey, witnessKeys)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("verify checkpoint: %w", err)
	}
	cp, err := ks.open(msg)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("verify checkpoint: %w", err)
	}
	if len(cp.Witnesses) != len(ks.witnesses) {
		have := map[string]bool{}
		for _, w := range cp.Witnesses {
			have[w] = true
		}
		for _, w := range ks.witnesses {
			if !have[w.Name()] {
				return Checkpoint{}, fmt.Errorf("verify checkpoint: no co-signature by witness %s", w.Name())
			}
		}
	}
	return cp, nil
}

// keySet is a log key and witness keys, ready to open notes.
type keySet struct {
	log       note.Verifier
	witnesses []note.Verifier
	list      note.Verifiers
}

func newKeySet(logKey string, witnessKeys []string) (*keySet, error) {
	lv, err := note.NewVerifier(logKey)
	if err != nil {
		return nil, fmt.Errorf("log key %q: %w", logKey, err)
	}
	ks := &keySet{log: lv}
	seen := map[string]bool{lv.Name(): true}
	all := []note.Verifier{lv}
	for _, k := range witnessKeys {
		wv, err := note.NewVerifier(k)
		if err != nil {
			return nil, fmt.Errorf("witness key %q: %w", k, err)
		}
		// Names must differ: a note signature names its key by name and
		// hash, and Checkpoint.Witnesses reports names.
		if seen[wv.Name()] {
			return nil, fmt.Errorf("witness key %q: name %s used twice", k, wv.Name())
		}
		seen[wv.Name()] = true
		ks.witnesses = append(ks.witnesses, wv)
		all = append(all, wv)
	}
	ks.list = note.VerifierList(all...)
	return ks, nil
}

// open verifies the log's signature and any witness signatures present
// (an invalid one is an error), and parses the checkpoint.
func (ks *keySet) open(msg []byte) (Checkpoint, error) {
	n, err := note.Open(msg, ks.list)
	var unverified *note.UnverifiedNoteError
	if errors.As(err, &unverified) {
		return Checkpoint{}, fmt.Errorf("not signed by the log key %s", ks.log.Name())
	}
	if err != nil {
		return Checkpoint{}, err
	}
	var cp Checkpoint
	logSigned := false
	var witnesses []string
	for _, s := range n.Sigs {
		if s.Name == ks.log.Name() && s.Hash == ks.log.KeyHash() {
			logSigned = true
		} else {
			witnesses = append(witnesses, s.Name)
		}
	}
	if !logSigned {
		return Checkpoint{}, fmt.Errorf("not signed by the log key %s", ks.log.Name())
	}
	cp, err = parseCheckpointText(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	sort.Strings(witnesses)
	cp.Witnesses = witnesses
	return cp, nil
}

// CheckInclusion checks that leaf (the bytes Log.Entry returns) is entry
// index of the tree c signs, using a proof from Log.InclusionProof for
// tree size c.Size.
func (c Checkpoint) CheckInclusion(index int64, leaf []byte, proof tlog.RecordProof) error {
	if err := tlog.CheckRecord(proof, c.Size, c.Root, index, tlog.RecordHash(leaf)); err != nil {
		return fmt.Errorf("check inclusion of entry %d in tree of size %d: %w", index, c.Size, err)
	}
	return nil
}
