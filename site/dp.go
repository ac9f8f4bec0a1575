package site

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/mat"

	"github.com/federa-dev/federa/dataset"
	"github.com/federa-dev/federa/models"
	"github.com/federa-dev/federa/policy"
	"github.com/federa-dev/federa/privacy"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/secagg"
	"github.com/federa-dev/federa/secagg/updates"
	"github.com/federa-dev/federa/spec"
)

// maxNoiseMultiplier is the most noise (σ, per unit of clip norm) a site
// trains with: a job that needs more to meet its ε would train on noise,
// and is refused with what it would take instead.
const maxNoiseMultiplier = 50

// dpRelease is a DP model update on its way out: the plan it spends
// under, the lifetime budget it spends within, and (for a new release)
// what to keep so that a redone round resends it.
type dpRelease struct {
	budget policy.Budget
	plan   *dpPlan
	keep   *paidRelease
}

// planDP makes the job's DP plan for this dataset before its first
// release, unless it has one (see dpPlanFor), checked against the
// dataset's lifetime budget and recorded in the ledger.
func (a *Agent) planDP(t *federav1.Task, ad admitted, rows int) error {
	if t.GetSpec().GetPrivacy().GetDp() == nil || a.ledger.lookup(ad.dataset.Name, t.GetJobId()) != nil {
		return nil
	}
	p, err := dpPlanFor(t.GetSpec(), rows)
	if err != nil {
		return err
	}
	if _, err := a.ledger.plan(ad.dataset.Name, t.GetJobId(), p, ad.obligations.PrivacyBudget); err != nil {
		return err
	}
	a.log.Info("differential privacy planned", "job", t.GetJobId(), "dataset", ad.dataset.Name, "noise_multiplier", p.Sigma, "sampling_rate", p.Q, "steps_per_round", p.StepsPerRelease)
	return nil
}

// dpFeasible is the plan's check at admission, so that a DP job this
// site cannot run is refused at submit: the noise its ε needs on this
// site's rows (a DP job holds none out, so every row trains) and whether
// the whole plan fits the dataset's lifetime budget. rows is the count the
// label profile read, or 0 when it stopped counting: then the label column
// is scanned. It records nothing; "" means feasible.
func (a *Agent) dpFeasible(t *federav1.Task, ds *Dataset, rows int, budget policy.Budget) string {
	if t.GetSpec().GetPrivacy().GetDp() == nil || a.ledger.lookup(ds.Name, t.GetJobId()) != nil {
		return ""
	}
	if rows == 0 {
		label := t.GetSpec().GetLabel()
		if err := ds.source().Scan([]string{label}, func([]dataset.Value) error { rows++; return nil }); err != nil {
			return fmt.Sprintf("differential privacy: cannot count the dataset's rows: %v", redact(err))
		}
	}
	p, err := dpPlanFor(t.GetSpec(), rows)
	if err == nil {
		err = a.ledger.fits(ds.Name, t.GetJobId(), p, budget)
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

// dpPlanFor is the DP plan of a job on rows training rows: the noise
// multiplier the accountant needs for the job's (ε, δ) over all its rounds,
// given the batch size and local epochs (DP-SGD with Poisson sampling; see
// models.DPSteps). A budget no usable noise meets is an error saying what
// it would take.
func dpPlanFor(sp *federav1.JobSpec, rows int) (dpPlan, error) {
	dp := sp.GetPrivacy().GetDp()
	q, steps := models.DPSteps(rows, int(sp.GetBatchSize()), int(sp.GetLocalEpochs()))
	rounds := int(sp.GetRounds())
	if steps == 0 {
		return dpPlan{}, errors.New("differential privacy: no training rows to plan DP-SGD for")
	}
	what := fmt.Sprintf("epsilon %g at delta %g over %d rounds of %d DP-SGD steps (sampling rate %.3g of this site's %d training rows)",
		dp.GetEpsilon(), dp.GetDelta(), rounds, steps, q, rows)
	if spec.DistributedDP(sp) {
		// One step a round over the union of the sites' rows, each row
		// sampled at the job's rate: every site plans the same σ, which
		// only the secure sum carries whole.
		q, steps = dp.GetSamplingRate(), 1
		what = fmt.Sprintf("epsilon %g at delta %g over %d rounds of one distributed DP-SGD step (sampling rate %.3g)",
			dp.GetEpsilon(), dp.GetDelta(), rounds, q)
	}
	sigma, err := privacy.CalibrateNoise(dp.GetEpsilon(), dp.GetDelta(), q, rounds*steps, ledgerOrders)
	if errors.Is(err, privacy.ErrNoiseAboveCap) {
		return dpPlan{}, fmt.Errorf("differential privacy: %s cannot be met with any usable noise (%v): raise epsilon, or lower rounds or local_epochs, or use a larger batch_size", what, err)
	}
	if err != nil {
		return dpPlan{}, fmt.Errorf("differential privacy: %w", err)
	}
	if sigma > maxNoiseMultiplier {
		return dpPlan{}, fmt.Errorf("differential privacy: %s needs noise multiplier %.3g, above the %d a site trains with (the model would be noise): raise epsilon, or lower rounds or local_epochs, or use a larger batch_size",
			what, sigma, maxNoiseMultiplier)
	}
	return dpPlan{
		Epsilon: dp.GetEpsilon(), Delta: dp.GetDelta(), Q: q, Sigma: sigma, ClipNorm: dp.GetClipNorm(),
		StepsPerRelease: steps, Releases: rounds,
	}, nil
}

// dpNoise describes the plan's noise for the egress policy and the result.
func (r *release) dpNoise(p *dpPlan) {
	r.noise = &policy.Noise{Mechanism: "dp-sgd-gaussian", Sigma: p.Sigma * p.ClipNorm, ClipNorm: p.ClipNorm}
	r.res.NoiseSigma = p.Sigma * p.ClipNorm
}

// Mechanism names the egress policy sees (input.message.noise.mechanism).
const mechanismDistributed = "dp-sgd-distributed-discrete-gaussian"

// trainShare is a round's training under distributed DP noise: this
// site's share of one DP-SGD step over the union of the sites' rows — its
// Poisson sample's clipped gradient sum at the round's weights, clamped,
// rounded and noised with a discrete Gaussian share (updates.DPCodec) —
// kept as the secure round's input. Only the secure sum of at least the
// threshold's shares carries the noise the plan's σ calls for; the share
// leaves this site only masked (secaggKeys, phase MASK).
func (a *Agent) trainShare(t *federav1.Task, w models.Weights, arch models.Arch, X *mat.Dense, y models.Targets, plan *dpPlan, r *release) error {
	if t.GetSecagg().GetPhase() != federav1.SecAggTask_PHASE_KEYS {
		return errors.New("distributed DP noise: a training task outside secure aggregation; refusing, since this site's update carries only a share of the noise")
	}
	_, codec, err := a.secaggParams(t, plan.Sigma)
	if err != nil {
		return err
	}
	rows, _ := X.Dims()
	var share []uint64
	if _, paid := slices.BinarySearch(plan.Paid, t.GetRound()); paid {
		// Released and paid for before a restart: the same share goes
		// again; a fresh one would be a second, unpaid look at the data.
		kept, err := a.ledger.paidReleaseOf(t.GetJobId(), t.GetRound())
		if err != nil {
			return err
		}
		if share, err = secagg.Unpack(updates.Bits, kept.Share); err != nil || len(share) != codec.dp.Length() {
			return fmt.Errorf("the kept share of round %d does not fit this round's encoding (%d values, want %d): %v", t.GetRound(), len(share), codec.dp.Length(), err)
		}
		r.res.ObligationsEnforced = append(r.res.ObligationsEnforced, fmt.Sprintf("dp: round %d resent as paid for (no new spend)", t.GetRound()))
	} else {
		g, err := models.SumClippedGradients(arch, w, X, y, plan.ClipNorm, plan.Q, a.noise())
		if err != nil {
			return fmt.Errorf("distributed DP-SGD: %w", err)
		}
		if share, err = codec.dp.Encode(w, g, int64(rows), a.noise()); err != nil {
			return err
		}
		packed, err := secagg.Pack(updates.Bits, share)
		if err != nil {
			return err
		}
		r.dp.keep = &paidRelease{Round: t.GetRound(), Examples: int64(rows), Share: packed}
	}
	r.share = share
	r.noise = &policy.Noise{Mechanism: mechanismDistributed, Sigma: plan.Sigma * plan.ClipNorm, ClipNorm: plan.ClipNorm}
	r.res.NoiseSigma = plan.Sigma * plan.ClipNorm
	r.res.ObligationsEnforced = append(r.res.ObligationsEnforced, fmt.Sprintf("distributed dp-sgd: clip %g, noise multiplier %.4g of the secure sum (this site's share %.4g, for threshold %d), sampling rate %.4g, one step",
		plan.ClipNorm, plan.Sigma, plan.Sigma/math.Sqrt(float64(codec.dp.Threshold)), codec.dp.Threshold, plan.Q))
	r.res.Examples = int64(rows)
	r.kind, r.records = egressModelUpdate, int64(rows)
	return nil
}

// payFor records tx's release: the release is kept first (so a redone
// round can resend it), then the spend is committed. It ends tx.
func (a *Agent) payFor(tx *ledgerTx, t *federav1.Task, rel *release) error {
	if tx.paid && rel.dp.keep != nil {
		// Only the kept release may go again for free; a new one would be
		// a second, unpaid look at the data.
		tx.abort()
		return fmt.Errorf("round %d of job %s was paid for already; refusing to release a newly trained update for it", t.GetRound(), t.GetJobId())
	}
	if !tx.paid && rel.dp.keep != nil {
		if err := a.ledger.keepRelease(t.GetJobId(), *rel.dp.keep); err != nil {
			tx.abort()
			return err
		}
	}
	// The release is kept, not yet charged (chaos/failpoint_test.go).
	// gofail: var siteBeforeCharge struct{}
	return tx.commit()
}
