package store

import (
	"errors"

	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// ErrNotFound is returned when a job, checkpoint or model does not exist.
var ErrNotFound = errors.New("store: not found")

// Store is durable coordinator state. Implementations must make each call
// atomic and durable before returning.
type Store interface {
	// PutJob creates or replaces a job record.
	PutJob(job *federav1.Job) error
	GetJob(id string) (*federav1.Job, error)
	// ListJobs returns every job, oldest first.
	ListJobs() ([]*federav1.Job, error)
	// SaveRound stores a job record and its checkpoint in one transaction,
	// so a restart never sees a round counted without its weights.
	SaveRound(job *federav1.Job, cp *federav1.Checkpoint) error
	LoadCheckpoint(jobID string) (*federav1.Checkpoint, error)
	// FinishJob stores the final job record and its exported model together.
	FinishJob(job *federav1.Job, model []byte) error
	GetModel(jobID string) ([]byte, error)
	// PutArtifact and GetArtifact keep a job's other release files (the
	// model's signature bundle, its provenance) by name.
	PutArtifact(jobID, name string, data []byte) error
	GetArtifact(jobID, name string) ([]byte, error)
	// AppendDecisions adds policy decisions to a job's list, after those
	// already there. The job record does not carry them: it is rewritten
	// at every update, and a job's decisions grow with sites × rounds.
	AppendDecisions(jobID string, ds []*federav1.SiteDecision) error
	// ListDecisions returns up to limit of a job's decisions, oldest first,
	// starting after position after (0: from the first) and stopping
	// before their encoded size passes maxBytes (one at least), with the
	// position of the last one returned (0 when none was) and how many the
	// job has.
	ListDecisions(jobID string, after uint64, limit, maxBytes int) (ds []*federav1.SiteDecision, last uint64, total int64, err error)
	// PutQuery creates or replaces an analytics query record (its result
	// included).
	PutQuery(q *federav1.Query) error
	GetQuery(id string) (*federav1.Query, error)
	// ListQueries returns every query, oldest first.
	ListQueries() ([]*federav1.Query, error)
	Close() error
}
