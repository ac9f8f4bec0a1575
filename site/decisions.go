package site

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/attest/auditlog"
	"github.com/federa-dev/federa/internal/logkeys"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// The site numbers its decision records 1, 2, 3, … (in its journal, so
// across restarts), delivers each to the coordinator at least once, and
// checks the coordinator's audit log holds each number exactly once, in
// order, as the site made it:
//
//   - A record made while disconnected, or sent on a stream that broke, is
//     pending until the site sees it in the log; every new stream first
//     resends the pending records in order. The coordinator logs a number
//     once and ignores what it already logged.
//   - At each witness sync the site reads the entries about it. An entry
//     whose number is past the next expected one means the records between
//     are missing; a number already seen means a duplicate; a number the
//     site never used, or content that differs from the record, means a
//     forgery. Each raises the same alarm as a forked log.
//   - The count of numbers seen and the log index past the last one judged
//     are kept in state_dir/witness/decisions.json, written before the
//     checkpoint is accepted, so a crash between the two re-shows entries
//     the index says were judged rather than skipping any.
//
// A record dropped by the coordinator is found when a later record of the
// site reaches the log: every task this site runs makes one.

// maxPending bounds the records kept in memory for resending and checking.
// Past it the oldest are forgotten: still in the journal, no longer
// resent, and a gap at or below them is not judged.
const maxPending = 100_000

// decisionLog is the site's numbered decision records.
type decisionLog struct {
	mu        sync.Mutex
	next      uint64                     // the next sequence number
	pending   []*federav1.DecisionRecord // not yet seen in the log, by number
	forgotten uint64                     // the highest number dropped from pending
	seen      witnessedDecisions         // what the log has shown
	path      string                     // where seen is kept; empty: no witness
}

// witnessedDecisions is how far the log has shown this site's decisions.
type witnessedDecisions struct {
	// Seq: every number up to it is in the log.
	Seq uint64 `json:"seq"`
	// NextIndex: entries of the log below it were judged.
	NextIndex int64 `json:"next_index"`
}

// openDecisions numbers from the journal's last record on, and reloads the
// records the log has not shown yet. Without a state dir records are
// numbered from the start time in microseconds, so numbers still grow
// across restarts (nothing is checked: there is no witness).
func (a *Agent) openDecisions() error {
	d := &a.dlog
	if a.decisions == nil || a.witness == nil {
		d.next = uint64(time.Now().UnixMicro())
		return nil
	}
	d.path = filepath.Join(a.witness.dir, "decisions.json")
	switch b, err := os.ReadFile(d.path); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("witness state: %w", err)
	default:
		if err := json.Unmarshal(b, &d.seen); err != nil {
			return fmt.Errorf("witness state %s: %w", d.path, err)
		}
	}
	d.next = 1
	f, err := os.Open(a.decisions.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("decision journal: %w", err)
	}
	defer f.Close()
	// One pass over the journal: the numbering, the records to resend, and
	// the memory of reported decisions that entries logged before numbering
	// are judged by (judgeUnnumbered).
	a.reportedMu.Lock()
	a.reported = map[string]bool{}
	a.reportedMu.Unlock()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	first := true
	for sc.Scan() {
		var r federav1.DecisionRecord
		if json.Unmarshal(sc.Bytes(), &r) != nil {
			continue // a torn last line
		}
		if first {
			// Entries older than the journal cannot be judged.
			a.started, first = time.UnixMilli(r.GetUnixMs()).Add(-time.Second), false
		}
		a.remember(&r)
		if r.GetSeq() == 0 {
			continue // a record from before numbering
		}
		d.next = max(d.next, r.GetSeq()+1)
		if r.GetSeq() > d.seen.Seq {
			d.keep(&r)
		}
	}
	return sc.Err()
}

func (d *decisionLog) keep(r *federav1.DecisionRecord) {
	d.pending = append(d.pending, r)
	if len(d.pending) > maxPending {
		d.forgotten = d.pending[0].GetSeq()
		d.pending = d.pending[1:]
	}
}

// record numbers a decision, keeps it durably at the site, and reports it
// upstream (now, or on the next stream).
func (a *Agent) record(r *federav1.DecisionRecord) {
	federav1.TrimDecisionRecord(r)
	d := &a.dlog
	d.mu.Lock()
	defer d.mu.Unlock()
	r.Seq = d.next
	d.next++
	a.metrics.decision(r)
	if err := a.decisions.append(r); err != nil {
		a.log.Error("record policy decision", logkeys.Err, err)
	}
	a.remember(r)
	if d.path != "" {
		d.keep(r)
	}
	a.mu.Lock()
	c := a.current
	a.mu.Unlock()
	if c != nil {
		_ = c.send(&federav1.SiteMessage{Body: &federav1.SiteMessage_Decision{Decision: r}})
	}
}

// attach makes c the stream records go to, after resending every record
// the log has not shown yet, in order, so the coordinator sees the
// numbers without a gap.
func (a *Agent) attach(c *conn) error {
	d := &a.dlog
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range d.pending {
		if err := c.send(&federav1.SiteMessage{Body: &federav1.SiteMessage_Decision{Decision: r}}); err != nil {
			return fmt.Errorf("resend decision %d: %w", r.GetSeq(), err)
		}
	}
	a.mu.Lock()
	a.connected, a.current = true, c
	a.mu.Unlock()
	return nil
}

// judgeDecision checks one decision entry about this site, at log index
// i, against the site's numbering. It returns why the log misrepresents
// the site, or "".
func (a *Agent) judgeDecision(i int64, e auditlog.Entry) string {
	d := &a.dlog
	seq, err := strconv.ParseUint(fmt.Sprint(e.Data["seq"]), 10, 64)
	if err != nil || seq == 0 {
		return a.judgeUnnumbered(i, e)
	}
	if d.path == "" || i < d.seen.NextIndex {
		return "" // no witness state, or judged at an earlier sync
	}
	switch {
	case seq >= d.next:
		return fmt.Sprintf("entry %d claims decision %d by this site, which has made only %d", i, seq, d.next-1)
	case seq <= d.seen.Seq:
		return fmt.Sprintf("entry %d repeats decision %d of this site, already in the log", i, seq)
	case seq > d.seen.Seq+1 && seq-1 > d.forgotten:
		return fmt.Sprintf("decisions %d to %d this site reported are missing from the log (entry %d holds decision %d)", d.seen.Seq+1, seq-1, i, seq)
	}
	// pending is in number order: find the record without a scan, so a
	// sync of many entries against many pending records stays cheap.
	if k, ok := slices.BinarySearchFunc(d.pending, seq, bySeq); ok {
		r := d.pending[k]
		if fmt.Sprint(e.Data["task"]) != r.GetTaskId() || fmt.Sprint(e.Data["kind"]) != r.GetKind() ||
			fmt.Sprint(e.Data["input_digest"]) != r.GetInputDigest() || fmt.Sprint(e.Data["allow"]) != strconv.FormatBool(r.GetAllow()) {
			return fmt.Sprintf("entry %d alters decision %d of this site (task %v, kind %v)", i, seq, e.Data["task"], e.Data["kind"])
		}
	}
	d.seen = witnessedDecisions{Seq: seq, NextIndex: i + 1}
	n, _ := slices.BinarySearchFunc(d.pending, seq+1, bySeq)
	d.pending = d.pending[n:]
	return ""
}

func bySeq(r *federav1.DecisionRecord, seq uint64) int { return cmp.Compare(r.GetSeq(), seq) }

// saveWitnessed keeps how far the log has shown this site's decisions.
func (a *Agent) saveWitnessed() error {
	d := &a.dlog
	if d.path == "" {
		return nil
	}
	b, _ := json.Marshal(d.seen)
	return attest.WriteFileAtomic(d.path, b, 0o600)
}
