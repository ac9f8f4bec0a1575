package coordinator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/federa-dev/federa/attest/auditlog"
	"github.com/federa-dev/federa/attest/sign"
	"github.com/federa-dev/federa/internal/logkeys"
	"github.com/federa-dev/federa/models"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// Audit log layout under the coordinator's state directory.
const (
	AuditDir     = "audit"
	AuditKeysDir = "keys"
	// AuditKeyFile holds the log's note verifier key (name+hash+base64key),
	// the key auditors verify checkpoints with.
	AuditKeyFile = "audit.vkey"
)

// openAudit opens the signed audit log and its key, creating both on
// first start.
func (c *Coordinator) openAudit() error {
	keys := filepath.Join(c.cfg.StateDir, AuditKeysDir)
	name := c.cfg.Identity.ID().TrustDomain().Name() + "/coordinator"
	signer, vkey, err := auditlog.LoadOrCreateKey(keys, name)
	if err != nil {
		return fmt.Errorf("audit log key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(keys, AuditKeyFile), []byte(vkey+"\n"), 0o644); err != nil {
		return fmt.Errorf("audit log key: %w", err)
	}
	l, err := auditlog.Open(filepath.Join(c.cfg.StateDir, AuditDir), auditlog.Options{Signer: signer, Now: c.cfg.Now})
	if err != nil {
		return err
	}
	c.auditLog, c.auditKey = l, vkey
	if c.decisions.key, err = loadTaskKey(keys); err != nil {
		return fmt.Errorf("task id key: %w", err)
	}
	if err := c.indexWitnessEntries(); err != nil {
		return err
	}
	return c.recoverDecisionSeqs()
}

// AuditKey is the note verifier key of the coordinator's audit log.
func (c *Coordinator) AuditKey() string { return c.auditKey }

// audit appends entries durably and signs a checkpoint over them. It is
// called before the state change the entries describe is stored or
// acknowledged, so the log never lags what a user was told.
//
// The queued entries (sites' decisions) were checked one by one when they
// were queued, and the caller's are checked here before anything is
// appended, so one bad entry never sinks another's: a caller whose entry
// cannot be logged gets the error, and the queue stays for the next
// append. Appends are serialized so entries land in the order they were
// queued (sites check their decisions arrive in order).
func (c *Coordinator) audit(checkpoint bool, entries ...auditlog.Entry) error {
	for i := range entries {
		if entries[i].Time.IsZero() {
			entries[i].Time = c.cfg.Now()
		}
		if _, err := entries[i].Canonical(); err != nil {
			return fmt.Errorf("audit log: %w", err)
		}
	}
	c.auditMu.Lock()
	defer c.auditMu.Unlock()
	c.mu.Lock()
	queued := c.auditQueue
	c.auditQueue = nil
	c.mu.Unlock()
	all := append(queued, entries...)
	if len(all) > 0 {
		first := c.auditLog.Size()
		c.noteAppending(first, all)
		if _, err := c.auditLog.Append(all...); err != nil {
			c.forgetAppending(first, all)
			// Nothing of the batch was appended: put the sites' entries back
			// in front, in order, for the next append.
			c.mu.Lock()
			c.auditQueue = append(queued, c.auditQueue...)
			c.mu.Unlock()
			return fmt.Errorf("audit log: %w", err)
		}
	}
	if checkpoint {
		return c.signIfBehind()
	}
	return nil
}

// requestCheckpoint asks the background signer for a checkpoint over
// everything appended so far. Rounds use it so signing (a file write and
// its fsync) stays off the round's critical path; the entries themselves
// were appended durably before the round was stored. Requests coalesce.
func (c *Coordinator) requestCheckpoint() {
	select {
	case c.cpReq <- struct{}{}:
	default:
	}
}

// checkpointer signs requested checkpoints until ctx ends, then once more
// so nothing appended is left unsigned at shutdown.
func (c *Coordinator) checkpointer(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			c.logSignError(c.signIfBehind())
			return
		case <-c.cpReq:
			c.logSignError(c.signIfBehind())
		}
	}
}

// signIfBehind signs a checkpoint unless the latest one already covers
// the whole log.
func (c *Coordinator) signIfBehind() error {
	c.cpMu.Lock()
	defer c.cpMu.Unlock()
	size := c.auditLog.Size()
	if size == 0 || size == c.cpSize {
		return nil
	}
	cp, err := c.auditLog.Checkpoint()
	if err != nil {
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	c.cpSize = size
	c.noteCheckpoint(cp)
	c.syncWitnesses()
	return nil
}

func digestProto(m proto.Message) string {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func digestWeights(w models.Weights) string {
	b, err := models.EncodeWeights(w)
	if err != nil {
		return "unencodable"
	}
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func submittedEntry(j *federav1.Job) auditlog.Entry {
	return auditlog.Entry{Type: auditlog.TypeJobSubmitted, Job: j.GetId(), Actor: j.GetRequester(), Data: map[string]any{
		"spec_digest": digestProto(j.GetSpec()), "name": j.GetSpec().GetName(), "dataset": j.GetSpec().GetDataset(),
		"sites": j.GetSpec().GetSites(), "role": j.GetRequesterRole(),
	}}
}

// decisionEntry records a site's policy decision: digests and reasons,
// never data.
func decisionEntry(site string, r *federav1.DecisionRecord) auditlog.Entry {
	t := auditlog.TypeAdmission
	data := map[string]any{
		"kind": r.GetKind(), "task": r.GetTaskId(), "input_digest": r.GetInputDigest(), "allow": r.GetAllow(),
		"reasons": r.GetReasons(), "policy_revision": r.GetPolicyRevision(), "seq": r.GetSeq(),
	}
	if r.GetKind() == "egress" {
		t = auditlog.TypeEgress
		data["egress_kind"], data["bytes"] = r.GetEgressKind(), r.GetBytes()
	} else {
		data["obligations"], data["require_approval"] = r.GetObligationsJson(), r.GetRequireApproval()
	}
	return auditlog.Entry{Type: t, Job: r.GetJobId(), Site: site, Actor: site, Data: data}
}

func roundEntries(id string, r int, tr *trainedRound) []auditlog.Entry {
	updates := map[string]any{}
	var out []auditlog.Entry
	for _, s := range tr.participants {
		a := tr.results[s]
		switch {
		case a.digest != "":
			updates[s] = a.digest
		case a.weights != nil:
			updates[s] = digestWeights(a.weights)
		}
		if eps := a.result.GetEpsilonSpent(); eps > 0 {
			out = append(out, auditlog.Entry{Type: auditlog.TypeDPSpent, Job: id, Site: s, Actor: s, Data: map[string]any{
				"round": r, "epsilon_spent": eps, "dataset_epsilon_spent": a.result.GetDatasetEpsilonSpent(), "noise_sigma": a.result.GetNoiseSigma(),
			}})
		}
	}
	// An empty list, never null: "no site missing" is a statement.
	missing := append([]string{}, tr.missing...)
	sort.Strings(missing)
	data := map[string]any{
		"round": r, "participants": tr.participants, "missing": missing,
		"update_digests": updates, "aggregate_digest": tr.aggDigest,
	}
	if sa := tr.secagg; sa != nil {
		// The coordinator saw no site's update: what it records is how the
		// sum was formed, and whose mask keys it had to reconstruct.
		data["secure_aggregation"] = map[string]any{
			"threshold": sa.GetThreshold(), "neighbors": sa.GetNeighbors(), "clip": sa.GetClip(), "scale": sa.GetScale(),
			"advertised": sa.GetAdvertised(), "shared": sa.GetShared(), "masked": sa.GetMasked(), "revealed": sa.GetRevealed(),
			"reconstructed": sa.GetReconstructed(), "reconstructed_reason": sa.GetReconstructedReason(),
		}
	}
	round := auditlog.Entry{Type: auditlog.TypeRound, Job: id, Actor: "coordinator", Data: data}
	return append([]auditlog.Entry{round}, out...)
}

// priorAttempt is the audit index of an entry for round r of job id that
// was logged before the coordinator stopped — the round was logged, not
// checkpointed, so it runs again — or nil. It reads back from the log's
// end and stops at the job's entry for an earlier round or its
// submission: a walk over what was logged since the job's last round.
func (c *Coordinator) priorAttempt(id string, r int) *int64 {
	for i := c.auditLog.Size() - 1; i >= 0; i-- {
		leaf, err := c.auditLog.Entry(i)
		if err != nil {
			return nil
		}
		e, err := auditlog.ParseEntry(leaf)
		if err != nil || e.Job != id {
			continue
		}
		if e.Type == auditlog.TypeJobSubmitted {
			return nil
		}
		if e.Type != auditlog.TypeRound {
			continue
		}
		n, err := strconv.ParseInt(fmt.Sprint(e.Data["round"]), 10, 64)
		switch {
		case err != nil || n < int64(r):
			return nil
		case n == int64(r):
			return &i
		}
	}
	return nil
}

// redoReason is what a redone round's entry says of its first attempt.
const redoReason = "the coordinator stopped after logging this round's first attempt and before checkpointing it; this attempt replaces it"

func endEntry(j *federav1.Job) auditlog.Entry {
	return auditlog.Entry{Type: auditlog.TypeJobEnd, Job: j.GetId(), Actor: "coordinator", Data: map[string]any{
		// The message gathers sites' reasons; cut, it cannot outgrow an entry.
		"status": j.GetStatus().Name(), "message": federav1.TrimText(j.GetMessage(), maxEndMessageBytes), "rounds_completed": j.GetRoundsCompleted(),
	}}
}

// maxEndMessageBytes bounds the final message a job_end entry records.
const maxEndMessageBytes = 16 << 10

// logSignError logs a failed background checkpoint signing. The entries
// it would cover are already durable; the next request (a round's, a
// submit's, a job's end) signs them.
func (c *Coordinator) logSignError(err error) {
	if err != nil {
		c.log.Error("signing an audit checkpoint failed; the entries are stored, and the next request signs them", logkeys.Err, err)
	}
}

// Release artifact names in the store and over GetModel.
const (
	ArtifactBundle     = "bundle"
	ArtifactProvenance = "provenance"
)

// signRelease signs the model (a sigstore bundle cosign verifies) and an
// in-toto provenance statement naming the job, its sites, rounds, policy
// revisions, ε spent and the audit checkpoint that covers the release, and
// stores both before the job is reported succeeded.
func (c *Coordinator) signRelease(id string, sp *federav1.JobSpec, st *training, model []byte, sha string) error {
	bundle, err := sign.SignBlob(c.signer, model)
	if err != nil {
		return fmt.Errorf("sign model: %w", err)
	}
	cp, err := c.auditLog.LatestCheckpoint()
	if err != nil {
		return fmt.Errorf("provenance: %w", err)
	}
	j, _, _, _ := c.snapshot(id)
	prov := sign.Provenance{
		JobSpecDigest: digestProto(sp), Sites: st.sites, Rounds: st.round,
		PolicyRevisions: map[string]string{}, EpsilonSpent: map[string]float64{}, AuditCheckpoint: string(cp),
	}
	for _, s := range j.GetSites() {
		if r := s.GetAdmission().GetPolicyRevision(); r != "" {
			prov.PolicyRevisions[s.GetSite()] = r
		}
		if e := s.GetEpsilonSpent(); e > 0 {
			prov.EpsilonSpent[s.GetSite()] = e
		}
	}
	stmt, err := sign.Statement("model.safetensors", sha, prov)
	if err != nil {
		return fmt.Errorf("provenance: %w", err)
	}
	pb, err := sign.SignProvenance(c.signer, stmt)
	if err != nil {
		return fmt.Errorf("sign provenance: %w", err)
	}
	if err := c.store.PutArtifact(id, ArtifactBundle, bundle); err != nil {
		return err
	}
	return c.store.PutArtifact(id, ArtifactProvenance, pb)
}
