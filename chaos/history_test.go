package chaos

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/federa-dev/federa/attest/auditlog"
)

// history is what one trial observed: every read of a job by a client
// (with when it was asked and when it answered), and snapshots of the
// audit log taken while the coordinator ran.
type history struct {
	mu        sync.Mutex
	start     time.Time
	ops       []porcupine.Operation
	snapshots []snapshot
}

func newHistory() *history { return &history{start: time.Now()} }

// snapshot is an audit export with the checkpoint fetched just before it.
type snapshot struct {
	export     []byte
	checkpoint []byte
	key        string
}

// read reads job id through the CLI and records the read.
func (h *history) read(f *federation, id string) (jobJSON, bool) {
	call := time.Since(h.start).Nanoseconds()
	j, ok := f.getJob(id)
	ret := time.Since(h.start).Nanoseconds()
	if ok {
		h.mu.Lock()
		h.ops = append(h.ops, porcupine.Operation{Input: id, Output: jobValue(j), Call: call, Return: ret})
		h.mu.Unlock()
	}
	return j, ok
}

// jobValue is what a read of a job returns, as the register model sees
// it: its status and one token per completed round (number, participants
// and duration, which a round that was redone or replayed would change).
func jobValue(j jobJSON) string {
	parts := []string{j.Status}
	for _, r := range j.Rounds {
		parts = append(parts, fmt.Sprintf("%d:%s:%s", r.Round, strings.Join(r.Participants, "+"), r.DurationMs))
	}
	return strings.Join(parts, "|")
}

// jobModel is a job as a register that only ever grows: a read sees the
// rounds a previous read saw, unchanged and in order, possibly followed by
// more; once the job ended, every read sees exactly that end. A completed
// round lost in a crash, or redone with another outcome, is a read that no
// order of the operations explains.
var jobModel = porcupine.Model{
	Partition: func(ops []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range ops {
			k := op.Input.(string)
			if _, ok := by[k]; !ok {
				keys = append(keys, k)
			}
			by[k] = append(by[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() interface{} { return "" },
	Step: func(state, _, output interface{}) (bool, interface{}) {
		prev, next := state.(string), output.(string)
		if prev == "" {
			return true, next
		}
		ps, ns := strings.Split(prev, "|"), strings.Split(next, "|")
		if ended(ps[0]) {
			return prev == next, prev
		}
		if len(ns) < len(ps) || !slices.Equal(ps[1:], ns[1:len(ps)]) {
			return false, prev
		}
		return true, next
	},
	DescribeOperation: func(input, output interface{}) string {
		return fmt.Sprintf("get(%v) -> %v", input, output)
	},
}

func ended(status string) bool {
	return status != "RUNNING" && status != "PENDING" && status != "WAITING"
}

// snap takes an audit snapshot from the running coordinator; it reports
// false when the coordinator did not answer.
func (h *history) snap(f *federation) bool {
	cp, _, code := f.cli("audit", "checkpoint")
	if code != 0 {
		return false
	}
	key, _, code := f.cli("audit", "key")
	if code != 0 {
		return false
	}
	exp, _, code := f.cli("audit", "export")
	if code != 0 {
		return false
	}
	h.mu.Lock()
	h.snapshots = append(h.snapshots, snapshot{export: []byte(exp), checkpoint: []byte(cp), key: strings.TrimSpace(key)})
	h.mu.Unlock()
	return true
}

// entry is one audit entry with its index.
type entry struct {
	Index int64          `json:"index"`
	Entry auditEntryJSON `json:"entry"`
}

type auditEntryJSON struct {
	Type string         `json:"type"`
	Time time.Time      `json:"time"`
	Job  string         `json:"job"`
	Site string         `json:"site"`
	Data map[string]any `json:"data"`
}

func parseExport(b []byte) ([]entry, error) {
	var out []entry
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var e entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("export line %d: %w", len(out), err)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// egressRecord is a line of a site's egress journal.
type egressRecord struct {
	Time    time.Time `json:"time"`
	Job     string    `json:"job"`
	Task    string    `json:"task"`
	Kind    string    `json:"kind"`
	Round   int       `json:"round"`
	Bytes   int64     `json:"bytes"`
	Allowed bool      `json:"egress_allowed"`
}

func readJournal(path string) ([]egressRecord, error) {
	recs, bad, err := readJournalLines(path)
	if err == nil && len(bad) > 0 {
		err = fmt.Errorf("%s: lines %v are not whole records", path, bad)
	}
	return recs, err
}

// readJournalLines reads every whole record and lists the line numbers
// that are not (a torn last line is expected after a kill; one in the
// middle means a write was cut short and another appended after it).
func readJournalLines(path string) (recs []egressRecord, bad []int, err error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	lines := bytes.Split(b, []byte("\n"))
	for i, line := range lines {
		if len(line) == 0 {
			continue
		}
		var r egressRecord
		if err := json.Unmarshal(line, &r); err != nil {
			if i == len(lines)-1 {
				continue // torn by a kill mid-write: the record never counted
			}
			bad = append(bad, i+1)
			continue
		}
		recs = append(recs, r)
	}
	return recs, bad, nil
}

// ledgerFile is the part of a site's privacy.json the checker reads.
type ledgerFile struct {
	Datasets map[string]map[string]struct {
		Epsilon  float64 `json:"epsilon"`
		Releases int     `json:"releases"`
		Paid     []int   `json:"paid"`
	} `json:"datasets"`
}

// violations collects what the checker found; empty is a pass.
type violations []string

func (v *violations) add(format string, args ...any) { *v = append(*v, fmt.Sprintf(format, args...)) }

// check asserts the invariants over a trial's history, for the jobs (id
// to rounds wanted) that must have succeeded:
//   - linearizable reads: no completed round lost, changed or reordered;
//   - each job succeeded with rounds 1..N, each once;
//   - every audit snapshot verifies against its signed checkpoint, and
//     each is a prefix of the next (the log only grows);
//   - each round is one round entry, or a first attempt and entries that
//     say which attempt they redo; the last attempt's participants are the
//     job's, and it holds an update digest for each participant;
//   - each participant's egress journal holds the train release of that
//     round, and every release a journal says left is allowed by an
//     egress decision of that site in the audit log;
//   - with DP, every round whose update left a site is paid for in its
//     privacy ledger (the budget is never under-counted), within plan.
func (h *history) check(f *federation, jobs map[string]int, dp bool) violations {
	var v violations
	h.mu.Lock()
	ops := slices.Clone(h.ops)
	snaps := slices.Clone(h.snapshots)
	h.mu.Unlock()
	if res, info := porcupine.CheckOperationsVerbose(jobModel, ops, 30*time.Second); res != porcupine.Ok {
		path := filepath.Join(f.dir, "linearizability.html")
		_ = porcupine.VisualizePath(jobModel, info, path)
		v.add("job reads are not linearizable against a grow-only job (%s; %d reads; see %s)", res, len(ops), path)
	}
	finals := map[string]jobJSON{}
	for id, n := range jobs {
		j, ok := f.getJobCLI(id) // as the CLI shows it
		if !ok {
			v.add("job %s: cannot read it at the end", id)
			continue
		}
		finals[id] = j
		if j.Status != "SUCCEEDED" || j.RoundsCompleted != n || len(j.Rounds) != n {
			v.add("job %s: %s with %d of %d rounds (%d listed): %s", id, j.Status, j.RoundsCompleted, n, len(j.Rounds), j.Message)
		}
		for i, r := range j.Rounds {
			if r.Round != i+1 {
				v.add("job %s: round %d listed at position %d", id, r.Round, i+1)
			}
		}
	}
	if len(snaps) == 0 {
		v.add("no audit snapshot")
		return v
	}
	for i, s := range snaps {
		rep, err := auditlog.VerifyExport(bytes.NewReader(s.export), s.checkpoint, s.key)
		if err != nil {
			v.add("audit snapshot %d does not verify: %v", i, err)
		} else if rep.Unvouched > 0 && i == len(snaps)-1 {
			// The last snapshot is taken at rest: all of it is vouched for.
			v.add("audit snapshot %d: %d entries beyond its checkpoint", i, rep.Unvouched)
		}
		if i > 0 && !bytes.HasPrefix(s.export, snaps[i-1].export) {
			v.add("audit snapshot %d does not extend snapshot %d: the log was rewritten", i, i-1)
		}
	}
	entries, err := parseExport(snaps[len(snaps)-1].export)
	if err != nil {
		v.add("audit export: %v", err)
		return v
	}
	egressDecisions := map[string]bool{} // site+task, allowed
	for _, e := range entries {
		if e.Entry.Type == auditlog.TypeEgress && e.Entry.Data["allow"] == true {
			egressDecisions[e.Entry.Site+"|"+fmt.Sprint(e.Entry.Data["task"])] = true
		}
	}
	journals := map[string][]egressRecord{}
	for _, s := range f.siteNames {
		recs, bad, err := readJournalLines(filepath.Join(f.siteState[s], "egress.jsonl"))
		if err != nil {
			v.add("site %s: egress journal: %v", s, err)
		}
		if len(bad) > 0 {
			v.add("site %s: egress journal lines %v are not whole records: a write was cut short and the journal appended after it", s, bad)
		}
		journals[s] = recs
		for _, r := range recs {
			// Under DP a site's eval answer carries no metrics (docs/privacy.md):
			// nothing leaves, so no egress decision is taken.
			if dp && r.Kind == "TASK_KIND_EVAL" {
				continue
			}
			if r.Allowed && r.Kind != "TASK_KIND_ADMIT" && !egressDecisions[s+"|"+r.Task] && !egressDecisions["spiffe://example.org/site/"+s+"|"+r.Task] {
				v.add("site %s released task %s (%s, %d bytes) with no allowing egress decision in the audit log", s, r.Task, r.Kind, r.Bytes)
			}
		}
	}
	for id, j := range finals {
		byRound := map[int][]entry{}
		for _, e := range entries {
			if e.Entry.Type == auditlog.TypeRound && e.Entry.Job == id {
				r := int(e.Entry.Data["round"].(float64))
				byRound[r] = append(byRound[r], e)
			}
		}
		for r := 1; r <= len(j.Rounds); r++ {
			es := byRound[r]
			if len(es) == 0 {
				v.add("job %s round %d: no round entry in the audit log", id, r)
				continue
			}
			for k, e := range es {
				redo, isRedo := e.Entry.Data["redo_of"]
				switch {
				case k == 0 && isRedo:
					v.add("job %s round %d: its first entry (%d) claims to redo entry %v", id, r, e.Index, redo)
				case k > 0 && !isRedo:
					v.add("job %s round %d: logged again at entry %d without saying it redoes entry %d", id, r, e.Index, es[0].Index)
				case k > 0 && int64(redo.(float64)) != es[k-1].Index && int64(redo.(float64)) != es[0].Index:
					v.add("job %s round %d: entry %d redoes %v, which is not an earlier attempt of the round", id, r, e.Index, redo)
				}
			}
			last := es[len(es)-1]
			parts := toStrings(last.Entry.Data["participants"])
			if !slices.Equal(parts, sorted(j.Rounds[r-1].Participants)) {
				v.add("job %s round %d: audit says participants %v, the job %v", id, r, parts, j.Rounds[r-1].Participants)
			}
			digests, _ := last.Entry.Data["update_digests"].(map[string]any)
			if _, secagg := last.Entry.Data["secure_aggregation"]; !secagg {
				var have []string
				for s := range digests {
					have = append(have, s)
				}
				if !slices.Equal(sorted(have), parts) {
					v.add("job %s round %d: aggregated updates of %v, participants %v", id, r, sorted(have), parts)
				}
			}
			for _, s := range parts {
				if !slices.ContainsFunc(journals[s], func(x egressRecord) bool {
					return x.Job == id && x.Round == r && x.Kind == "TASK_KIND_TRAIN" && x.Allowed
				}) {
					v.add("job %s round %d: the audit log says %s took part; its egress journal has no train release for the round", id, r, s)
				}
			}
		}
		if dp {
			for _, s := range f.siteNames {
				b, err := os.ReadFile(filepath.Join(f.siteState[s], "privacy.json"))
				if err != nil {
					v.add("site %s: privacy ledger: %v", s, err)
					continue
				}
				var lf ledgerFile
				if err := json.Unmarshal(b, &lf); err != nil {
					v.add("site %s: privacy ledger does not parse: %v", s, err)
					continue
				}
				plan, ok := lf.Datasets["breast-cancer"][id]
				if !ok {
					v.add("site %s: no privacy plan for job %s", s, id)
					continue
				}
				if len(plan.Paid) > plan.Releases {
					v.add("site %s job %s: paid %d releases of %d planned", s, id, len(plan.Paid), plan.Releases)
				}
				for _, rec := range journals[s] {
					if rec.Job == id && rec.Kind == "TASK_KIND_TRAIN" && rec.Allowed && !slices.Contains(plan.Paid, rec.Round) {
						v.add("site %s job %s: round %d's update left (egress journal) but is not paid for in the ledger %v: budget under-counted", s, id, rec.Round, plan.Paid)
					}
				}
			}
		}
	}
	return v
}

func toStrings(x any) []string {
	var out []string
	if l, ok := x.([]any); ok {
		for _, s := range l {
			out = append(out, fmt.Sprint(s))
		}
	}
	sort.Strings(out)
	return out
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}
