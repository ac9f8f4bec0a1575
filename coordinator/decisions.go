package coordinator

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/attest/auditlog"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// A site's decision records reach the audit log only for tasks this
// coordinator gave that site, once each, in the site's own order:
//
//   - Task ids are sealed: the last part is an HMAC, under a key kept in
//     state_dir/keys, of everything before it, which names the job and the
//     site. A record whose task id does not verify for the sending site (a
//     forged id, another site's task, another job's) is a protocol
//     violation that ends the stream, and nothing is logged. The key
//     survives restarts, so a record that arrives late, after a restart or
//     after its job ended, is still accepted and logged.
//   - Each record carries the site's sequence number. The coordinator logs
//     a number once, in order, and ignores one at or below the last it
//     logged for that site (a site resends what it has not yet seen in the
//     log; a replay is a no-op). The last number per site is recovered
//     from the log at start-up. One record per task and kind: a second is a
//     protocol violation.
//   - The site's witness checks the numbers it sees in the log are exactly
//     1, 2, 3, …: a record the coordinator dropped shows as a gap.

// taskKeyFile holds the key that seals task ids.
const taskKeyFile = "task-id.key"

// decisionBook is what the coordinator remembers about accepted records.
type decisionBook struct {
	key     []byte
	lastSeq map[string]uint64 // site -> last logged sequence number
	once    map[string]bool   // task id + kind already logged
}

// maxOnceKeys bounds the memory of logged (task, kind) pairs; past it the
// memory starts afresh, and sequence numbers alone stop replays.
const maxOnceKeys = 1 << 20

func loadTaskKey(dir string) ([]byte, error) {
	path := filepath.Join(dir, taskKeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		b = make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		if err := attest.WriteFileAtomic(path, []byte(hex.EncodeToString(b)+"\n"), 0o600); err != nil {
			return nil, err
		}
		return b, nil
	}
	if err != nil {
		return nil, err
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("%s: want 64 hex characters (a 32-byte key)", path)
	}
	return key, nil
}

func (c *Coordinator) taskSeal(prefix string) string {
	m := hmac.New(sha256.New, c.decisions.key)
	m.Write([]byte(prefix))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// newTaskID names one task of job for site: job/rN/kind/site/nonce.seal.
func (c *Coordinator) newTaskID(job string, round int, kind, site string) string {
	nonce := make([]byte, 4)
	_, _ = rand.Read(nonce)
	prefix := fmt.Sprintf("%s/r%d/%s/%s/%x", job, round, kind, site, nonce)
	return prefix + "." + c.taskSeal(prefix)
}

// issuedTo reports whether id is a task id this coordinator sealed for
// site, and the job it belongs to.
func (c *Coordinator) issuedTo(id, site string) (job string, ok bool) {
	dot := strings.LastIndexByte(id, '.')
	if dot < 0 {
		return "", false
	}
	prefix, seal := id[:dot], id[dot+1:]
	if !hmac.Equal([]byte(seal), []byte(c.taskSeal(prefix))) {
		return "", false
	}
	slash := strings.LastIndexByte(prefix, '/')
	if slash < 0 || !strings.HasSuffix(prefix[:slash], "/"+site) {
		return "", false
	}
	job, _, ok = strings.Cut(prefix, "/")
	return job, ok
}

// decisionKinds are the kinds of record a site makes.
var decisionKinds = map[string]bool{"admission": true, "admission-dry-run": true, "egress": true}

// acceptDecision checks a site's decision record and queues its audit
// entry. An error is a protocol violation by the site (InvalidArgument
// naming the field); a record already logged returns nil and is dropped.
func (c *Coordinator) acceptDecision(site string, r *federav1.DecisionRecord) error {
	if err := federav1.CheckDecisionRecord(r); err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	if !decisionKinds[r.GetKind()] {
		return status.Errorf(codes.InvalidArgument, "decision record field kind: %q; valid: admission, admission-dry-run, egress", r.GetKind())
	}
	job, ok := c.issuedTo(r.GetTaskId(), site)
	if !ok {
		return status.Errorf(codes.InvalidArgument, "decision record field task_id: %q is not a task this coordinator gave site %s", r.GetTaskId(), site)
	}
	if r.GetJobId() != job {
		return status.Errorf(codes.InvalidArgument, "decision record field job_id: %q, but task %s belongs to job %s", r.GetJobId(), r.GetTaskId(), job)
	}
	if r.GetSeq() == 0 {
		return status.Error(codes.InvalidArgument, "decision record field seq: required (1, 2, 3, … per site); this coordinator needs a site agent that numbers its decisions")
	}
	e := decisionEntry(site, r)
	e.Time = c.cfg.Now()
	if _, err := e.Canonical(); err != nil {
		return status.Errorf(codes.InvalidArgument, "decision record: %v", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.GetSeq() <= c.decisions.lastSeq[site] {
		return nil // resent before the site saw it in the log; logged already
	}
	key := r.GetTaskId() + "\x00" + r.GetKind()
	if c.decisions.once[key] {
		return status.Errorf(codes.InvalidArgument, "decision record: a second %s decision for task %s; a site reports one per task", r.GetKind(), r.GetTaskId())
	}
	if len(c.decisions.once) >= maxOnceKeys {
		c.decisions.once = map[string]bool{}
	}
	c.decisions.once[key] = true
	c.decisions.lastSeq[site] = r.GetSeq()
	c.auditQueue = append(c.auditQueue, e)
	c.metrics.siteDecision(site, r)
	if js, ok := c.jobs[job]; ok && !isFinal(js.job.GetStatus()) {
		js.decisions = append(js.decisions, &federav1.SiteDecision{Site: site, Record: r})
	}
	return nil
}

// recoverDecisionSeqs reads the last logged sequence number of every site
// from the audit log, so a restarted coordinator neither logs a resent
// record twice nor takes an old number for a new one.
func (c *Coordinator) recoverDecisionSeqs() error {
	c.decisions.lastSeq, c.decisions.once = map[string]uint64{}, map[string]bool{}
	for i := range c.auditLog.Size() {
		leaf, err := c.auditLog.Entry(i)
		if err != nil {
			return fmt.Errorf("read audit entry %d: %w", i, err)
		}
		e, err := auditlog.ParseEntry(leaf)
		if err != nil {
			return fmt.Errorf("audit entry %d: %w", i, err)
		}
		if e.Type != auditlog.TypeAdmission && e.Type != auditlog.TypeEgress {
			continue
		}
		seq, ok := entrySeq(e)
		if ok && seq > c.decisions.lastSeq[e.Site] {
			c.decisions.lastSeq[e.Site] = seq
		}
	}
	return nil
}

// entrySeq is the site sequence number a decision entry carries, if any.
func entrySeq(e auditlog.Entry) (uint64, bool) {
	v, ok := e.Data["seq"]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(fmt.Sprint(v), 10, 64)
	return n, err == nil
}
