package chaos

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/federa-dev/federa/attest/auditlog"
)

// A job whose rounds take a second or two of local training, so that a
// link cut when a round starts lands in the middle of it.
const partitionJob = `name: partitioned
dataset: breast-cancer
label: label
model: {type: mlp, hidden: [128]}
rounds: 10
local_epochs: 300
batch_size: 16
learning_rate: 0.05
l2: 0.0001
min_sites: 2
round_timeout: 30s
seed: 7
`

// TestSitePartitionedMidRound cuts us/boston's link (its veth down: its
// packets vanish, no reset) as round 3 starts. The coordinator learns the
// site is gone from its missed heartbeats (3 × 250 ms) while the two others
// still train, so the round must close on its quorum as soon as the last
// live answer is in — measured: the audit log's round entry against the
// survivors' own egress journals — not at the 30 s round deadline. Once
// the link is back the site rejoins and takes part in the last round.
func TestSitePartitionedMidRound(t *testing.T) {
	t.Parallel()
	f := startFederation(t, options{heartbeat: "250ms"})
	h := newHistory()
	f.waitSites()
	id := f.submit(partitionJob)
	for deadline := time.Now().Add(2 * time.Minute); ; {
		j, ok := h.read(f, id)
		if ok && j.ended() {
			t.Fatalf("job ended before the cut: %+v", j)
		}
		if ok && j.RoundsCompleted >= 2 {
			if j.RoundsCompleted > 2 {
				t.Fatalf("read the job only after round %d; the cut must land in round 3 (rounds %+v)", j.RoundsCompleted, j.Rounds)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job never reached round 2: %+v", j)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cutAt := time.Now()
	f.lab.cut("us/boston")
	var j jobJSON
	for deadline := time.Now().Add(time.Minute); ; {
		var ok bool
		if j, ok = h.read(f, id); ok && j.RoundsCompleted >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("round 3 never completed after the cut: %+v", j)
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.lab.restore("us/boston")
	restored := time.Now()
	// The site learns its old stream is dead when the coordinator's reset
	// gets through (TCP retransmission backs off while the link is down),
	// then dials again.
	f.coord.waitLog(2, 30*time.Second, `msg="site connected"`, "site=us/boston ")
	t.Logf("us/boston reconnected %s after its link came back", time.Since(restored).Round(time.Millisecond))
	r3 := j.Rounds[2]
	if strings.Join(r3.Participants, ",") != "eu/paris,sg/singapore" || strings.Join(r3.Missing, ",") != "us/boston" {
		t.Fatalf("round 3: participants %v missing %v; want the two sites that kept their link (rounds %+v)", r3.Participants, r3.Missing, j.Rounds)
	}
	final := f.waitEnd(h, id, 2*time.Minute)
	for !h.snap(f) {
		time.Sleep(100 * time.Millisecond)
	}

	// When did round 3 close, and when did its last live answer leave?
	entries, err := parseExport(h.snapshots[len(h.snapshots)-1].export)
	if err != nil {
		t.Fatal(err)
	}
	var closed time.Time
	for _, e := range entries {
		if e.Entry.Type == auditlog.TypeRound && e.Entry.Job == id && e.Entry.Data["round"] == float64(3) {
			closed = e.Entry.Time
		}
	}
	var lastLive time.Time
	for _, s := range []string{"eu/paris", "sg/singapore"} {
		recs, err := readJournal(filepath.Join(f.siteState[s], "egress.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Job == id && r.Round == 3 && r.Kind == "TASK_KIND_TRAIN" && r.Time.After(lastLive) {
				lastLive = r.Time
			}
		}
	}
	if closed.IsZero() || lastLive.IsZero() {
		t.Fatalf("round 3: closed at %v, last live answer at %v: one is missing from the records", closed, lastLive)
	}
	lag := closed.Sub(lastLive)
	t.Logf("round 3: last live answer %s after the cut, round closed %s after the last live answer (%s after the cut; round_timeout 30s)",
		lastLive.Sub(cutAt).Round(time.Millisecond), lag.Round(time.Millisecond), closed.Sub(cutAt).Round(time.Millisecond))
	if lag > time.Second {
		t.Errorf("round 3 closed %s after its last live answer; the quorum was met and the partitioned site known gone, so it should close within 1s", lag)
	}
	if final.Status != "SUCCEEDED" {
		t.Fatalf("job: %s: %s", final.Status, final.Message)
	}
	if last := final.Rounds[len(final.Rounds)-1]; !slices.Contains(last.Participants, "us/boston") {
		t.Errorf("us/boston did not rejoin by the last round: participants %v", last.Participants)
	}
	if v := h.check(f, map[string]int{id: 10}, false); len(v) > 0 {
		for _, x := range v {
			t.Error(x)
		}
	}
}
