package devnet_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/federa-dev/federa/internal/devnet"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/spec"
)

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// BenchmarkDemoRound runs the demo job (three sites, real mTLS on
// loopback) for b.N rounds; one op is one round. Besides ns/op it reports,
// as medians over the rounds, where a round's time went: the slowest
// site's local training, transfer and waiting (train phase minus that),
// aggregation and the evaluation fan-out — and round/local-train, the
// overhead factor of federation over the local compute it wraps.
func BenchmarkDemoRound(b *testing.B) {
	n, err := devnet.Start(devnet.Options{Dir: b.TempDir(), Sites: shippedSites})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	if err := n.WaitConnected(context.Background()); err != nil {
		b.Fatal(err)
	}
	c, closeFn, err := n.Dial("alice")
	if err != nil {
		b.Fatal(err)
	}
	defer closeFn()
	j := demoSpec()
	j.Rounds = max(b.N, 1)
	b.ResetTimer()
	job, err := c.SubmitJob(context.Background(), &federav1.SubmitJobRequest{Spec: j.Proto()})
	if err != nil {
		b.Fatal(err)
	}
	var final *federav1.Job
	for {
		final, err = c.GetJob(context.Background(), &federav1.GetJobRequest{Id: job.GetId()})
		if err != nil {
			b.Fatal(err)
		}
		if s := final.GetStatus(); s == federav1.JobStatus_JOB_STATUS_SUCCEEDED || s == federav1.JobStatus_JOB_STATUS_FAILED {
			break
		}
	}
	b.StopTimer()
	if final.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		b.Fatalf("job %s", final.GetMessage())
	}
	var round, train, transfer, agg, eval, audit []float64
	for _, r := range final.GetRounds() {
		round = append(round, float64(r.GetDurationMs()))
		train = append(train, r.GetMaxLocalTrainMs())
		transfer = append(transfer, r.GetTrainPhaseMs()-r.GetMaxLocalTrainMs())
		agg = append(agg, r.GetAggregateMs())
		eval = append(eval, r.GetEvalPhaseMs())
		audit = append(audit, r.GetAuditMs())
	}
	b.ReportMetric(median(train), "local_train_ms")
	b.ReportMetric(median(transfer), "transfer_wait_ms")
	b.ReportMetric(median(agg)*1000, "aggregate_us")
	b.ReportMetric(median(eval), "eval_phase_ms")
	if m := median(round); m > 0 {
		b.ReportMetric(100*median(audit)/m, "audit_%_of_round")
	}
	// Policy: every admission and egress decision the sites made, per site,
	// as a share of the rounds' wall time.
	var policyUs, roundMs, egressUs, admitUs float64
	var nEgress, nAdmit int
	for _, d := range final.GetDecisions() {
		policyUs += d.GetRecord().GetEvalUs()
		if d.GetRecord().GetKind() == "egress" {
			egressUs += d.GetRecord().GetEvalUs()
			nEgress++
		} else {
			admitUs += d.GetRecord().GetEvalUs()
			nAdmit++
		}
	}
	if nEgress > 0 && nAdmit > 0 {
		b.ReportMetric(egressUs/float64(nEgress), "egress_us/decision")
		b.ReportMetric(admitUs/float64(nAdmit), "admission_us/decision")
	}
	for _, r := range round {
		roundMs += r
	}
	if roundMs > 0 {
		b.ReportMetric(100*policyUs/1000/float64(len(shippedSites))/roundMs, "policy_%_of_round")
	}
	if t := median(train); t > 0 {
		b.ReportMetric((median(transfer)+median(train)+median(agg)+median(eval))/t, "round/local_train")
	}
}

// BenchmarkSecureRound runs the same job — three sites over real mTLS, an
// MLP of 98k parameters — in the clear and with secure aggregation, back to
// back in one run; one op is one such pair of 3-round jobs. It reports the
// median round time of each, secagg/clear (the goal: ≤ 2 at n ≤ 10)
// and the secure protocol's own time after training.
func BenchmarkSecureRound(b *testing.B) {
	n, err := devnet.Start(devnet.Options{Dir: b.TempDir(), Sites: shippedSites})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	if err := n.WaitConnected(context.Background()); err != nil {
		b.Fatal(err)
	}
	c, closeFn, err := n.Dial("alice")
	if err != nil {
		b.Fatal(err)
	}
	defer closeFn()
	run := func(secure bool) []*federav1.RoundSummary {
		j := demoSpec()
		j.Rounds, j.LocalEpochs = 3, 1
		j.Model = spec.Model{Type: "mlp", Hidden: []int{3000}}
		j.Privacy.SecureAggregation.On = secure
		job, err := c.SubmitJob(context.Background(), &federav1.SubmitJobRequest{Spec: j.Proto()})
		if err != nil {
			b.Fatal(err)
		}
		for {
			final, err := c.GetJob(context.Background(), &federav1.GetJobRequest{Id: job.GetId()})
			if err != nil {
				b.Fatal(err)
			}
			switch final.GetStatus() {
			case federav1.JobStatus_JOB_STATUS_SUCCEEDED:
				return final.GetRounds()
			case federav1.JobStatus_JOB_STATUS_FAILED:
				b.Fatalf("job: %s", final.GetMessage())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	var clear, secure, proto, ratio []float64
	b.ResetTimer()
	for range b.N {
		cr, sr := run(false), run(true)
		for i := range cr {
			clear = append(clear, float64(cr[i].GetDurationMs()))
			secure = append(secure, float64(sr[i].GetDurationMs()))
			proto = append(proto, sr[i].GetSecagg().GetProtocolMs())
			ratio = append(ratio, float64(sr[i].GetDurationMs())/float64(max(cr[i].GetDurationMs(), 1)))
		}
	}
	b.StopTimer()
	b.ReportMetric(median(clear), "clear_round_ms")
	b.ReportMetric(median(secure), "secagg_round_ms")
	b.ReportMetric(median(proto), "secagg_protocol_ms")
	b.ReportMetric(median(ratio), "secagg/clear")
}
