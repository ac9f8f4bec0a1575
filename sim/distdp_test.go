package sim_test

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/federa-dev/federa/coordinator"
	"github.com/federa-dev/federa/models"
	"github.com/federa-dev/federa/privacy"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
	"github.com/federa-dev/federa/site"
	"github.com/federa-dev/federa/spec"
)

// distDPSpec is the demo job under distributed DP noise: one DP-SGD step
// over the union of the sites' rows a round.
func distDPSpec(rounds int, q, epsilon, lr float64) *spec.Job {
	j := secAggSpec()
	j.Rounds, j.LocalEpochs, j.L2, j.LearningRate = rounds, 1, 0, lr
	noEval := 0.0
	j.EvalFraction = &noEval
	j.Privacy.DP = &spec.DP{Epsilon: epsilon, Delta: 1e-5, ClipNorm: 1, Noise: spec.NoiseDistributed, SamplingRate: q}
	return j
}

// TestDistributedDPNoiseIsInTheSum: the step the coordinator unmasks
// carries the noise the accountant calibrated, whole, although each site
// added only a share. Two one-round jobs sample every row (rate 1), so
// their clipped gradient sums are identical and their models differ by
// their noise alone: per coordinate lr·(ξ₁ − ξ₂)/N, of standard deviation
// lr·σ·clip·√(2·survivors/threshold)/N. A site that added no share, or a
// share too small, makes the difference too small.
func TestDistributedDPNoiseIsInTheSum(t *testing.T) {
	n, _ := startNet(t, sim.Options{})
	const eps, lr = 1.0, 0.5
	var weights []models.Weights
	var rows int64
	for range 2 {
		// An MLP, for about a thousand coordinates to measure the noise on.
		j := distDPSpec(1, 1, eps, lr)
		j.Model = spec.Model{Type: "mlp", Hidden: []int{32}}
		job := runJob(t, n, j)
		if job.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
			t.Fatalf("job %s: %s", job.GetStatus(), job.GetMessage())
		}
		r := job.GetRounds()[0]
		sigma, err := privacy.CalibrateNoise(eps, 1e-5, 1, 1, privacy.WideOrders)
		if err != nil {
			t.Fatal(err)
		}
		if sa := r.GetSecagg(); sa.GetDpNoiseMultiplier() != sigma || sa.GetDpSamplingRate() != 1 || len(sa.GetMasked()) != 3 || sa.GetThreshold() != 2 {
			t.Fatalf("round record %v: want noise multiplier %v, rate 1, three survivors of threshold 2", sa, sigma)
		}
		rows = r.GetTrainExamples()
		for _, s := range job.GetSites() {
			if got := paidRounds(t, n, s.GetSite(), job.GetId()); !slices.Equal(got, []int32{1}) {
				t.Errorf("%s paid for rounds %v, want round 1 once", s.GetSite(), got)
			}
			if e := s.GetEpsilonSpent(); e > eps || e < eps*(1-1e-4) {
				t.Errorf("%s spent ε %v, want just under %v", s.GetSite(), e, eps)
			}
		}
		path := filepath.Join(t.TempDir(), "model.safetensors")
		downloadModel(t, n, job.GetId(), path)
		m, err := models.LoadModel(path)
		if err != nil {
			t.Fatal(err)
		}
		weights = append(weights, m.Weights)
	}
	sigma, _ := privacy.CalibrateNoise(eps, 1e-5, 1, 1, privacy.WideOrders)
	var sq float64
	var k int
	for name, a := range weights[0] {
		for i, v := range a.Data {
			d := float64(v - weights[1][name].Data[i])
			sq += d * d
			k++
		}
	}
	got := math.Sqrt(sq / float64(k))
	// Three survivors of threshold two: each share σ²/2, the sum 3σ²/2.
	want := lr * sigma * 1 * math.Sqrt(2*3.0/2) / float64(rows)
	t.Logf("noise of the step: sd %.4g per coordinate over %d coordinates, calibrated %.4g (σ %.3g, %d rows)", got, k, want, sigma, rows)
	if got < 0.9*want || got > 1.12*want {
		t.Fatalf("the two models differ by sd %.4g per coordinate; the calibrated noise gives %.4g", got, want)
	}
}

// TestDistributedDPLearnsThroughADropout: under distributed noise a job of
// one DP-SGD step a round trains a useful model, with a site dying after it
// shared its secrets in round 3; each survivor is charged once a round and
// within its budget.
func TestDistributedDPLearnsThroughADropout(t *testing.T) {
	hit := make(chan string, 1)
	n, _ := startNet(t, sim.Options{SiteOptions: hangWhen(maskingAt("us/boston", 3), hit)})
	const eps = 4.0
	j := distDPSpec(25, 0.3, eps, 1)
	j.MinSites = 2
	done := make(chan *federav1.Job, 1)
	go func() { done <- runJob(t, n, j) }()
	n.StopSite(waitHit(t, hit, "masking at round 3"))
	job := <-done
	if job.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("job %s: %s", job.GetStatus(), job.GetMessage())
	}
	r3 := job.GetRounds()[2].GetSecagg()
	if !slices.Equal(r3.GetMasked(), []string{"eu/paris", "sg/singapore"}) || r3.GetDpNoiseMultiplier() <= 0 {
		t.Fatalf("round 3's record %v: want two survivors and the noise multiplier recorded", r3)
	}
	path := filepath.Join(t.TempDir(), "model.safetensors")
	downloadModel(t, n, job.GetId(), path)
	acc := accuracyOf(t, path, filepath.Join(shipped, "test.csv"))
	t.Logf("test accuracy %.4f after %d distributed DP-SGD steps at ε = %v", acc, j.Rounds, eps)
	if acc < 0.85 {
		t.Fatalf("test accuracy %.4f under distributed DP noise, want at least 0.85 (a model that does not learn scores about 0.63)", acc)
	}
	for _, s := range []string{"eu/paris", "sg/singapore"} {
		got := paidRounds(t, n, s, job.GetId())
		if len(got) != 25 || got[0] != 1 || got[24] != 25 {
			t.Errorf("%s paid for rounds %v, want 1..25 once each", s, got)
		}
	}
}

// TestSecureAggregationRefusesAClearTrainingTask: a coordinator that sends
// a secure-aggregation job's training task outside a secure round (the
// secagg part stripped) would receive each site's update in the clear;
// every site refuses (or is cancelled first), and no weights leave any site.
func TestSecureAggregationRefusesAClearTrainingTask(t *testing.T) {
	for _, tc := range []struct {
		name string
		job  *spec.Job
	}{
		{"secure aggregation", secAggSpec()},
		{"distributed DP noise", distDPSpec(1, 0.5, 4, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tap := &wireTap{}
			n, logs := startNet(t, sim.Options{Coordinator: func(c *coordinator.Config) {
				c.ServerOptions = append(c.ServerOptions, tap.option(), grpc.ChainStreamInterceptor(
					func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
						return h(srv, &stripSecAgg{ServerStream: ss})
					}))
			}})
			tc.job.Rounds = 1
			job := runJob(t, n, tc.job)
			if job.GetStatus() != federav1.JobStatus_JOB_STATUS_FAILED {
				t.Fatalf("job %s: %s; want it failed", job.GetStatus(), job.GetMessage())
			}
			// The job fails as soon as the refusals leave too few sites for
			// its quorum, and cancels the task still running elsewhere; so
			// each site either says why it refused or had its task
			// cancelled before it answered (its log says so). No site
			// sends weights, and at least the two refusals that failed the
			// job arrive.
			eventually(t, "every site refused or was cancelled", func() error {
				refused := 0
				for _, id := range n.SiteIDs() {
					name := strings.TrimPrefix(id.Path(), "/site/")
					said := false
					for _, sm := range tap.from(id.String()) {
						if sm.GetChunk() != nil {
							t.Fatalf("%s sent weights for a training task outside a secure round: %v", name, sm.GetChunk().GetName())
						}
						if strings.Contains(sm.GetResult().GetError(), "refusing to send this site's update in the clear") {
							said = true
						}
					}
					switch {
					case said:
						refused++
					case logLines(logs.String(), "task cancelled", "site="+name, "TASK_KIND_TRAIN") == 0:
						return fmt.Errorf("%s neither said why it refused nor had its task cancelled; job message %q", name, job.GetMessage())
					}
				}
				if refused < 2 {
					return fmt.Errorf("%d sites said why they refused, want at least the 2 that failed the job; job message %q", refused, job.GetMessage())
				}
				return nil
			})
		})
	}
}

// stripSecAgg is a coordinator that sends training tasks without their
// secure-aggregation part.
type stripSecAgg struct{ grpc.ServerStream }

func (s *stripSecAgg) SendMsg(m any) error {
	if cm, ok := m.(*federav1.CoordinatorMessage); ok && cm.GetTask().GetKind() == federav1.TaskKind_TASK_KIND_TRAIN && cm.GetTask().GetSecagg() != nil {
		cm = proto.Clone(cm).(*federav1.CoordinatorMessage)
		cm.GetTask().Secagg = nil
		m = cm
	}
	return s.ServerStream.SendMsg(m)
}

// TestDistributedDPRoundRedoneAfterRestartIsNotPaidTwice: a coordinator
// restart in the middle of a secure round after two sites sent (and paid
// for) their masked shares redoes the round; those sites resend the share
// they paid for, masked afresh, instead of drawing a new one, so no round
// is charged twice and no second noisy look at the data leaves.
func TestDistributedDPRoundRedoneAfterRestartIsNotPaidTwice(t *testing.T) {
	const held = "us/boston"
	release := make(chan struct{})
	var once sync.Once
	n, _ := startNet(t, sim.Options{SiteOptions: func(name string) []site.Option {
		return []site.Option{site.WithBeforeTask(func(ctx context.Context, t *federav1.Task) {
			if name != held || !maskingAt(held, 3)(name, t) {
				return
			}
			hold := false
			once.Do(func() { hold = true })
			if hold {
				select {
				case <-ctx.Done():
				case <-release:
				}
			}
		})}
	}})
	defer once.Do(func() {})
	const eps = 3.0
	j := distDPSpec(4, 0.3, eps, 1)
	j.MinSites = 2
	c, id := submit(t, n, j)
	fast := []string{"eu/paris", "sg/singapore"}
	waitFor(t, "the fast sites to pay for round 3", func() bool {
		for _, s := range fast {
			if !slices.Contains(paidRounds(t, n, s, id), 3) {
				return false
			}
		}
		return true
	})
	if before, err := c.GetJob(context.Background(), &federav1.GetJobRequest{Id: id}); err != nil || before.GetRoundsCompleted() != 2 {
		t.Fatalf("before the restart: %d rounds complete (%v), want 2: round 3 must still be open", before.GetRoundsCompleted(), err)
	}
	c2 := restartCoordinator(t, n)
	close(release)
	final := waitFinal(t, c2, id)
	if final.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("the resumed job: %s %s", final.GetStatus(), final.GetMessage())
	}
	resent := 0
	for _, s := range fast {
		if slices.Contains(final.GetRounds()[2].GetSecagg().GetMasked(), s) {
			resent++
		}
	}
	if resent == 0 {
		t.Fatalf("no fast site took part in the redone round 3 (%v): nothing was resent", final.GetRounds()[2].GetSecagg())
	}
	for _, s := range final.GetSites() {
		got := paidRounds(t, n, s.GetSite(), id)
		if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) || len(got) > 4 {
			t.Errorf("%s charged rounds %v, want each of 1..4 at most once", s.GetSite(), got)
		}
		if e := s.GetEpsilonSpent(); e > eps {
			t.Errorf("%s spent ε %v, over the job's %v", s.GetSite(), e, eps)
		}
	}
}
