package devnet_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/federa-dev/federa/internal/devnet"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/site"
	"github.com/federa-dev/federa/spec"
)

// paidRounds reads which rounds of job a site's privacy ledger charged.
func paidRounds(t *testing.T, n *devnet.Net, siteName, job string) []int32 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.SiteDir(siteName), "privacy.json"))
	if err != nil {
		return nil
	}
	var l struct {
		Datasets map[string]map[string]struct {
			Paid []int32 `json:"paid"`
		} `json:"datasets"`
	}
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatalf("%s's ledger: %v", siteName, err)
	}
	return l.Datasets["breast-cancer"][job].Paid
}

// TestDPRoundRedoneAfterRestartIsNotPaidTwice: the coordinator restarts
// while a round is open, after two sites have released (and paid for)
// their updates and before the third has; the round is redone. The two
// sites resend what they paid for instead of training and paying again,
// so the job ends within its ε with each round charged once.
func TestDPRoundRedoneAfterRestartIsNotPaidTwice(t *testing.T) {
	const held = "us/boston"
	var trainsOfRound3 sync.Map // site → *atomic.Int32
	release := make(chan struct{})
	var once sync.Once
	n, _ := startNet(t, devnet.Options{Site: func(name string, cfg *site.Config) {
		cfg.BeforeTask = func(ctx context.Context, t *federav1.Task) {
			if t.GetKind() != federav1.TaskKind_TASK_KIND_TRAIN || t.GetRound() != 3 {
				return
			}
			c, _ := trainsOfRound3.LoadOrStore(name, new(atomic.Int32))
			c.(*atomic.Int32).Add(1)
			if name == held {
				hold := false
				once.Do(func() { hold = true })
				if hold {
					select {
					case <-ctx.Done():
					case <-release:
					}
				}
			}
		}
	}})
	defer once.Do(func() {})
	j := demoSpec()
	j.Rounds, j.MinSites = 4, 3
	noEval := 0.0
	j.EvalFraction = &noEval
	j.Privacy.DP = &spec.DP{Epsilon: 3, Delta: 1e-5, ClipNorm: 1}
	c, closeFn, err := n.Dial("alice")
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	job, err := c.SubmitJob(context.Background(), &federav1.SubmitJobRequest{Spec: j.Proto()})
	if err != nil {
		t.Fatal(err)
	}
	fast := []string{"eu/paris", "sg/singapore"}
	waitFor(t, "the fast sites to pay for round 3", func() bool {
		for _, s := range fast {
			if !slices.Contains(paidRounds(t, n, s, job.GetId()), 3) {
				return false
			}
		}
		return true
	})
	before, err := c.GetJob(context.Background(), &federav1.GetJobRequest{Id: job.GetId()})
	if err != nil || before.GetRoundsCompleted() != 2 {
		t.Fatalf("before the restart: %d rounds complete (%v), want 2: round 3 must still be open", before.GetRoundsCompleted(), err)
	}
	c2 := restartCoordinator(t, n)
	close(release)
	final := waitFinal(t, c2, job.GetId())
	if final.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("the resumed DP job: %s %s", final.GetStatus(), final.GetMessage())
	}
	for _, s := range fast {
		v, _ := trainsOfRound3.Load(s)
		if got := v.(*atomic.Int32).Load(); got != 2 {
			t.Errorf("%s was asked to train round 3 %d times, want 2 (the round was redone)", s, got)
		}
	}
	for _, s := range []string{"eu/paris", "sg/singapore", held} {
		if got := paidRounds(t, n, s, job.GetId()); !slices.Equal(got, []int32{1, 2, 3, 4}) {
			t.Errorf("%s charged rounds %v, want each of 1..4 once", s, got)
		}
	}
	for _, s := range final.GetSites() {
		if e := s.GetEpsilonSpent(); e > 3 || e < 3*(1-1e-4) {
			t.Errorf("%s spent epsilon %v on the job; want just under 3", s.GetSite(), e)
		}
	}
}
