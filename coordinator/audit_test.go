package coordinator

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/federa-dev/federa/attest/auditlog"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// TestOneBadEntrySinksNoOther: an entry that cannot be logged (over the
// log's size limit) fails only the operation that brought it; the sites'
// queued entries stay queued, in order, and land with the next append.
func TestOneBadEntrySinksNoOther(t *testing.T) {
	l, err := auditlog.Open(t.TempDir(), auditlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c := &Coordinator{cfg: Config{Now: time.Now}, auditLog: l}
	site := func(task string) auditlog.Entry {
		return auditlog.Entry{Type: auditlog.TypeEgress, Job: "job-1", Site: "eu/paris", Actor: "eu/paris", Time: time.Now(),
			Data: map[string]any{"task": task}}
	}
	c.auditQueue = []auditlog.Entry{site("a"), site("b")}
	huge := auditlog.Entry{Type: auditlog.TypeJobEnd, Job: "job-2", Actor: "coordinator", Data: map[string]any{"message": strings.Repeat("x", auditlog.MaxEntrySize)}}
	if err := c.audit(false, huge); err == nil || !strings.Contains(err.Error(), "exceeds MaxEntrySize") {
		t.Fatalf("an entry over the size limit: %v", err)
	}
	if l.Size() != 0 || len(c.auditQueue) != 2 {
		t.Fatalf("after a refused entry: log size %d, queue %d; want 0 and the 2 queued entries", l.Size(), len(c.auditQueue))
	}
	c.auditQueue = append(c.auditQueue, site("c"))
	end := auditlog.Entry{Type: auditlog.TypeJobEnd, Job: "job-1", Actor: "coordinator", Data: map[string]any{"status": "succeeded"}}
	if err := c.audit(false, end); err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := range l.Size() {
		leaf, _ := l.Entry(i)
		e, err := auditlog.ParseEntry(leaf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e.Type+":"+e.Job+":"+fmtAny(e.Data["task"]))
	}
	if strings.Join(got, " ") != "egress:job-1:a egress:job-1:b egress:job-1:c job_end:job-1:" {
		t.Fatalf("log holds %v", got)
	}

	// A failing append (here: the log closed under it) loses nothing
	// queued either.
	c.auditQueue = []auditlog.Entry{site("d")}
	l.Close()
	if err := c.audit(false, end); err == nil {
		t.Fatal("append to a closed log succeeded")
	}
	if len(c.auditQueue) != 1 {
		t.Fatalf("a failed append dropped the queue: %d left", len(c.auditQueue))
	}
}

func fmtAny(v any) string {
	if v == nil {
		return ""
	}
	return v.(string)
}

// TestJobRecordKeepsBoundedRounds: a 10000-round job keeps the figures of
// its newest 1000 rounds on its record, so the record (rewritten every
// round) stops growing.
func TestJobRecordKeepsBoundedRounds(t *testing.T) {
	var rounds []*federav1.RoundSummary
	for r := 1; r <= 10000; r++ {
		rounds = appendRound(rounds, &federav1.RoundSummary{Round: int32(r)})
	}
	if len(rounds) != maxRoundSummaries || rounds[0].GetRound() != 9001 || rounds[len(rounds)-1].GetRound() != 10000 {
		t.Fatalf("kept %d rounds, %d to %d", len(rounds), rounds[0].GetRound(), rounds[len(rounds)-1].GetRound())
	}
}

// TestPriorAttemptFindsAnUncheckpointedRound: a round logged before a stop
// that lost its checkpoint is found, so its second attempt can say it
// replaces it; a round that was checkpointed, another job's round and a
// job with no round are not.
func TestPriorAttemptFindsAnUncheckpointedRound(t *testing.T) {
	l, err := auditlog.Open(t.TempDir(), auditlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c := &Coordinator{cfg: Config{Now: time.Now}, auditLog: l}
	round := func(job string, r int) auditlog.Entry {
		return auditlog.Entry{Type: auditlog.TypeRound, Job: job, Actor: "coordinator", Data: map[string]any{"round": r}}
	}
	entries := []auditlog.Entry{
		{Type: auditlog.TypeJobSubmitted, Job: "job-1", Actor: "alice"},
		{Type: auditlog.TypeJobSubmitted, Job: "job-2", Actor: "alice"},
		round("job-1", 1), round("job-2", 1),
		round("job-1", 2), // index 4: logged, then the coordinator stopped
		{Type: auditlog.TypeEgress, Job: "job-1", Site: "eu/paris", Actor: "eu/paris", Data: map[string]any{"task": "t"}},
		round("job-2", 2),
	}
	if err := c.audit(false, entries...); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		job  string
		r    int
		want string
	}{{"job-1", 2, "4"}, {"job-1", 3, "none"}, {"job-2", 2, "6"}, {"job-2", 3, "none"}, {"job-3", 1, "none"}} {
		got := "none"
		if i := c.priorAttempt(tc.job, tc.r); i != nil {
			got = fmt.Sprint(*i)
		}
		if got != tc.want {
			t.Errorf("priorAttempt(%s, %d) = %s, want %s", tc.job, tc.r, got, tc.want)
		}
	}
}
