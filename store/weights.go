package store

import (
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/federa-dev/federa/internal/fsutil"
)

// WeightsStager is implemented by stores that keep a checkpoint's weights
// in a file of their own rather than inside the checkpoint record: the
// coordinator writes the next checkpoint's weights there while the round
// is still being evaluated — streamed from the model's memory, never
// copied whole — and SaveRound, given a checkpoint without weights,
// adopts the staged file in the same transaction that stores the round.
// A round thus stores a model of any size without a model-sized buffer
// and without writing it on the round's critical path.
type WeightsStager interface {
	// StageWeights writes round's checkpoint weights of job jobID
	// (safetensors, as write produces them) to a durable file that no
	// checkpoint refers to yet, replacing any staged for the same round.
	StageWeights(jobID string, round int32, write func(io.Writer) error) error
}

var _ WeightsStager = (*Bolt)(nil)

// bucketCheckpointFiles maps a job id to the file (in checkpointDir)
// holding its checkpoint's weights, when the checkpoint record has none.
var bucketCheckpointFiles = []byte("checkpoint_files")

func (b *Bolt) checkpointDir() string { return filepath.Join(filepath.Dir(b.path), "checkpoints") }

// weightsFile names round's staged weights of job: the job's id as is
// when it is a plain name, hex otherwise, so no id reaches outside the
// folder.
func weightsFile(job string, round int32) string {
	name := job
	if job == "" || strings.ContainsFunc(job, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) {
		name = "x" + hex.EncodeToString([]byte(job))
	}
	return fmt.Sprintf("%s.r%d.safetensors", name, round)
}

// StageWeights implements WeightsStager: fsutil.Write (a temporary
// file, synced, renamed into place, its folder synced).
func (b *Bolt) StageWeights(jobID string, round int32, write func(io.Writer) error) error {
	dir := b.checkpointDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("store: checkpoint weights: %w", err)
	}
	if err := fsutil.Write(filepath.Join(dir, weightsFile(jobID, round)), 0o600, write); err != nil {
		return fmt.Errorf("store: checkpoint weights of job %s round %d: %w", jobID, round, err)
	}
	return nil
}

// adoptWeights makes the staged weights of cp's round the job's
// checkpoint weights, in tx; with weights in the record itself, it drops
// the job's file reference instead.
func (b *Bolt) adoptWeights(tx *bolt.Tx, jobID string, round int32, inRecord bool) error {
	files := tx.Bucket(bucketCheckpointFiles)
	if inRecord {
		return files.Delete([]byte(jobID))
	}
	name := weightsFile(jobID, round)
	if _, err := os.Stat(filepath.Join(b.checkpointDir(), name)); err != nil {
		return fmt.Errorf("store: checkpoint of job %s round %d has no weights and none were staged: %w", jobID, round, err)
	}
	return files.Put([]byte(jobID), []byte(name))
}

// weightsRef is the file of the job's checkpoint weights, or "" if the
// checkpoint record holds them.
func (b *Bolt) weightsRef(tx *bolt.Tx, jobID string) string {
	if v := tx.Bucket(bucketCheckpointFiles).Get([]byte(jobID)); v != nil {
		return string(v)
	}
	return ""
}

// pruneWeights removes the job's weight files other than keep ("" to
// remove them all): earlier rounds', and any staged for a round that
// never was saved. Best effort: a file left behind is only disk.
func (b *Bolt) pruneWeights(jobID, keep string) {
	prefix := strings.TrimSuffix(weightsFile(jobID, 0), "0.safetensors")
	matches, _ := filepath.Glob(filepath.Join(b.checkpointDir(), prefix+"*.safetensors"))
	for _, m := range matches {
		if filepath.Base(m) != keep {
			_ = os.Remove(m)
		}
	}
}
