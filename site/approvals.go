package site

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/internal/logkeys"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// Approval states.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalRejected = "rejected"
)

// Approval is a job held at this site until its operator decides. It lives
// in its own file under state_dir/approvals/, so `federa site approve` (a
// separate process) and the running agent share it without a lock server,
// and it survives restarts.
type Approval struct {
	JobID          string    `json:"job_id"`
	JobName        string    `json:"job_name"`
	Requester      string    `json:"requester"`
	Dataset        string    `json:"dataset"`
	Features       []string  `json:"features"`
	Rounds         int       `json:"rounds"`
	Reasons        []string  `json:"reasons"`
	PolicyRevision string    `json:"policy_revision"`
	Status         string    `json:"status"`
	Reason         string    `json:"reason,omitempty"`
	DecidedBy      string    `json:"decided_by,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	DecidedAt      time.Time `json:"decided_at,omitzero"`
}

// Approvals is the site's durable approval queue.
type Approvals struct {
	dir string
	mu  sync.Mutex
}

// OpenApprovals uses stateDir/approvals.
func OpenApprovals(stateDir string) *Approvals {
	return &Approvals{dir: filepath.Join(stateDir, "approvals")}
}

var jobIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

func (a *Approvals) path(job string) (string, error) {
	if !jobIDRE.MatchString(job) {
		return "", fmt.Errorf("job id %q: want letters, digits, '.', '_' or '-'", job)
	}
	return filepath.Join(a.dir, job+".json"), nil
}

// Get returns the approval record of a job, if there is one.
func (a *Approvals) Get(job string) (*Approval, bool, error) {
	p, err := a.path(job)
	if err != nil {
		return nil, false, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read approval: %w", err)
	}
	var ap Approval
	if err := json.Unmarshal(b, &ap); err != nil {
		return nil, false, fmt.Errorf("read approval %s: %w", p, err)
	}
	return &ap, true, nil
}

// Hold records a job as pending unless it already has a record, and
// returns the record as it stands.
func (a *Approvals) Hold(ap Approval) (*Approval, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if cur, ok, err := a.Get(ap.JobID); err != nil || ok {
		return cur, err
	}
	ap.Status, ap.CreatedAt = ApprovalPending, time.Now().UTC()
	return &ap, a.write(&ap)
}

// Decide approves or rejects a pending job.
func (a *Approvals) Decide(job string, approve bool, reason, by string) (*Approval, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ap, ok, err := a.Get(job)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("job %s is not waiting for approval at this site (see `federa site pending`)", job)
	}
	if ap.Status != ApprovalPending {
		return nil, fmt.Errorf("job %s was already %s by %s at %s", job, ap.Status, ap.DecidedBy, ap.DecidedAt.Format(time.RFC3339))
	}
	if reason == "" {
		return nil, errors.New("flag --reason: required; it is recorded with the decision")
	}
	if len(reason) > federav1.MaxReasonBytes {
		return nil, fmt.Errorf("flag --reason: %d bytes; at most %d", len(reason), federav1.MaxReasonBytes)
	}
	ap.Status = ApprovalRejected
	if approve {
		ap.Status = ApprovalApproved
	}
	ap.Reason, ap.DecidedBy, ap.DecidedAt = reason, by, time.Now().UTC()
	return ap, a.write(ap)
}

// List returns every approval record, pending first, then newest first.
func (a *Approvals) List() ([]Approval, error) {
	entries, err := os.ReadDir(a.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Approval
	for _, e := range entries {
		if e.IsDir() || filepath.Ext(e.Name()) != ".json" {
			continue
		}
		ap, ok, err := a.Get(e.Name()[:len(e.Name())-len(".json")])
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, *ap)
		}
	}
	sort.Slice(out, func(i, k int) bool {
		if (out[i].Status == ApprovalPending) != (out[k].Status == ApprovalPending) {
			return out[i].Status == ApprovalPending
		}
		return out[i].CreatedAt.After(out[k].CreatedAt)
	})
	return out, nil
}

func (a *Approvals) write(ap *Approval) error {
	if err := os.MkdirAll(a.dir, 0o700); err != nil {
		return fmt.Errorf("write approval: %w", err)
	}
	p, err := a.path(ap.JobID)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(ap, "", "  ")
	if err != nil {
		return err
	}
	return attest.WriteFileAtomic(p, append(b, '\n'), 0o600)
}

// decideRemote records a site-admin's decision relayed by the coordinator,
// if this site's config lists that admin in approvals.remote_approvers.
// It returns the record's new status, or why the decision was refused.
func (a *Agent) decideRemote(t *federav1.Task) (status, refusal string) {
	d := t.GetDecision()
	if d == nil {
		return "", "a decide task without a decision"
	}
	by, err := spiffeid.FromString(d.GetDecidedBy())
	if err != nil || !slices.Contains(a.cfg.RemoteApprovers, by) {
		a.log.Warn("refused a remote approval", logkeys.Job, t.GetJobId(), "by", d.GetDecidedBy())
		return "", fmt.Sprintf("site %s does not accept approvals from %s: not in its approvals.remote_approvers", a.siteName(), d.GetDecidedBy())
	}
	if a.approvals == nil {
		return "", fmt.Sprintf("site %s holds no approvals (it has no state_dir)", a.siteName())
	}
	ap, err := a.approvals.Decide(t.GetJobId(), d.GetApprove(), d.GetReason(), d.GetDecidedBy()+" (via coordinator)")
	if err != nil {
		return "", err.Error()
	}
	a.log.Info("remote approval recorded", logkeys.Job, t.GetJobId(), "status", ap.Status, "by", d.GetDecidedBy())
	return ap.Status, ""
}
