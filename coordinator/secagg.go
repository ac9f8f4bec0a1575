package coordinator

import (
	"context"
	"crypto/rand"
	"fmt"
	"math"
	"slices"

	"github.com/federa-dev/federa/models"
	"github.com/federa-dev/federa/privacy"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/secagg"
	"github.com/federa-dev/federa/secagg/updates"
	"github.com/federa-dev/federa/spec"
)

// secureTrain runs a round's training through secure aggregation (package
// secagg, docs/privacy.md): the coordinator relays keys, shares and
// signatures between the sites, sums their masked inputs and unmasks the
// sum, and never holds one site's update. Phases, each a fan-out with the
// round's timeout and a quorum of max(threshold, min_sites):
//
//	TRAIN+KEYS  sites train and advertise signed keys          → U1
//	SHARE       sites check every signature, send shares       → U2
//	MASK        sites send masked inputs (ring transfer)       → U3
//	CONFIRM     sites sign U3                                  → U4
//	UNMASK      sites check ≥ t signatures on U3, reveal       → sum
//
// A site that drops at any phase is out of the round; up to n − t may.
func (c *Coordinator) secureTrain(ctx context.Context, job *federav1.Job, st *training, r int, sites []string, agg models.Aggregator) (*trainedRound, error) {
	id, sp := job.GetId(), job.GetSpec()
	if _, ok := agg.(models.MeanBased); !ok {
		return nil, fmt.Errorf("secure aggregation: the %s strategy needs every site's own update; it cannot run on a secure sum", agg.Name())
	}
	sites = slices.Sorted(slices.Values(sites))
	_, threshold, neighbors, clip := spec.SecAggOf(sp, len(sites))
	quorum := max(threshold, int(sp.GetMinSites()))
	maxWeight := c.maxTrainRows(id, sites)
	params := 0
	for _, t := range st.weights {
		params += len(t.Data)
	}
	codec, err := newRoundCodec(sp, len(sites), threshold, maxWeight, params, clip)
	if err != nil {
		return nil, err
	}
	session := make([]byte, 16)
	_, _ = rand.Read(session)
	session = append([]byte(fmt.Sprintf("federa/secagg/v1\x00%s\x00%d\x00", id, r)), session...)
	p := secagg.Params{Session: session, Sites: sites, Threshold: threshold, Neighbors: neighbors, Bits: updates.Bits, Length: codec.length}
	srv, err := secagg.NewServer(p)
	if err != nil {
		return nil, fmt.Errorf("secure aggregation over %d sites: %w", len(sites), err)
	}
	rec := &federav1.SecAggRound{Threshold: int32(threshold), Neighbors: int32(neighbors), Clip: clip, Scale: codec.scale}
	if codec.dp != nil {
		rec.DpNoiseMultiplier, rec.DpSamplingRate = codec.dp.Sigma, codec.dp.Q
	}
	base := func(phase federav1.SecAggTask_Phase) *federav1.SecAggTask {
		return &federav1.SecAggTask{Phase: phase, Session: session, Sites: sites, Threshold: int32(threshold),
			Neighbors: int32(neighbors), Clip: clip, Scale: codec.scale, MaxWeight: maxWeight}
	}
	tr := &trainedRound{secagg: rec}
	phase := func(name string, f fan) (*collected, error) {
		f.job, f.round, f.st, f.minSites = job, r, st, quorum
		f.quorumName = fmt.Sprintf("the secure round's quorum (threshold %d, min_sites %d)", threshold, sp.GetMinSites())
		if f.kind == federav1.TaskKind_TASK_KIND_UNSPECIFIED {
			f.kind = federav1.TaskKind_TASK_KIND_SECAGG
		}
		col, err := c.fanOut(ctx, f)
		if err != nil {
			return nil, err
		}
		tr.cols = append(tr.cols, col)
		if col.Outcome() != Done {
			return nil, fmt.Errorf("secure aggregation, %s: %s", name, col.Reason())
		}
		return col, nil
	}

	// TRAIN+KEYS.
	trainStart := c.cfg.Now()
	col, err := phase("training", fan{kind: federav1.TaskKind_TASK_KIND_TRAIN, sites: sites, w: st.weights,
		secagg: func(string) *federav1.SecAggTask { return base(federav1.SecAggTask_PHASE_KEYS) }})
	if err != nil {
		return nil, err
	}
	tr.trainPhase = c.cfg.Now().Sub(trainStart)
	var keys []*federav1.SecAggKeys
	for _, s := range col.Answered() {
		a := col.Answers()[s]
		tr.maxCompute = max(tr.maxCompute, a.result.GetComputeMs())
		k := a.result.GetSecagg().GetKeys()
		if k.GetSite() != s {
			return nil, fmt.Errorf("secure aggregation: %s answered with keys for %q", s, k.GetSite())
		}
		if err := srv.AddKeys(secagg.Keys{Site: s, CPK: k.GetCPublic(), SPK: k.GetSPublic()}); err != nil {
			return nil, fmt.Errorf("secure aggregation: keys of %s: %w", s, err)
		}
		keys = append(keys, k)
	}
	rec.Advertised = col.Answered()
	srv.Keys() // closes U1
	protoStart := c.cfg.Now()

	// SHARE.
	col, err = phase("sharing keys", fan{sites: rec.Advertised, secagg: func(string) *federav1.SecAggTask {
		t := base(federav1.SecAggTask_PHASE_SHARE)
		t.Keys = keys
		return t
	}})
	if err != nil {
		return nil, err
	}
	for _, s := range col.Answered() {
		var sh []secagg.Share
		for _, x := range col.Answers()[s].result.GetSecagg().GetShares() {
			sh = append(sh, secagg.Share{From: x.GetFrom(), To: x.GetTo(), Ciphertext: x.GetCiphertext()})
		}
		if err := srv.AddShares(s, sh); err != nil {
			return nil, fmt.Errorf("secure aggregation: shares of %s: %w", s, err)
		}
	}
	rec.Shared = col.Answered()

	// MASK. SharesFor closes U2; every site's shares are routed before any
	// is sent.
	routed := map[string][]*federav1.SecAggShare{}
	for _, s := range rec.Shared {
		for _, x := range srv.SharesFor(s) {
			routed[s] = append(routed[s], &federav1.SecAggShare{From: x.From, To: x.To, Ciphertext: x.Ciphertext})
		}
	}
	col, err = phase("masked inputs", fan{sites: rec.Shared, ringLen: int64(p.Length), secagg: func(s string) *federav1.SecAggTask {
		t := base(federav1.SecAggTask_PHASE_MASK)
		t.Shares = routed[s]
		return t
	}})
	if err != nil {
		return nil, err
	}
	tr.results = map[string]reply{}
	for _, s := range col.Answered() {
		a := col.Answers()[s]
		// Added to the sum straight from the wire bytes.
		if err := srv.AddMaskedPacked(s, a.ring); err != nil {
			return nil, fmt.Errorf("secure aggregation: masked input of %s: %w", s, err)
		}
		tr.results[s] = a
	}
	u3 := srv.Survivors()
	rec.Masked = u3

	// CONFIRM.
	col, err = phase("confirming survivors", fan{sites: u3, secagg: func(string) *federav1.SecAggTask {
		t := base(federav1.SecAggTask_PHASE_CONFIRM)
		t.Survivors = u3
		return t
	}})
	if err != nil {
		return nil, err
	}
	var sigs []*federav1.SecAggSignature
	for _, s := range col.Answered() {
		sig := col.Answers()[s].result.GetSecagg().GetConfirmation()
		if sig.GetSite() != s {
			return nil, fmt.Errorf("secure aggregation: %s answered with a confirmation for %q", s, sig.GetSite())
		}
		sigs = append(sigs, sig)
	}

	// UNMASK.
	col, err = phase("unmasking", fan{sites: col.Answered(), secagg: func(string) *federav1.SecAggTask {
		t := base(federav1.SecAggTask_PHASE_UNMASK)
		t.Survivors, t.Confirmations = u3, sigs
		return t
	}})
	if err != nil {
		return nil, err
	}
	for _, s := range col.Answered() {
		var rv []secagg.Reveal
		for _, x := range col.Answers()[s].result.GetSecagg().GetReveals() {
			rv = append(rv, secagg.Reveal{From: s, Of: x.GetOf(), Kind: secagg.RevealKind(x.GetKind()), Share: x.GetShare()})
		}
		if err := srv.AddReveals(s, rv); err != nil {
			return nil, fmt.Errorf("secure aggregation: reveals of %s: %w", s, err)
		}
	}
	rec.Revealed = col.Answered()
	for _, s := range rec.Shared {
		if !slices.Contains(u3, s) {
			rec.Reconstructed = append(rec.Reconstructed, s)
		}
	}
	if len(rec.Reconstructed) > 0 {
		rec.ReconstructedReason = "shared keys but sent no masked input: their pairwise masks were removed from the sum with their reconstructed mask keys"
	}
	aggStart := c.cfg.Now()
	sum, err := srv.Finish()
	if err != nil {
		return nil, fmt.Errorf("secure aggregation: the sum cannot be unmasked: %w", err)
	}
	var mean models.Weights
	var total int64
	loss := math.NaN() // a distributed-DP round reports none
	if codec.dp != nil {
		mean, total, err = codec.dp.Decode(st.weights, sum, sp.GetLearningRate())
	} else {
		mean, total, loss, err = codec.plain.Decode(st.weights, sum)
	}
	if err != nil {
		return nil, err
	}
	if tr.next, err = agg.Aggregate(st.weights, []models.Update{{Weights: mean, Examples: int(total)}}); err != nil {
		return nil, fmt.Errorf("aggregate: %w", err)
	}
	tr.aggTime = c.cfg.Now().Sub(aggStart)
	rec.ProtocolMs = ms(c.cfg.Now().Sub(protoStart))
	tr.participants, tr.examples, tr.loss = u3, total, loss
	for _, s := range sites {
		if !slices.Contains(u3, s) {
			tr.missing = append(tr.missing, s)
		}
	}
	return tr, nil
}

// roundCodec is a secure round's encoding, which every site derives too
// (site/secagg.go): the plain update codec, or under distributed DP noise
// the DP-SGD share codec, its σ calibrated by the accountant as each site's
// ledger calibrates it (same orders, same figures).
type roundCodec struct {
	plain  updates.Codec
	dp     *updates.DPCodec
	length int
	scale  float64
}

// σ costs about a second of accounting the first time; privacy remembers
// it, so later rounds (and the sites in one process) do not pay again.
func newRoundCodec(sp *federav1.JobSpec, sites, threshold int, maxWeight int64, params int, clip float64) (roundCodec, error) {
	if !spec.DistributedDP(sp) {
		c, err := updates.New(sites, maxWeight, clip)
		return roundCodec{plain: c, length: c.Length(params), scale: c.DeltaScale}, err
	}
	dp := sp.GetPrivacy().GetDp()
	sigma, err := privacy.CalibrateNoise(dp.GetEpsilon(), dp.GetDelta(), dp.GetSamplingRate(), int(sp.GetRounds()), privacy.WideOrders)
	if err != nil {
		return roundCodec{}, fmt.Errorf("distributed DP: %w", err)
	}
	c, err := updates.NewDP(sites, threshold, maxWeight, params, dp.GetSamplingRate(), sigma, dp.GetClipNorm())
	if err != nil {
		return roundCodec{}, err
	}
	return roundCodec{dp: &c, length: c.Length(), scale: c.Scale}, nil
}

// maxTrainRows is the most training rows any of sites reported in the
// job's stats phase: the largest weight a site's update may carry, which
// the secure sum's fixed-point scales are chosen for.
func (c *Coordinator) maxTrainRows(id string, sites []string) int64 {
	j, _, _, _ := c.snapshot(id)
	var m int64 = 1
	for _, s := range j.GetSites() {
		if slices.Contains(sites, s.GetSite()) {
			m = max(m, s.GetTrainRows())
		}
	}
	return m
}
