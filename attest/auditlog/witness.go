package auditlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// ErrForked is wrapped by Witness.Observe when a checkpoint cannot belong
// to the same history as the one seen before: the coordinator showed this
// witness two different logs, or rewrote its own.
var ErrForked = errors.New("coordinator log forked or rewritten")

const witnessFile = "checkpoint.txt"

// Witness is the site side of fork detection. It remembers the last
// checkpoint it accepted (in a file, so the memory survives restarts) and
// accepts a new one only with a consistency proof from it. Sites that
// compare notes, or co-sign checkpoints (CoSign) that the coordinator must
// then show to everyone, turn a private fork into a detectable one.
type Witness struct {
	dir  string
	keys *keySet

	mu     sync.Mutex
	latest *Checkpoint
	note   []byte
}

// OpenWitness opens (or starts) a witness's state in dir for the log
// whose verifier key is logKey.
func OpenWitness(dir, logKey string) (*Witness, error) {
	ks, err := newKeySet(logKey, nil)
	if err != nil {
		return nil, fmt.Errorf("open witness %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("open witness %s: %w", dir, err)
	}
	w := &Witness{dir: dir, keys: ks}
	msg, err := os.ReadFile(filepath.Join(dir, witnessFile))
	if errors.Is(err, os.ErrNotExist) {
		return w, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open witness %s: %w", dir, err)
	}
	cp, err := ks.open(msg)
	if err != nil {
		return nil, fmt.Errorf("open witness %s: stored checkpoint: %w", dir, err)
	}
	w.latest, w.note = &cp, msg
	return w, nil
}

// Latest returns the last accepted checkpoint and its note; ok is false
// before the first.
func (w *Witness) Latest() (cp Checkpoint, note []byte, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.latest == nil {
		return Checkpoint{}, nil, false
	}
	return *w.latest, w.note, true
}

// Observe accepts checkpoint if it is signed by the log and extends the
// last accepted one: proof must be the log's ConsistencyProof from the
// last accepted size to the new one (ignored for the first checkpoint,
// which is trusted on first use). A smaller tree, a different root at the
// same size, or a failing proof returns an error wrapping ErrForked, and
// the stored checkpoint is left as it was. A bad signature is not a fork
// and is reported as such.
func (w *Witness) Observe(checkpoint []byte, proof tlog.TreeProof) error {
	cp, err := w.keys.open(checkpoint)
	if err != nil {
		return fmt.Errorf("witness: checkpoint rejected: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if old := w.latest; old != nil {
		if cp.Origin != old.Origin {
			return fmt.Errorf("witness: checkpoint is for log %q, this witness follows %q", cp.Origin, old.Origin)
		}
		switch {
		case cp.Size < old.Size:
			return fmt.Errorf("%w: tree shrank from %d to %d entries", ErrForked, old.Size, cp.Size)
		case cp.Size == old.Size:
			if cp.Root != old.Root {
				return fmt.Errorf("%w: two different trees of size %d (roots %s and %s)", ErrForked, cp.Size, old.Root, cp.Root)
			}
			return nil
		case old.Size > 0:
			if err := tlog.CheckTree(proof, cp.Size, cp.Root, old.Size, old.Root); err != nil {
				return fmt.Errorf("%w: tree of size %d does not extend the tree of size %d seen before: %v", ErrForked, cp.Size, old.Size, err)
			}
		}
	}
	if err := writeFileAtomic(filepath.Join(w.dir, witnessFile), checkpoint, 0o644); err != nil {
		return fmt.Errorf("witness: store checkpoint: %w", err)
	}
	w.latest, w.note = &cp, checkpoint
	return nil
}
