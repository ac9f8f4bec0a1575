package sim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/federa-dev/federa/cli"
	"github.com/federa-dev/federa/coordinator"
	"github.com/federa-dev/federa/models"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
	"github.com/federa-dev/federa/site"
)

// TestQuorumLostJobWaitsAndResumes: two of three sites die in the middle
// of round 3 of a min_sites 2 job. After the site wait the job does not
// fail: it is WAITING, its status says how many sites it has and that it
// goes on by itself, and round 2's model can be fetched (and its handing
// out is in the audit log). When the sites come back, round 3 is run again
// and the job succeeds with every round. A coordinator restarted while the
// job waits resumes it waiting.
func TestQuorumLostJobWaitsAndResumes(t *testing.T) {
	dying := map[string]bool{"sg/singapore": true, "us/boston": true}
	hit := make(chan string, 2)
	var mu sync.Mutex
	hung := map[string]bool{}
	n, _ := startNet(t, sim.Options{
		Coordinator: func(c *coordinator.Config) { c.SiteWaitTimeout = time.Second },
		SiteOptions: func(name string) []site.Option {
			return []site.Option{site.WithBeforeTask(func(ctx context.Context, task *federav1.Task) {
				if !dying[name] || task.GetKind() != federav1.TaskKind_TASK_KIND_TRAIN || task.GetRound() != 3 {
					return
				}
				mu.Lock()
				first := !hung[name]
				hung[name] = true
				mu.Unlock()
				if first { // once: the restarted site trains round 3 for real
					hit <- name
					<-ctx.Done()
				}
			})}
		},
	})
	j := demoSpec()
	j.Rounds = 5
	c, id := submit(t, n, j)
	for range 2 {
		n.StopSite(waitHit(t, hit, "two sites training round 3"))
	}

	var waiting *federav1.Job
	waitFor(t, "the job to wait for its quorum", func() bool {
		got, err := c.GetJob(context.Background(), &federav1.GetJobRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		if s := got.GetStatus(); s == federav1.JobStatus_JOB_STATUS_FAILED || s == federav1.JobStatus_JOB_STATUS_CANCELLED {
			t.Fatalf("job %s: %s; want it waiting for its quorum", s, got.GetMessage())
		}
		waiting = got
		return got.GetStatus() == federav1.JobStatus_JOB_STATUS_WAITING
	})
	for _, want := range []string{"waiting for quorum: 1 of 3 sites connected, min_sites is 2", "Resumable", "round 3 starts when enough of them reconnect", "federa model get " + id + " --checkpoint"} {
		if !strings.Contains(waiting.GetMessage(), want) {
			t.Fatalf("waiting job's message %q; want it to say %q", waiting.GetMessage(), want)
		}
	}
	if waiting.GetRoundsCompleted() != 2 {
		t.Fatalf("rounds completed %d, want 2 kept", waiting.GetRoundsCompleted())
	}

	// The last completed round's model, from the command line.
	out := filepath.Join(t.TempDir(), "round.safetensors")
	var stdout, stderr bytes.Buffer
	args := []string{"model", "get", id, "--checkpoint", "-o", out, "--output", "json", "--coordinator", n.Addr(), "--identity", n.IdentityDir("alice")}
	if code := cli.Execute(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("model get --checkpoint: %s", stderr.String())
	}
	var got struct {
		Round  int    `json:"round"`
		SHA256 string `json:"sha256"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil || got.Round != 2 {
		t.Fatalf("model get --checkpoint printed %q (%v); want round 2", stdout.String(), err)
	}
	m, err := models.LoadModel(out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Metadata["federa.rounds"] != "2" || len(m.Features) == 0 {
		t.Fatalf("checkpoint model: rounds %q, %d features", m.Metadata["federa.rounds"], len(m.Features))
	}
	released := false
	for _, e := range auditEntries(t, n) {
		if d, _ := e["data"].(map[string]any); e["type"] == "model_release" && e["job"] == id && d["checkpoint"] == true && d["artifact_sha256"] == got.SHA256 {
			released = true
		}
	}
	if !released {
		t.Fatal("the audit log has no model_release entry for the checkpoint handed out")
	}

	// A coordinator restarted meanwhile resumes the job, which waits again.
	restarted := time.Now().UnixMilli()
	c = restartCoordinator(t, n)
	waitFor(t, "the resumed job to wait for its quorum again", func() bool {
		got, err := c.GetJob(context.Background(), &federav1.GetJobRequest{Id: id})
		if err != nil {
			return false
		}
		if s := got.GetStatus(); s == federav1.JobStatus_JOB_STATUS_FAILED || s == federav1.JobStatus_JOB_STATUS_CANCELLED {
			t.Fatalf("resumed job %s: %s; want it waiting for its quorum", s, got.GetMessage())
		}
		return got.GetStatus() == federav1.JobStatus_JOB_STATUS_WAITING && got.GetUpdatedUnixMs() > restarted &&
			strings.Contains(got.GetMessage(), "waiting for quorum: 1 of 3 sites connected") && got.GetRoundsCompleted() == 2
	})

	for s := range dying {
		if err := n.StartSite(s); err != nil {
			t.Fatal(err)
		}
	}
	final := waitFinal(t, c, id)
	if final.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED || final.GetRoundsCompleted() != 5 {
		t.Fatalf("job %s after %d rounds: %s; want it succeeded after 5", final.GetStatus(), final.GetRoundsCompleted(), final.GetMessage())
	}
	for i, r := range final.GetRounds() {
		if int(r.GetRound()) != i+1 || len(r.GetParticipants()) < 2 {
			t.Fatalf("round %d (at %d) ran with %v; want rounds 1-5 once each, each with its quorum", r.GetRound(), i, r.GetParticipants())
		}
	}
}
