package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/federa-dev/federa/internal/fsutil"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

var (
	bucketJobs        = []byte("jobs")
	bucketCheckpoints = []byte("checkpoints")
	bucketModels      = []byte("models")
	bucketQueries     = []byte("queries")
	// decisions/<job id>/<position, 8 bytes big-endian> -> SiteDecision
	bucketDecisions = []byte("decisions")
)

// Bolt is a Store in a single bbolt file.
type Bolt struct {
	db   *bolt.DB
	path string
}

var _ Store = (*Bolt)(nil)

// OpenBolt opens (creating if needed) the store in dir/coordinator.db. A
// second process opening the same state fails after a short wait instead
// of corrupting it.
func OpenBolt(dir string) (*Bolt, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	path := filepath.Join(dir, "coordinator.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open store %s: another coordinator holds it open", path)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketJobs, bucketCheckpoints, bucketModels, bucketQueries, bucketDecisions, bucketCheckpointFiles} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	b := &Bolt{db: db, path: path}
	// A crash while weights were staged leaves a temporary file the size
	// of the model; the database is locked, so no one else writes there.
	if _, err := fsutil.RemoveTemps(b.checkpointDir(), "*.safetensors"); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return b, nil
}

// Path is the database file.
func (b *Bolt) Path() string { return b.path }

func putProto(tx *bolt.Tx, bucket []byte, key string, m proto.Message) error {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return err
	}
	return tx.Bucket(bucket).Put([]byte(key), data)
}

func getProto(tx *bolt.Tx, bucket []byte, key string, m proto.Message) error {
	v := tx.Bucket(bucket).Get([]byte(key))
	if v == nil {
		return ErrNotFound
	}
	if err := proto.Unmarshal(v, m); err != nil {
		return fmt.Errorf("store: decode %s/%s: %w", bucket, key, err)
	}
	return nil
}

// PutJob implements Store.
func (b *Bolt) PutJob(job *federav1.Job) error {
	if job.GetId() == "" {
		return errors.New("store: job has no id")
	}
	return b.db.Update(func(tx *bolt.Tx) error { return putProto(tx, bucketJobs, job.GetId(), job) })
}

// GetJob implements Store.
func (b *Bolt) GetJob(id string) (*federav1.Job, error) {
	job := &federav1.Job{}
	err := b.db.View(func(tx *bolt.Tx) error { return getProto(tx, bucketJobs, id, job) })
	if err != nil {
		return nil, err
	}
	return job, nil
}

// ListJobs implements Store.
func (b *Bolt) ListJobs() ([]*federav1.Job, error) {
	var jobs []*federav1.Job
	err := b.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
			j := &federav1.Job{}
			if err := proto.Unmarshal(v, j); err != nil {
				return fmt.Errorf("store: decode job %s: %w", k, err)
			}
			jobs = append(jobs, j)
			return nil
		})
	})
	sort.SliceStable(jobs, func(i, k int) bool {
		if jobs[i].GetCreatedUnixMs() != jobs[k].GetCreatedUnixMs() {
			return jobs[i].GetCreatedUnixMs() < jobs[k].GetCreatedUnixMs()
		}
		return jobs[i].GetId() < jobs[k].GetId()
	})
	return jobs, err
}

// SaveRound implements Store.
func (b *Bolt) SaveRound(job *federav1.Job, cp *federav1.Checkpoint) error {
	if job.GetId() == "" || cp.GetJobId() != job.GetId() {
		return fmt.Errorf("store: checkpoint for job %q does not match job %q", cp.GetJobId(), job.GetId())
	}
	// A checkpoint without weights adopts those staged for its round
	// (StageWeights).
	err := b.db.Update(func(tx *bolt.Tx) error {
		if err := b.adoptWeights(tx, job.GetId(), cp.GetRound(), len(cp.GetWeights()) > 0); err != nil {
			return err
		}
		if err := putProto(tx, bucketJobs, job.GetId(), job); err != nil {
			return err
		}
		// Halfway through the transaction (chaos/failpoint_test.go).
		// gofail: var storeMidSaveRound struct{}
		return putProto(tx, bucketCheckpoints, job.GetId(), cp)
	})
	if err == nil {
		keep := ""
		if len(cp.GetWeights()) == 0 {
			keep = weightsFile(job.GetId(), cp.GetRound())
		}
		b.pruneWeights(job.GetId(), keep)
	}
	return err
}

// LoadCheckpoint implements Store.
func (b *Bolt) LoadCheckpoint(jobID string) (*federav1.Checkpoint, error) {
	cp := &federav1.Checkpoint{}
	var file string
	if err := b.db.View(func(tx *bolt.Tx) error {
		file = b.weightsRef(tx, jobID)
		return getProto(tx, bucketCheckpoints, jobID, cp)
	}); err != nil {
		return nil, err
	}
	if file != "" {
		w, err := os.ReadFile(filepath.Join(b.checkpointDir(), file))
		if err != nil {
			return nil, fmt.Errorf("store: checkpoint weights of job %s: %w", jobID, err)
		}
		cp.Weights = w
	}
	return cp, nil
}

// FinishJob implements Store.
func (b *Bolt) FinishJob(job *federav1.Job, model []byte) error {
	err := b.db.Update(func(tx *bolt.Tx) error {
		if err := putProto(tx, bucketJobs, job.GetId(), job); err != nil {
			return err
		}
		if model != nil {
			if err := tx.Bucket(bucketModels).Put([]byte(job.GetId()), model); err != nil {
				return err
			}
		}
		// The checkpoint's weights live on in the model; drop the copy.
		if err := tx.Bucket(bucketCheckpointFiles).Delete([]byte(job.GetId())); err != nil {
			return err
		}
		return tx.Bucket(bucketCheckpoints).Delete([]byte(job.GetId()))
	})
	if err == nil {
		b.pruneWeights(job.GetId(), "")
	}
	return err
}

// GetModel implements Store.
func (b *Bolt) GetModel(jobID string) ([]byte, error) {
	var out []byte
	err := b.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketModels).Get([]byte(jobID))
		if v == nil {
			return ErrNotFound
		}
		out = append([]byte(nil), v...)
		return nil
	})
	return out, err
}

// PutArtifact implements Store.
func (b *Bolt) PutArtifact(jobID, name string, data []byte) error {
	return b.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketModels).Put([]byte(jobID+"/"+name), data)
	})
}

// GetArtifact implements Store.
func (b *Bolt) GetArtifact(jobID, name string) ([]byte, error) {
	return b.GetModel(jobID + "/" + name)
}

// Close implements Store. It is safe to call more than once, and any call
// after it returns an error (bbolt's ErrDatabaseNotOpen) rather than
// panicking, so the db handle is kept rather than set to nil.
func (b *Bolt) Close() error {
	return b.db.Close()
}
