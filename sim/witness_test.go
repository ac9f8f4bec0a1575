package sim_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/federa-dev/federa/attest/auditlog"
	"github.com/federa-dev/federa/coordinator"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
)

func witnessKeys(t *testing.T, n *sim.Net) []string {
	t.Helper()
	var keys []string
	for _, s := range shippedSites {
		_, vkey, err := auditlog.LoadOrCreateKey(filepath.Join(n.SiteDir(s.Name), "keys"), "federa.demo/site/"+s.Name)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, vkey)
	}
	return keys
}

// TestSitesCoSignTheAuditLog: after a job every site has checked the
// coordinator's log grew consistently and co-signed it; the log verifies
// with all three witnesses.
func TestSitesCoSignTheAuditLog(t *testing.T) {
	n, _ := startNet(t, sim.Options{})
	j := demoSpec()
	j.Rounds = 3
	if job := runJob(t, n, j); job.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("job: %s", job.GetMessage())
	}
	dir := filepath.Join(n.CoordinatorDir(), coordinator.AuditDir)
	key := n.Coordinator().AuditKey()
	var lastErr error
	waitFor(t, "every site to co-sign the audit log", func() bool {
		rep, err := auditlog.Verify(dir, key, witnessKeys(t, n)...)
		lastErr = err
		return err == nil && len(rep.Witnessed) == 3
	})
	if lastErr != nil {
		t.Fatal(lastErr)
	}
}

// TestForkedCoordinatorIsCaught: a coordinator that starts over with a new
// history (its audit log replaced, same signing key) is caught by the
// sites at the next sync; they refuse every task from then on, saying why.
func TestForkedCoordinatorIsCaught(t *testing.T) {
	n, logs := startNet(t, sim.Options{})
	j := demoSpec()
	j.Rounds = 2
	if job := runJob(t, n, j); job.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("job: %s", job.GetMessage())
	}
	// Every site has accepted some history before the rewrite: a site
	// co-signs a checkpoint only after storing it as the history it holds
	// the coordinator to, so a co-signature from each in the coordinator's
	// log is the proof. (Pinning the log key, log.vkey, comes before that.)
	dir := filepath.Join(n.CoordinatorDir(), coordinator.AuditDir)
	key := n.Coordinator().AuditKey()
	waitFor(t, "every site to co-sign a checkpoint", func() bool {
		rep, err := auditlog.Verify(dir, key, witnessKeys(t, n)...)
		return err == nil && len(rep.Witnessed) == len(shippedSites)
	})
	if err := n.StopCoordinator(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := n.StartCoordinator(); err != nil {
		t.Fatal(err)
	}
	c, closeFn, err := n.Dial("alice")
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	var msg string
	waitFor(t, "a job to be refused because the log was rewritten", func() bool {
		job, err := c.SubmitJob(t.Context(), &federav1.SubmitJobRequest{Spec: j.Proto()})
		if err != nil {
			msg = err.Error()
		} else {
			msg = waitFinal(t, c, job.GetId()).GetMessage()
		}
		return strings.Contains(msg, "forked or rewritten")
	})
	if !strings.Contains(logs.String(), "COORDINATOR AUDIT LOG FORKED OR REWRITTEN") {
		t.Fatal("the sites did not raise the alarm in their logs")
	}
	if _, err := os.Stat(filepath.Join(n.SiteDir("eu/paris"), "witness", "FORKED")); err != nil {
		t.Fatalf("the alarm is not durable: %v", err)
	}
}

// TestWitnessesAreShownEveryDecisionTheyMade: after a job each site has
// been shown, through the witness syncs, every decision it made — the
// numbers its witness state says the log holds reach the last number in
// its journal — and none raised the alarm. A coordinator that showed a
// site only some of the entries about it would leave a gap (the alarm) or
// a number never shown (this test's wait runs out).
func TestWitnessesAreShownEveryDecisionTheyMade(t *testing.T) {
	n, _ := startNet(t, sim.Options{})
	j := demoSpec()
	j.Rounds = 3
	if job := runJob(t, n, j); job.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("job: %s", job.GetMessage())
	}
	for _, s := range shippedSites {
		dir := n.SiteDir(s.Name)
		var made uint64
		b, err := os.ReadFile(filepath.Join(dir, "decisions.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var r struct {
				Seq uint64 `json:"seq"`
			}
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("%s: journal line %q: %v", s.Name, line, err)
			}
			made = max(made, r.Seq)
		}
		if made < 7 { // admission, stats, and a train and eval egress per round at least
			t.Fatalf("%s made only %d decisions", s.Name, made)
		}
		var seen struct {
			Seq uint64 `json:"seq"`
		}
		waitFor(t, s.Name+"'s witness to be shown all its decisions", func() bool {
			if b, err := os.ReadFile(filepath.Join(dir, "witness", "FORKED")); err == nil {
				t.Fatalf("%s raised the alarm: %s", s.Name, b)
			}
			b, err := os.ReadFile(filepath.Join(dir, "witness", "decisions.json"))
			return err == nil && json.Unmarshal(b, &seen) == nil && seen.Seq == made
		})
	}
}
