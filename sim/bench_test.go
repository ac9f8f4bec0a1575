package sim_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
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
// loopback) for b.N rounds; one op is one round. ns/op is the median of
// the rounds' own durations as the coordinator timed them, from a round's
// start to its record — not submit, admission, statistics, export or
// signing, and not the poll that waits for the job, which sleeps between
// asks so it does not compete with the sites. Besides ns/op it reports,
// as medians over the rounds, where a round's time went: the slowest
// site's local training, transfer and waiting (train phase minus that),
// aggregation and the evaluation fan-out — and round/local-train, the
// overhead factor of federation over the local compute it wraps — and the
// sites' policy decisions for the rounds' tasks as a share of the rounds'
// time (policy_%_of_round; policy_%_with_setup adds the admission and
// statistics decisions before the first round).
func BenchmarkDemoRound(b *testing.B) {
	b.StopTimer()
	n, err := sim.Start(sim.Options{Dir: b.TempDir(), Sites: shippedSites})
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
	job, err := c.SubmitJob(context.Background(), &federav1.SubmitJobRequest{Spec: j.Proto()})
	if err != nil {
		b.Fatal(err)
	}
	// The clock runs while the job does only so that the testing package
	// sizes b.N from real time (with it stopped throughout, b.N grew to a
	// million rounds); the ns/op reported is the rounds' median below.
	b.StartTimer()
	var final *federav1.Job
	for {
		time.Sleep(50 * time.Millisecond)
		final, err = c.GetJob(context.Background(), &federav1.GetJobRequest{Id: job.GetId()})
		if err != nil {
			b.Fatal(err)
		}
		if s := final.GetStatus(); s == federav1.JobStatus_JOB_STATUS_SUCCEEDED || s == federav1.JobStatus_JOB_STATUS_FAILED {
			break
		}
	}
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
	b.ReportMetric(median(round)*1e6, "ns/op")
	b.ReportMetric(median(train), "local_train_ms")
	b.ReportMetric(median(transfer), "transfer_wait_ms")
	b.ReportMetric(median(agg)*1000, "aggregate_us")
	b.ReportMetric(median(eval), "eval_phase_ms")
	if m := median(round); m > 0 {
		b.ReportMetric(100*median(audit)/m, "audit_%_of_round")
	}
	// Policy: the admission and egress decisions the sites made for the
	// rounds' tasks (task ids name their round; r0 is the admission and
	// statistics before the first round), per site, as a share of the
	// rounds' wall time. policy_%_with_setup also counts the decisions
	// before the first round, over the same time.
	var roundUs, setupUs, roundMs, egressUs, admitUs float64
	var nEgress, nAdmit int
	for _, d := range jobDecisions(b, n, final.GetId()) {
		rec := d.GetRecord()
		if rest, ok := strings.CutPrefix(rec.GetTaskId(), final.GetId()+"/r"); ok && !strings.HasPrefix(rest, "0/") {
			roundUs += rec.GetEvalUs()
		} else {
			setupUs += rec.GetEvalUs()
		}
		if rec.GetKind() == "egress" {
			egressUs += rec.GetEvalUs()
			nEgress++
		} else {
			admitUs += rec.GetEvalUs()
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
		perSite := float64(len(shippedSites)) * roundMs * 1000 / 100
		b.ReportMetric(roundUs/perSite, "policy_%_of_round")
		b.ReportMetric((roundUs+setupUs)/perSite, "policy_%_with_setup")
	}
	if t := median(train); t > 0 {
		b.ReportMetric((median(transfer)+median(train)+median(agg)+median(eval))/t, "round/local_train")
	}
}

// BenchmarkSecureRound runs the same job — n sites over real mTLS, the
// demo's rows dealt among them, an MLP of 98k or 988k parameters — in
// the clear and with secure aggregation, back to back in one run; one op
// is one such pair of 2-round jobs. It reports the median round time of
// each, secagg/clear (the goal: ≤ 2 at n ≤ 10), the secure
// protocol's own time after training, and the bytes each site sent per
// round under each.
func BenchmarkSecureRound(b *testing.B) {
	for _, n := range []int{3, 5, 10} {
		for _, m := range []struct {
			name   string
			hidden []int
		}{{"100k", []int{3000}}, {"1M", []int{4096, 210}}} {
			b.Run(fmt.Sprintf("sites=%d/params=%s", n, m.name), func(b *testing.B) { benchSecureRound(b, n, m.hidden) })
		}
	}
}

func benchSecureRound(b *testing.B, sites int, hidden []int) {
	specs := dealSites(b, sites)
	n, err := sim.Start(sim.Options{Dir: b.TempDir(), Sites: specs})
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
	const rounds = 2
	run := func(secure bool) *federav1.Job {
		j := demoSpec()
		j.Rounds, j.LocalEpochs, j.MinSites, j.Sites = rounds, 1, sites, nil
		for _, s := range specs {
			j.Sites = append(j.Sites, s.Name)
		}
		j.Model = spec.Model{Type: "mlp", Hidden: hidden}
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
				return final
			case federav1.JobStatus_JOB_STATUS_FAILED:
				b.Fatalf("job: %s", final.GetMessage())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	sentPerRound := func(j *federav1.Job) float64 {
		var sum int64
		for _, s := range j.GetSites() {
			sum += s.GetBytesSent()
		}
		return float64(sum) / float64(len(j.GetSites())) / rounds
	}
	var clear, secure, proto, ratio, bytesClear, bytesSecure []float64
	b.ResetTimer()
	for range b.N {
		cj, sj := run(false), run(true)
		cr, sr := cj.GetRounds(), sj.GetRounds()
		for i := range cr {
			clear = append(clear, float64(cr[i].GetDurationMs()))
			secure = append(secure, float64(sr[i].GetDurationMs()))
			proto = append(proto, sr[i].GetSecagg().GetProtocolMs())
			ratio = append(ratio, float64(sr[i].GetDurationMs())/float64(max(cr[i].GetDurationMs(), 1)))
		}
		bytesClear, bytesSecure = append(bytesClear, sentPerRound(cj)), append(bytesSecure, sentPerRound(sj))
	}
	b.StopTimer()
	b.ReportMetric(median(clear), "clear_round_ms")
	b.ReportMetric(median(secure), "secagg_round_ms")
	b.ReportMetric(median(proto), "secagg_protocol_ms")
	b.ReportMetric(median(ratio), "secagg/clear")
	b.ReportMetric(median(bytesSecure)/median(bytesClear), "bytes_secagg/clear")
}

// dealSites deals the demo's rows round-robin among n sites, eu/site-1 …
// eu/site-n, each a CSV with the shipped header.
func dealSites(b testing.TB, n int) []sim.SiteSpec {
	dir := b.TempDir()
	var header string
	var rows []string
	for _, s := range shippedSites {
		data, err := os.ReadFile(s.Path)
		if err != nil {
			b.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		header, rows = lines[0], append(rows, lines[1:]...)
	}
	parts := make([][]string, n)
	for i, r := range rows {
		parts[i%n] = append(parts[i%n], r)
	}
	var out []sim.SiteSpec
	for i, p := range parts {
		path := filepath.Join(dir, fmt.Sprintf("site-%d.csv", i+1))
		if err := os.WriteFile(path, []byte(header+"\n"+strings.Join(p, "\n")+"\n"), 0o644); err != nil {
			b.Fatal(err)
		}
		out = append(out, sim.SiteSpec{Name: fmt.Sprintf("eu/site-%d", i+1), Dataset: "breast-cancer", Path: path})
	}
	return out
}
