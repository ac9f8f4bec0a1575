package devnet_test

import (
	"context"
	"sort"
	"testing"

	"github.com/federa-dev/federa/internal/devnet"
	federav1 "github.com/federa-dev/federa/proto/federav1"
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
