package site

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/attest/auditlog"
	"github.com/federa-dev/federa/internal/logkeys"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// The site is a witness of the coordinator's audit log: it keeps the last
// checkpoint it accepted (state_dir/witness), checks every new one extends
// it, and co-signs. A coordinator that rewrote or forked its history is
// caught at the next sync, and from then on the site refuses every task,
// across restarts, until its operator investigates and removes
// state_dir/witness/FORKED.

const forkedFile = "FORKED"

type witness struct {
	dir    string
	signer note.Signer
	vkey   string
	w      *auditlog.Witness
	logKey string
}

func openWitness(stateDir string, id string) (*witness, error) {
	if stateDir == "" {
		return nil, nil
	}
	dir := filepath.Join(stateDir, "witness")
	signer, vkey, err := auditlog.LoadOrCreateKey(filepath.Join(stateDir, "keys"), witnessName(id))
	if err != nil {
		return nil, fmt.Errorf("witness key: %w", err)
	}
	wt := &witness{dir: dir, signer: signer, vkey: vkey}
	if b, err := os.ReadFile(filepath.Join(dir, "log.vkey")); err == nil {
		wt.logKey = strings.TrimSpace(string(b))
		if wt.w, err = auditlog.OpenWitness(dir, wt.logKey); err != nil {
			return nil, fmt.Errorf("witness state: %w", err)
		}
	}
	return wt, nil
}

// witnessName is a note key name for a SPIFFE ID: its trust domain and path.
func witnessName(id string) string {
	return strings.TrimPrefix(id, "spiffe://")
}

func (wt *witness) size() int64 {
	if wt == nil || wt.w == nil {
		return 0
	}
	cp, _, ok := wt.w.Latest()
	if !ok {
		return 0
	}
	return cp.Size
}

// forked returns why the site stopped trusting the coordinator, if it did.
func (a *Agent) forked() string {
	if a.witness == nil {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(a.witness.dir, forkedFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// auditSync checks a checkpoint and answers with a co-signature, or raises
// the alarm.
func (a *Agent) auditSync(c *conn, m *federav1.AuditSync) {
	wt := a.witness
	if wt == nil || a.forked() != "" {
		return
	}
	alarm := func(reason string) {
		a.log.Error("COORDINATOR AUDIT LOG FORKED OR REWRITTEN: this site refuses all further tasks", logkeys.Reason, reason)
		_ = os.MkdirAll(wt.dir, 0o700)
		_ = attest.WriteFileAtomic(filepath.Join(wt.dir, forkedFile), []byte(reason+"\n"), 0o600)
	}
	if wt.logKey == "" {
		// Trust on first use: pin the log's key.
		if err := os.MkdirAll(wt.dir, 0o700); err != nil {
			a.log.Warn("witness state", logkeys.Err, err)
			return
		}
		if err := attest.WriteFileAtomic(filepath.Join(wt.dir, "log.vkey"), []byte(m.GetLogKey()+"\n"), 0o600); err != nil {
			a.log.Warn("witness state", logkeys.Err, err)
			return
		}
		w, err := auditlog.OpenWitness(wt.dir, m.GetLogKey())
		if err != nil {
			a.log.Warn("witness state", logkeys.Err, err)
			return
		}
		wt.logKey, wt.w = m.GetLogKey(), w
	} else if m.GetLogKey() != wt.logKey {
		alarm(fmt.Sprintf("the coordinator now signs its audit log with key %q, not %q", m.GetLogKey(), wt.logKey))
		return
	}
	head, err := auditlog.VerifyCheckpoint(m.GetCheckpoint(), wt.logKey)
	if err != nil {
		a.log.Warn("audit checkpoint refused", logkeys.Err, err)
		return
	}
	if last := wt.size(); head.Size > last && m.GetOldSize() != last {
		// A proof from a size this site has moved past: syncs crossed on
		// the wire. Not a fork; the next sync starts from the right size.
		return
	}
	var proof tlog.TreeProof
	for _, b := range m.GetConsistencyProof() {
		var h tlog.Hash
		copy(h[:], b)
		proof = append(proof, h)
	}
	// The entries about this site are judged, and how far that got is
	// saved, before the checkpoint is accepted: a crash in between shows
	// them again, never skips them.
	if reason := a.checkInclusions(head, m.GetInclusions()); reason != "" {
		alarm(reason)
		return
	}
	if err := wt.w.Observe(m.GetCheckpoint(), proof); err != nil {
		if errors.Is(err, auditlog.ErrForked) {
			alarm(err.Error())
		} else {
			a.log.Warn("audit checkpoint refused", logkeys.Err, err)
		}
		return
	}
	cosigned, err := auditlog.CoSign(m.GetCheckpoint(), wt.logKey, wt.signer)
	if err != nil {
		a.log.Warn("co-sign audit checkpoint", logkeys.Err, err)
		return
	}
	_ = c.send(&federav1.SiteMessage{Body: &federav1.SiteMessage_Cosignature{Cosignature: &federav1.CoSignature{Checkpoint: cosigned}}})
}

// decisionKey identifies a decision the site reported: its task, kind and
// input digest. The coordinator logs it with the same three.
func decisionKey(task, kind, digest string) string { return task + "\x00" + kind + "\x00" + digest }

// remember notes a decision the site reported, to find it in the log later.
func (a *Agent) remember(r *federav1.DecisionRecord) {
	a.reportedMu.Lock()
	defer a.reportedMu.Unlock()
	if a.reported == nil || len(a.reported) > 1_000_000 {
		// Forgetting older decisions: stop judging entries from before now.
		a.reported, a.started = map[string]bool{}, time.Now()
	}
	a.reported[decisionKey(r.GetTaskId(), r.GetKind(), r.GetInputDigest())] = true
}

// checkInclusions verifies each entry shown is in the checkpoint's tree and
// is a decision this site made, as it made it, and that none it made is
// missing (decisions.go). Anything else means the coordinator's log
// misrepresents the site: the reason, or "" if all is well.
func (a *Agent) checkInclusions(head auditlog.Checkpoint, incs []*federav1.AuditInclusion) string {
	a.dlog.mu.Lock()
	defer a.dlog.mu.Unlock()
	if reason := a.judgeInclusions(head, incs); reason != "" {
		return reason
	}
	if err := a.saveWitnessed(); err != nil {
		a.log.Warn("witness state", logkeys.Err, err)
	}
	return ""
}

func (a *Agent) judgeInclusions(head auditlog.Checkpoint, incs []*federav1.AuditInclusion) string {
	last := int64(-1)
	for _, inc := range incs {
		if inc.GetIndex() <= last {
			return fmt.Sprintf("the entries about this site were shown out of order (entry %d after %d)", inc.GetIndex(), last)
		}
		last = inc.GetIndex()
		var proof tlog.RecordProof
		for _, b := range inc.GetProof() {
			var h tlog.Hash
			copy(h[:], b)
			proof = append(proof, h)
		}
		if err := head.CheckInclusion(inc.GetIndex(), inc.GetLeaf(), proof); err != nil {
			return fmt.Sprintf("entry %d about this site is not in the signed tree: %v", inc.GetIndex(), err)
		}
		e, err := auditlog.ParseEntry(inc.GetLeaf())
		if err != nil {
			return fmt.Sprintf("entry %d about this site does not parse: %v", inc.GetIndex(), err)
		}
		if e.Type != auditlog.TypeAdmission && e.Type != auditlog.TypeEgress {
			continue // rounds and DP spend name the site but are the coordinator's own
		}
		if reason := a.judgeDecision(inc.GetIndex(), e); reason != "" {
			return reason
		}
	}
	return ""
}

// judgeUnnumbered checks a decision entry without a sequence number (one
// logged before sites numbered their decisions): it must be a decision
// this site reported, unless it predates the site's memory of them.
func (a *Agent) judgeUnnumbered(i int64, e auditlog.Entry) string {
	key := decisionKey(fmt.Sprint(e.Data["task"]), fmt.Sprint(e.Data["kind"]), fmt.Sprint(e.Data["input_digest"]))
	a.reportedMu.Lock()
	ok := a.reported[key]
	delete(a.reported, key)
	a.reportedMu.Unlock()
	if !ok && a.reportedSince(e) {
		return fmt.Sprintf("entry %d claims a %s decision by this site (task %v) that this site did not report", i, e.Data["kind"], e.Data["task"])
	}
	return ""
}

// reportedSince reports whether an entry falls in the span the site's
// memory of reported decisions covers.
func (a *Agent) reportedSince(e auditlog.Entry) bool {
	a.reportedMu.Lock()
	defer a.reportedMu.Unlock()
	return !e.Time.Before(a.started)
}
