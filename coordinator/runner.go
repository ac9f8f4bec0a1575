package coordinator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/federa-dev/federa/attest/auditlog"
	"github.com/federa-dev/federa/internal/logkeys"
	"github.com/federa-dev/federa/models"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/spec"
	"github.com/federa-dev/federa/store"
	"github.com/federa-dev/federa/transfer"
)

// training is a running job's state between rounds: what a checkpoint
// holds.
type training struct {
	round    int
	features []string
	classes  []string
	scaler   models.Scaler
	weights  models.Weights
	sites    []string // sites that passed the stats phase
	aggState []byte   // a stateful aggregator's state after round, encoded; nil if none
	// spare is the previous round's model, which nothing refers to any
	// more once its sends are done (Coordinator.sending): the streaming
	// sum, or an IntoAggregator, writes the next one into it.
	spare models.Weights
	// redoOf is the audit index of the next round's first attempt, logged
	// before a stop that lost its checkpoint; nil if none.
	redoOf *int64
}

// runJob drives one job to a final state. If the coordinator is shutting
// down it leaves the job as it is, to be resumed at the next start.
func (c *Coordinator) runJob(ctx context.Context, id string) {
	log := c.log.With(logkeys.Job, id)
	run := func() error { return c.execute(ctx, id, log) }
	// A write the job's steps do not wait for themselves (a progress
	// update) that found the disk full: the job starts again from its last
	// checkpoint, as after a restart, once there is space.
	err := c.retryStorage(ctx, id, "the job's progress", run(), run)
	switch {
	case err == nil, errors.Is(err, errJobEnded):
	case c.runCtx.Err() != nil:
		log.Info("job paused by shutdown; it resumes at the next start")
	default:
		log.Warn("job failed", logkeys.Err, err)
		if _, uerr := c.updateWith(id, "failed: "+err.Error(), func(j *federav1.Job) {
			j.Status = federav1.JobStatus_JOB_STATUS_FAILED
			j.Message = err.Error()
		}, c.auditThenPut); uerr != nil && !errors.Is(uerr, errJobEnded) {
			// Not logged, so not stored: the job resumes at the next start.
			log.Error("record the job's failure", logkeys.Err, uerr)
		}
	}
}

func (c *Coordinator) execute(ctx context.Context, id string, log *slog.Logger) error {
	j, _, _, _ := c.snapshot(id)
	sp := j.GetSpec()
	var st *training
	cp, err := c.store.LoadCheckpoint(id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if _, err := c.update(id, "standardizing", func(j *federav1.Job) {
			j.Status = federav1.JobStatus_JOB_STATUS_RUNNING
			j.Message = "collecting column statistics from sites"
		}); err != nil {
			return err
		}
		sites, err := c.waitForSites(ctx, id, sp, nil)
		if err != nil {
			return err
		}
		if sites, err = c.admission(ctx, j, sites); err != nil {
			return err
		}
		if st, err = c.standardize(ctx, j, sites); err != nil {
			return err
		}
		log.Info("standardization done", "sites", st.sites, "features", len(st.features), "classes", st.classes)
	case err != nil:
		return fmt.Errorf("load checkpoint: %w", err)
	default:
		if st, err = fromCheckpoint(cp, j); err != nil {
			return err
		}
		st.redoOf = c.priorAttempt(id, st.round+1)
		log.Info("resuming from checkpoint", logkeys.Round, st.round)
		if j.GetStatus() == federav1.JobStatus_JOB_STATUS_WAITING {
			// Its quorum is checked again by the next round's site wait.
			if _, err := c.update(id, "resuming after a restart", func(j *federav1.Job) {
				j.Status = federav1.JobStatus_JOB_STATUS_RUNNING
				j.Message = fmt.Sprintf("resuming after round %d", st.round)
			}); err != nil {
				return err
			}
		}
	}
	agg, err := models.NewAggregator(sp.GetAggregator(), spec.FromProto(sp).Aggregator.Params())
	if err != nil {
		return err
	}
	if err := restoreAggregator(agg, st); err != nil {
		return err
	}
	for r := st.round + 1; r <= int(sp.GetRounds()); {
		err := c.round(ctx, j, st, r, agg)
		var lost *quorumLost
		switch {
		case err == nil:
			c.roundDone(log.With(logkeys.Round, r), id, r)
			r++
		case errors.As(err, &lost):
			// Too few of the job's sites came back within the site wait:
			// the job waits, resumable, rather than failing and losing
			// the rounds it completed.
			if err := c.awaitQuorum(ctx, id, sp, st, r, lost); err != nil {
				return err
			}
		case ctx.Err() == nil && c.quorumGone(sp, st):
			// Sites left during the round, and too few remain: redo it;
			// its site wait waits for them.
			log.Info("round lost its quorum as sites left; redoing it", logkeys.Round, r, logkeys.Reason, err.Error())
		default:
			return fmt.Errorf("round %d: %w", r, err)
		}
	}
	return c.finish(ctx, id, sp, st)
}

// quorumLost is waitForSites' error for a job past its first round: fewer
// than min_sites of its sites connected by the end of the site wait.
type quorumLost struct{ msg string }

func (e *quorumLost) Error() string { return e.msg }

// quorumGone reports whether fewer than min_sites of the job's sites are
// connected and serve its dataset.
func (c *Coordinator) quorumGone(sp *federav1.JobSpec, st *training) bool {
	connected, _ := c.connectedSites(sp.GetDataset())
	return len(intersect(st.sites, connected)) < int(sp.GetMinSites())
}

// awaitQuorum holds a job that lost its quorum before round r: its status
// is WAITING, saying how many of its sites are connected and that it goes
// on by itself, until min_sites of them are back (then RUNNING, and the
// round is tried again) or the job is cancelled or the coordinator stops
// (then it resumes, waiting again if need be, at the next start). Its last
// completed round's model stays readable (GetModel, artifact checkpoint).
func (c *Coordinator) awaitQuorum(ctx context.Context, id string, sp *federav1.JobSpec, st *training, r int, lost *quorumLost) error {
	need := int(sp.GetMinSites())
	announced := -1
	for {
		connected, changed := c.connectedSites(sp.GetDataset())
		have := intersect(st.sites, connected)
		if len(have) >= need {
			_, err := c.update(id, fmt.Sprintf("quorum back: %d of %d sites; round %d starts again", len(have), len(st.sites), r), func(j *federav1.Job) {
				j.Status = federav1.JobStatus_JOB_STATUS_RUNNING
				j.Message = fmt.Sprintf("quorum back (%s); running round %d of %d", strings.Join(have, ", "), r, sp.GetRounds())
			})
			c.log.Info("job has its quorum back", logkeys.Job, id, logkeys.Round, r, "sites", have)
			return err
		}
		if len(have) != announced {
			msg := fmt.Sprintf("waiting for quorum: %d of %d sites connected, min_sites is %d (connected: %s; job sites: %s). "+
				"Resumable: round %d starts when enough of them reconnect; `federa job cancel %s` ends the job",
				len(have), len(st.sites), need, listOrNone(have), strings.Join(st.sites, ", "), r, id)
			if st.round > 0 {
				msg += fmt.Sprintf("; round %d's model: `federa model get %s --checkpoint -o FILE`", st.round, id)
			}
			if announced < 0 {
				c.log.Warn("job waiting for quorum", logkeys.Job, id, logkeys.Round, r, "connected", len(have), "min_sites", need, logkeys.Reason, lost.Error())
			}
			announced = len(have)
			if _, err := c.update(id, msg, func(j *federav1.Job) {
				j.Status = federav1.JobStatus_JOB_STATUS_WAITING
				j.Message = msg
			}); err != nil {
				return err
			}
		}
		waitChanged(ctx, changed, time.Second)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// standardize runs the stats fan-out: every site reports its columns,
// classes and per-column moments (never a row); the coordinator checks they
// agree and merges the moments into one scaler.
func (c *Coordinator) standardize(ctx context.Context, job *federav1.Job, sites []string) (*training, error) {
	id, sp := job.GetId(), job.GetSpec()
	col, err := c.fanOut(ctx, fan{job: job, kind: federav1.TaskKind_TASK_KIND_STATS, sites: sites, minSites: int(sp.GetMinSites())})
	if err != nil {
		return nil, err
	}
	if col.Outcome() != Done {
		return nil, fmt.Errorf("column statistics: %s", col.Reason())
	}
	answers := col.Answers()
	names := col.Answered()
	var (
		features []string
		first    string
		moments  models.Moments
		classSet = map[string]bool{}
	)
	for i, s := range names {
		r := answers[s].result
		if i == 0 {
			features, first = r.GetFeatures(), s
			moments = models.Moments{Count: r.GetCount(), Sum: r.GetSum(), SumSq: r.GetSumSq()}
		} else {
			if !slices.Equal(features, r.GetFeatures()) {
				return nil, fmt.Errorf("feature columns differ between sites: %s; list `features` in the job spec or align the files",
					describeDiff(first, features, s, r.GetFeatures()))
			}
			if err := moments.Merge(models.Moments{Count: r.GetCount(), Sum: r.GetSum(), SumSq: r.GetSumSq()}); err != nil {
				return nil, fmt.Errorf("merge statistics of %s: %w", s, err)
			}
		}
		if len(r.GetSum()) != len(r.GetFeatures()) || len(r.GetSumSq()) != len(r.GetFeatures()) {
			return nil, fmt.Errorf("site %s sent %d sums for %d features", s, len(r.GetSum()), len(r.GetFeatures()))
		}
		for _, k := range r.GetClasses() {
			classSet[k] = true
		}
	}
	if len(features) == 0 {
		return nil, errors.New("sites reported no feature columns")
	}
	arch, err := spec.ArchOf(sp)
	if err != nil {
		return nil, err
	}
	classes := slices.Sorted(maps.Keys(classSet))
	switch {
	case arch.Kind() == models.Regressor && len(classes) > 0:
		// A regressor's label never leaves as values; a site that sends
		// them is not following the protocol.
		return nil, fmt.Errorf("sites sent class names for %s, which predicts a number; refusing them", arch.Name())
	case arch.Kind() == models.Classifier && len(classes) < 2:
		return nil, fmt.Errorf("label %q has only the value(s) [%s] across all sites; a classifier needs at least 2", sp.GetLabel(), strings.Join(classes, ", "))
	}
	w0, err := arch.Init(len(features), len(classes))
	if err != nil {
		return nil, fmt.Errorf("initial %s weights: %w", arch.Name(), err)
	}
	st := &training{
		features: features,
		classes:  classes,
		scaler:   moments.Scaler(),
		weights:  w0,
		sites:    names,
	}
	var cp *federav1.Checkpoint
	record := func(j *federav1.Job) {
		j.Status = federav1.JobStatus_JOB_STATUS_RUNNING
		j.Features, j.Classes = features, classes
		j.Message = "training"
		for _, s := range names {
			r := answers[s]
			ss := siteSummary(j, s)
			ss.RawBytes = r.result.GetRawBytes()
			ss.TrainRows = r.result.GetTrainRows()
			ss.EvalRows = r.result.GetEvalRows()
		}
		addBytes(j, col)
	}
	save := func() error {
		if cp == nil {
			cpw, _, err := c.checkpointWeights(id, 0, st.weights)
			if err != nil {
				return err
			}
			cp = st.checkpoint(id, cpw)
		}
		_, err := c.updateWith(id, fmt.Sprintf("standardized: %d sites, %d features, classes %v", len(names), len(features), classes), record, func(j *federav1.Job) error { return c.store.SaveRound(j, cp) })
		return err
	}
	return st, c.retryStorage(ctx, id, "the standardized starting point", save(), save)
}

// checkpointWeights encodes round r's model w once, for its digest
// ("sha256:…" of models.EncodeWeights(w)) and its checkpoint: streamed
// from w's memory to a file the store stages (then the checkpoint's
// weights are nil: SaveRound adopts the file), or, for a store that
// keeps no files, as bytes for the checkpoint record.
func (c *Coordinator) checkpointWeights(id string, r int, w models.Weights) (cpw []byte, digest string, err error) {
	h := sha256.New()
	if stager, ok := c.store.(store.WeightsStager); ok {
		err = stager.StageWeights(id, int32(r), func(out io.Writer) error { return models.WriteWeights(io.MultiWriter(out, h), w) })
	} else if cpw, err = models.EncodeWeights(w); err == nil {
		h.Write(cpw)
	}
	if err != nil {
		return nil, "", fmt.Errorf("checkpoint weights: %w", err)
	}
	return cpw, "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func (st *training) checkpoint(id string, weights []byte) *federav1.Checkpoint {
	return &federav1.Checkpoint{
		JobId: id, Round: int32(st.round), Features: st.features, Classes: st.classes,
		ScalerMean: st.scaler.Mean, ScalerScale: st.scaler.Scale, Weights: weights,
		AggregatorState: st.aggState,
	}
}

// restoreAggregator gives a stateful aggregator the state checkpointed
// with st, so a resumed job steps exactly as an uninterrupted one.
func restoreAggregator(agg models.Aggregator, st *training) error {
	s, ok := agg.(models.Stateful)
	if !ok || len(st.aggState) == 0 {
		return nil
	}
	w, err := models.DecodeWeights(st.aggState)
	if err != nil {
		return fmt.Errorf("decode aggregator state of round %d: %w", st.round, err)
	}
	if err := s.Restore(w); err != nil {
		return fmt.Errorf("restore aggregator state of round %d: %w", st.round, err)
	}
	return nil
}

// saveAggregator records a stateful aggregator's state in st, for the
// round's checkpoint.
func saveAggregator(agg models.Aggregator, st *training) error {
	s, ok := agg.(models.Stateful)
	if !ok {
		return nil
	}
	st.aggState = nil
	if w := s.State(); len(w) > 0 {
		b, err := models.EncodeWeights(w)
		if err != nil {
			return fmt.Errorf("encode aggregator state: %w", err)
		}
		st.aggState = b
	}
	return nil
}

func fromCheckpoint(cp *federav1.Checkpoint, j *federav1.Job) (*training, error) {
	w, err := models.DecodeWeights(cp.GetWeights())
	if err != nil {
		return nil, fmt.Errorf("decode checkpoint of round %d: %w", cp.GetRound(), err)
	}
	st := &training{
		round: int(cp.GetRound()), features: cp.GetFeatures(), classes: cp.GetClasses(),
		scaler:   models.Scaler{Mean: cp.GetScalerMean(), Scale: cp.GetScalerScale()},
		weights:  w,
		aggState: cp.GetAggregatorState(),
	}
	for _, s := range j.GetSites() {
		st.sites = append(st.sites, s.GetSite())
	}
	return st, nil
}

// round runs one training round: train fan-out (in the clear, or through
// secure aggregation), aggregate, eval fan-out, checkpoint.
func (c *Coordinator) round(ctx context.Context, job *federav1.Job, st *training, r int, agg models.Aggregator) error {
	id, sp := job.GetId(), job.GetSpec()
	start := c.cfg.Now()
	sites, err := c.waitForSites(ctx, id, sp, st.sites)
	if err != nil {
		return err
	}
	var tr *trainedRound
	if on, _, _, _ := spec.SecAggOf(sp, len(sites)); on {
		tr, err = c.secureTrain(ctx, job, st, r, sites, agg)
	} else {
		// The round's deadline runs from when the round started, waiting
		// for sites included, not from when the last task went out.
		deadline := start.Add(time.Duration(sp.GetRoundTimeoutMs()) * time.Millisecond)
		tr, err = c.plainTrain(ctx, job, st, r, sites, agg, deadline)
	}
	if err != nil {
		return err
	}
	// Failpoints (chaos/failpoint_test.go; inert outside a gofail build):
	// the round is aggregated, nothing of it is recorded yet.
	// gofail: var coordAfterAggregate struct{}

	// Missing are the job's sites that did not take part: asked and
	// silent, and also not connected when the round began.
	for _, s := range st.sites {
		if !slices.Contains(sites, s) && !slices.Contains(tr.missing, s) {
			tr.missing = append(tr.missing, s)
		}
	}
	sort.Strings(tr.missing)
	redoOf := st.redoOf
	st.redoOf = nil
	next := tr.next
	// The round's entries are known once it is aggregated: while the
	// sites evaluate, encode the aggregate once — its digest for the
	// round's entry, its bytes for the checkpoint, streamed from the
	// model's memory to a staged file where the store keeps one — and
	// append the entries (an fsync); the round waits for both before it
	// is stored or reported.
	logged := make(chan error, 1)
	var cpw []byte
	// logRound stages the checkpoint (once it has been staged, not again) and
	// appends the round's entries; on a full disk it runs again once
	// there is space.
	logRound := func() error {
		if tr.entries == nil {
			var err error
			if cpw, tr.aggDigest, err = c.checkpointWeights(id, r, next); err != nil {
				return err
			}
			tr.entries = roundEntries(id, r, tr)
			if redoOf != nil {
				tr.entries[0].Data["redo_of"], tr.entries[0].Data["redo_reason"] = *redoOf, redoReason
			}
		}
		return c.audit(false, tr.entries...)
	}
	go func() { logged <- logRound() }()
	evalStart := c.cfg.Now()
	// Evaluation is best effort: a site that cannot score this round still
	// trained in it, so one answer is enough to report a figure.
	ecol, err := c.fanOut(ctx, fan{job: job, round: r, kind: federav1.TaskKind_TASK_KIND_EVAL, sites: tr.participants, minSites: 1, st: st, w: next})
	if err != nil {
		<-logged
		return err
	}
	sum := &federav1.RoundSummary{
		Round: int32(r), Participants: tr.participants, Missing: tr.missing,
		TrainExamples: tr.examples, TrainLoss: tr.loss, EvalAccuracy: math.NaN(), EvalLoss: math.NaN(), EvalRmse: math.NaN(), EvalR2: math.NaN(),
		TrainPhaseMs: ms(tr.trainPhase), MaxLocalTrainMs: tr.maxCompute, AggregateMs: ms(tr.aggTime),
		EvalPhaseMs: ms(c.cfg.Now().Sub(evalStart)), Secagg: tr.secagg,
	}
	arch, err := spec.ArchOf(sp)
	if err != nil {
		<-logged
		return err
	}
	scoreRound(sum, ecol.Answers(), arch.Kind())
	sum.SiteRounds = siteRounds(tr.results, ecol.Answers(), arch.Kind())
	if tr.secagg != nil {
		// No site's own training figures reach the coordinator.
		for _, sr := range sum.SiteRounds {
			sr.TrainLoss, sr.TrainExamples = math.NaN(), 0
		}
	}
	sum.DurationMs = c.cfg.Now().Sub(start).Milliseconds()
	if _, ok := agg.(models.IntoAggregator); ok || tr.streamed {
		st.spare = st.weights
	}
	st.weights = next
	st.round = r
	if err := saveAggregator(agg, st); err != nil {
		<-logged
		return err
	}
	// The round is in the log before it is stored or reported; its
	// checkpoint is signed in the background.
	// The time the round waits for its entries to be durable.
	auditStart := c.cfg.Now()
	if err := c.retryStorage(ctx, id, fmt.Sprintf("round %d's checkpoint weights and audit entries", r), <-logged, logRound); err != nil {
		return err
	}
	sum.AuditMs = ms(c.cfg.Now().Sub(auditStart))
	// The round's entries are in the audit log (unsigned), its checkpoint
	// is not stored.
	// gofail: var coordBeforeRoundSave struct{}
	cp := st.checkpoint(id, cpw)
	c.requestCheckpoint()
	event := fmt.Sprintf("round %d/%d: %d sites, train loss %.4f, %s", r, sp.GetRounds(), len(sum.Participants), sum.TrainLoss, federav1.FormatEval(sum))
	if tr.secagg != nil {
		event += fmt.Sprintf(" (secure aggregation, threshold %d)", tr.secagg.GetThreshold())
	}
	record := func(j *federav1.Job) {
		// RUNNING too: a wait for disk space only showed WAITING.
		j.Status = federav1.JobStatus_JOB_STATUS_RUNNING
		j.RoundsCompleted = int32(r)
		j.Rounds = appendRound(j.Rounds, sum)
		j.Message = fmt.Sprintf("round %d of %d done", r, sp.GetRounds())
		for _, s := range sum.Participants {
			ss := siteSummary(j, s)
			ss.RoundsParticipated++
			if res := tr.results[s].result; res.GetEpsilonSpent() > 0 {
				ss.EpsilonSpent, ss.DatasetEpsilonSpent = res.GetEpsilonSpent(), res.GetDatasetEpsilonSpent()
			}
		}
		for _, col := range tr.cols {
			addBytes(j, col)
		}
		addBytes(j, ecol)
	}
	// The round is in the audit log: on a full disk its checkpoint waits
	// for space rather than the round being trained again.
	save := func() error {
		_, err := c.updateWith(id, event, record, func(j *federav1.Job) error { return c.store.SaveRound(j, cp) })
		return err
	}
	return c.retryStorage(ctx, id, fmt.Sprintf("round %d's checkpoint", r), save(), save)
}

// trainedRound is a round's training half: who took part, the aggregate,
// and what the round's record and audit entries need.
type trainedRound struct {
	participants, missing []string
	next                  models.Weights
	examples              int64
	loss                  float64 // example-weighted mean training loss
	maxCompute            float64
	trainPhase, aggTime   time.Duration
	// The reply that carries each participant's release: its update in
	// the clear, or its masked input.
	results map[string]reply
	cols    []*collected // every fan-out of the half, for byte counts
	entries []auditlog.Entry
	secagg  *federav1.SecAggRound
	// streamed: the updates were summed as they arrived (next is the
	// sum's buffer, or the strategy's step from it).
	streamed  bool
	aggDigest string // "sha256:…" of models.EncodeWeights(next)
}

// plainTrain sends the weights, receives every site's update by
// deadline and aggregates them.
//
// A MeanBased strategy aggregates as the updates stream in: each chunk
// of each site is checked and added to one example-weighted sum (in the
// previous round's model buffer) as it arrives, and hashed on the way,
// so no update is held whole. Values are added in site-name order, so
// the model does not depend on which site's chunks came first; a site
// waits, holding one chunk, for those before it. What was added cannot
// be taken out: if a site that started sending its update does not
// count (it was lost or refused midway, or the round closed while it was
// sending or waiting its turn), the round's training runs again at once,
// holding whole updates, with a fresh deadline. Other strategies
// (median, trimmed-mean, krum) hold every update until the last arrives.
func (c *Coordinator) plainTrain(ctx context.Context, job *federav1.Job, st *training, r int, sites []string, agg models.Aggregator, deadline time.Time) (*trainedRound, error) {
	sp := job.GetSpec()
	trainStart := c.cfg.Now()
	f := fan{job: job, round: r, kind: federav1.TaskKind_TASK_KIND_TRAIN, sites: sites, minSites: int(sp.GetMinSites()), st: st, w: st.weights, deadline: deadline}
	prefix, err := models.SafetensorsPrefix(st.weights)
	if err != nil {
		return nil, fmt.Errorf("the global model: %w", err)
	}
	var sum *transfer.Sum
	if _, ok := agg.(models.MeanBased); ok {
		if sum, err = transfer.NewSum(st.weights, c.reusable(st.spare), sites); err != nil {
			return nil, err
		}
		f.in.sum = sum
	} else {
		f.in.prefix = prefix
	}
	col, err := c.fanOut(ctx, f)
	if err != nil {
		if sum != nil {
			_, _, _ = sum.Close(nil)
		}
		return nil, err
	}
	cols := []*collected{col}
	var mean models.Weights
	var total int64
	if sum != nil {
		answered := col.Answered()
		if col.Outcome() != Done {
			answered = nil
		}
		mean, total, err = sum.Close(answered)
		var spoiled *transfer.SpoiledError
		switch {
		case errors.As(err, &spoiled):
			c.log.Warn("the round's streaming sum holds part of an update that does not count; its training runs again, holding whole updates",
				logkeys.Job, job.GetId(), logkeys.Round, r, "sites", spoiled.Keys)
			f.in = inbound{prefix: prefix}
			f.deadline = c.cfg.Now().Add(time.Duration(sp.GetRoundTimeoutMs()) * time.Millisecond)
			if col, err = c.fanOut(ctx, f); err != nil {
				return nil, err
			}
			cols = append(cols, col)
			sum = nil
		case err != nil && col.Outcome() == Done:
			return nil, fmt.Errorf("aggregate: %w", err)
		case err != nil:
			sum = nil // the round failed: reported below
		}
	}
	tr := &trainedRound{trainPhase: c.cfg.Now().Sub(trainStart), results: col.Answers(), cols: cols,
		participants: col.Answered(), missing: col.Missing()}
	if col.Outcome() != Done {
		return nil, fmt.Errorf("training: %s", col.Reason())
	}
	var updates []models.Update
	var lossSum float64
	for _, s := range col.Answered() {
		a := col.Answers()[s]
		tr.maxCompute = max(tr.maxCompute, a.result.GetComputeMs())
		n := a.result.GetExamples()
		if sum == nil {
			if err := a.weights.Validate(st.weights); err != nil {
				return nil, fmt.Errorf("update from %s: %w", s, err)
			}
			updates = append(updates, models.Update{Weights: a.weights, Examples: int(n)})
		}
		lossSum += a.result.GetTrainLoss() * float64(n)
		tr.examples += n
	}
	if tr.examples > 0 {
		tr.loss = lossSum / float64(tr.examples)
	}
	aggStart := c.cfg.Now()
	if sum != nil {
		tr.streamed = true
		if fm, ok := agg.(models.FromMean); ok {
			tr.next, err = fm.NextFromMean(st.weights, mean, total)
		} else {
			// MeanBased: the mean, weighted by the round's examples, is
			// all the strategy needs.
			tr.next, err = agg.Aggregate(st.weights, []models.Update{{Weights: mean, Examples: int(total)}})
		}
	} else if into, ok := agg.(models.IntoAggregator); ok {
		tr.next, err = into.AggregateInto(c.reusable(st.spare), st.weights, updates)
	} else {
		tr.next, err = agg.Aggregate(st.weights, updates)
	}
	if err != nil {
		return nil, fmt.Errorf("aggregate: %w", err)
	}
	tr.aggTime = c.cfg.Now().Sub(aggStart)
	return tr, nil
}

// maxRoundSummaries bounds the per-round figures a job record keeps (the
// newest): the record is rewritten at every round and sent whole by
// GetJob, so a 10000-round job must not grow it without end. The audit log
// keeps a round entry for every round.
const maxRoundSummaries = 1000

// appendRound adds a round's figures, keeping the newest maxRoundSummaries.
func appendRound(rounds []*federav1.RoundSummary, sum *federav1.RoundSummary) []*federav1.RoundSummary {
	rounds = append(rounds, sum)
	if n := len(rounds); n > maxRoundSummaries {
		rounds = slices.Clone(rounds[n-maxRoundSummaries:])
	}
	return rounds
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// finish exports the model and marks the job succeeded, in one write.
func (c *Coordinator) finish(ctx context.Context, id string, sp *federav1.JobSpec, st *training) error {
	arch, err := spec.ArchOf(sp)
	if err != nil {
		return err
	}
	m := &models.Model{
		Architecture: arch.Name(),
		Params:       arch.Params(),
		Features:     st.features,
		Classes:      st.classes,
		Label:        sp.GetLabel(),
		Scaler:       st.scaler,
		Weights:      st.weights,
		Metadata:     map[string]string{"federa.job_id": id, "federa.rounds": fmt.Sprint(st.round)},
	}
	var buf bytes.Buffer
	if err := models.WriteSafetensors(&buf, m); err != nil {
		return fmt.Errorf("export model: %w", err)
	}
	sum := sha256.Sum256(buf.Bytes())
	release := auditlog.Entry{Type: auditlog.TypeModelRelease, Job: id, Actor: "coordinator", Data: map[string]any{
		"artifact_sha256": hex.EncodeToString(sum[:]), "bytes": buf.Len(), "rounds": st.round,
	}}
	end := auditlog.Entry{Type: auditlog.TypeJobEnd, Job: id, Actor: "coordinator", Data: map[string]any{
		"status": "succeeded", "rounds_completed": st.round,
	}}
	// Each step waits for disk space on its own, so a full disk repeats
	// none that succeeded (the release is logged once).
	logRelease := func() error { return c.audit(false, release, end) }
	if err := c.retryStorage(ctx, id, "the model release's audit entries", logRelease(), logRelease); err != nil {
		return err
	}
	if err := c.retryStorage(ctx, id, "the audit checkpoint over the release", c.signIfBehind(), c.signIfBehind); err != nil {
		return err
	}
	signRelease := func() error { return c.signRelease(id, sp, st, buf.Bytes(), hex.EncodeToString(sum[:])) }
	if err := c.retryStorage(ctx, id, "the model's signature and provenance", signRelease(), signRelease); err != nil {
		return err
	}
	store := func() error {
		_, err := c.updateWith(id, "succeeded", func(j *federav1.Job) {
			j.Status = federav1.JobStatus_JOB_STATUS_SUCCEEDED
			j.Message = fmt.Sprintf("trained for %d rounds", st.round)
			j.ModelSha256 = hex.EncodeToString(sum[:])
			j.ModelBytes = int64(buf.Len())
		}, func(j *federav1.Job) error { return c.store.FinishJob(j, buf.Bytes()) })
		return err
	}
	err = c.retryStorage(ctx, id, "the model", store(), store)
	if err == nil {
		c.log.Info("job succeeded; model released", logkeys.Job, id, "rounds", st.round,
			"model_sha256", hex.EncodeToString(sum[:]), logkeys.Bytes, buf.Len())
	}
	return err
}

// collected is a finished fan-out plus its byte counts per site.
type collected struct {
	*Collect[reply]
	bytesIn, bytesOut map[string]int64
}

// fan is one fan-out's parameters.
type fan struct {
	job      *federav1.Job // id, spec, requester
	round    int
	kind     federav1.TaskKind
	sites    []string
	minSites int
	st       *training      // features, classes, scaler (nil before standardization)
	w        models.Weights // weights to send, or nil
	timeout  time.Duration  // 0: the job's round_timeout
	deadline time.Time      // if set, when the fan-out closes (timeout is then unused)
	dryRun   bool
	decision *federav1.ApprovalDecision // DECIDE only
	// A query's ADMIT and QUERY tasks: the stage's analytics.Request, JSON.
	queryRequest []byte
	// A secure-aggregation phase: the phase's task for each site, and the
	// length of the ring vector each site sends back (MASK), or 0.
	secagg  func(site string) *federav1.SecAggTask
	ringLen int64
	// What the quorum is called in a failure's reason; "" is min_sites.
	quorumName string
	// Where the sites' updates go as they arrive (a training fan-out in
	// the clear): a streaming sum, or whole weights hashed on the way.
	in inbound
}

// fanOut sends one task kind to sites and collects the answers until the
// quorum and deadline rule of Collect says stop.
//
// The tasks go out side by side, one goroutine per site, so a site whose
// stream is stalled delays only its own task; the weights are chunked once
// for the whole fan-out and the chunks' payloads shared by every site's
// copy. The deadline, the wait for it and the tick that closes the
// fan-out all read the coordinator's one Clock.
func (c *Coordinator) fanOut(ctx context.Context, f fan) (*collected, error) {
	id, sp, round, kind, sites, minSites, st, w := f.job.GetId(), f.job.GetSpec(), f.round, f.kind, f.sites, f.minSites, f.st, f.w
	deadline := f.deadline
	if deadline.IsZero() {
		timeout := f.timeout
		if timeout == 0 {
			timeout = time.Duration(sp.GetRoundTimeoutMs()) * time.Millisecond
		}
		deadline = c.cfg.Now().Add(timeout)
	}
	col := &collected{
		Collect:  NewCollect[reply](sites, minSites, deadline),
		bytesIn:  map[string]int64{},
		bytesOut: map[string]int64{},
	}
	if f.quorumName != "" {
		col.NameQuorum(f.quorumName)
	}
	ch := make(chan reply, len(sites))
	sent := make(chan sentTask, len(sites))
	tasks := map[string]string{}
	kindName := strings.ToLower(strings.TrimPrefix(kind.String(), "TASK_KIND_"))
	var chunks []*federav1.TensorChunk
	if w != nil {
		// Views of w's memory, not a copy: w is not written while any
		// send of it is under way (reusable).
		chunks = transfer.ShareWeights("", w, 0)
	}
	for _, s := range sites {
		t := &federav1.Task{
			TaskId: c.newTaskID(id, round, kindName, s),
			JobId:  id, Round: int32(round), Kind: kind, Spec: sp,
			Requester: f.job.GetRequester(), RequesterRole: f.job.GetRequesterRole(), DryRun: f.dryRun,
			Decision: f.decision, QueryRequest: f.queryRequest,
		}
		if f.secagg != nil {
			t.Secagg = f.secagg(s)
		}
		if st != nil {
			t.Features, t.Classes = st.features, st.classes
			t.ScalerMean, t.ScalerScale = st.scaler.Mean, st.scaler.Scale
		}
		sess, err := c.expect(s, t.GetTaskId(), w, f.ringLen, f.in, ch)
		if err != nil {
			if f.in.sum != nil {
				f.in.sum.Drop(s)
			}
			col.Lose(s, err.Error())
			continue
		}
		tasks[t.GetTaskId()] = s
		// w is not reused while any of its memory may still be read
		// for this send.
		done := c.sendingOf(w)
		go func() {
			sent <- sentTask{site: s, bytes: c.dispatch(sess, t, chunks, done)}
		}()
	}
	defer c.forget(tasks, "the fan-out closed")
	countSent := func(t sentTask) { col.bytesOut[t.site] += t.bytes }
	defer func() {
		// Sends that finished while the fan-out closed still count.
		for {
			select {
			case t := <-sent:
				countSent(t)
			default:
				return
			}
		}
	}()
	take := func(r reply) error {
		col.bytesIn[r.site] += r.bytesIn
		switch {
		case r.lost != "":
			c.log.Warn("a site will not answer its task", logkeys.Job, id, logkeys.Round, round, logkeys.Site, r.site, logkeys.Reason, r.lost)
			col.Lose(r.site, r.lost)
		case r.result.GetError() != "":
			if kind == federav1.TaskKind_TASK_KIND_STATS {
				// A data problem at a site is the user's to fix; hiding it
				// behind a quorum would train on less data silently.
				return fmt.Errorf("site %s: %s", r.site, r.result.GetError())
			}
			col.Lose(r.site, r.result.GetError())
		default:
			if err := checkReply(f, r); err != nil {
				// A site that answers with what no honest site sends is
				// refused and counted against itself (it is among the
				// round's missing sites); the others go on.
				c.log.Warn("refused a site's answer", logkeys.Job, id, logkeys.Round, round, logkeys.Site, r.site, logkeys.Reason, err.Error())
				col.Lose(r.site, "refused its answer: "+err.Error())
				return nil
			}
			col.Answer(r.site, r)
		}
		return nil
	}
	tick := c.cfg.Clock.After(col.Deadline().Sub(c.cfg.Now()))
	for col.Outcome() == Waiting {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick:
			// Answers that arrived by the deadline count, even if the
			// tick is read first.
			for drained := false; !drained; {
				select {
				case r := <-ch:
					if err := take(r); err != nil {
						return nil, err
					}
				default:
					drained = true
				}
			}
			col.Tick(c.cfg.Now())
			if col.Outcome() == Waiting {
				tick = c.cfg.Clock.After(max(col.Deadline().Sub(c.cfg.Now()), 100*time.Millisecond))
			}
		case t := <-sent:
			countSent(t)
		case r := <-ch:
			if err := take(r); err != nil {
				return nil, err
			}
		}
	}
	c.metrics.transfer(kindName, f.dryRun, col)
	return col, nil
}

// sentTask is the bytes a fan-out's task took to reach its site (0 if
// the send failed).
type sentTask struct {
	site  string
	bytes int64
}

// checkReply refuses an answer no honest site sends for f's task: a
// training update in the clear must be the shape of the weights it was
// sent, every value finite. (Ring vectors are sized by RingAssembler;
// what a secure sum holds is the secure aggregation's to check.)
func checkReply(f fan, r reply) error {
	if f.kind == federav1.TaskKind_TASK_KIND_EVAL {
		return checkEval(r.result)
	}
	if f.kind != federav1.TaskKind_TASK_KIND_TRAIN || f.secagg != nil || f.w == nil {
		return nil
	}
	switch {
	case r.streamed:
		// Checked chunk by chunk as it went into the round's sum.
	case r.weights == nil:
		return errors.New("a training answer without an update")
	default:
		if err := r.weights.Validate(f.w); err != nil {
			return fmt.Errorf("an update that does not fit the model: %w", err)
		}
	}
	return checkTrainResult(r.result)
}

// checkTrainResult refuses a training answer's figures no honest site
// sends; a streamed update is checked so before its first chunk counts.
func checkTrainResult(res *federav1.TaskResult) error {
	if n := res.GetExamples(); n < 1 {
		return fmt.Errorf("an update from %d training examples", n)
	}
	if l := res.GetTrainLoss(); math.IsNaN(l) || math.IsInf(l, 0) || l < 0 {
		return fmt.Errorf("a training loss of %v", l)
	}
	return nil
}

// checkEval refuses an evaluation no honest site sends: negative counts,
// more correct than scored, a loss or label spread that is not a finite,
// non-negative number. One such answer would otherwise make the round's
// pooled accuracy exceed 1 or its loss NaN.
func checkEval(res *federav1.TaskResult) error {
	n, correct := res.GetEvalTotal(), res.GetEvalCorrect()
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	switch {
	case n < 0 || correct < 0 || correct > n:
		return fmt.Errorf("an evaluation of %d correct out of %d", correct, n)
	case n > 0 && (!finite(res.GetEvalLoss()) || res.GetEvalLoss() < 0):
		return fmt.Errorf("an evaluation loss of %v", res.GetEvalLoss())
	case !finite(res.GetEvalLabelMean()) || !finite(res.GetEvalLabelM2()) || res.GetEvalLabelM2() < 0:
		return fmt.Errorf("an evaluation label spread of mean %v, M2 %v", res.GetEvalLabelMean(), res.GetEvalLabelM2())
	}
	return nil
}

// waitForSites returns the sites to ask this round: the job's sites that
// are connected and serve its dataset, waiting up to SiteWaitTimeout for at
// least min_sites (all of them, for a job that lists its sites and has not
// started).
func (c *Coordinator) waitForSites(ctx context.Context, id string, sp *federav1.JobSpec, allowed []string) ([]string, error) {
	want := sp.GetSites()
	if allowed != nil {
		want = allowed
	}
	need := int(sp.GetMinSites())
	if allowed == nil && len(want) > 0 {
		need = len(want)
	}
	deadline := c.cfg.Now().Add(c.cfg.SiteWaitTimeout)
	announced := ""
	for {
		connected, changed := c.connectedSites(sp.GetDataset())
		if bad := c.sitesWithoutDataset(want, sp.GetDataset()); len(bad) > 0 && allowed == nil {
			return nil, fmt.Errorf("dataset %q: %s", sp.GetDataset(), strings.Join(bad, "; "))
		}
		have := connected
		if len(want) > 0 {
			have = intersect(want, connected)
		}
		if len(have) >= need {
			if len(have) == 0 {
				return nil, fmt.Errorf("no connected site serves dataset %q", sp.GetDataset())
			}
			return have, nil
		}
		view := c.siteView()
		if !c.cfg.Now().Before(deadline) {
			wanted := "any site"
			if len(want) > 0 {
				wanted = strings.Join(want, ", ")
			}
			msg := fmt.Sprintf("waited %s for sites serving dataset %q: %d connected, %d needed (serving it: %s; wanted: %s; %s)",
				c.cfg.SiteWaitTimeout, sp.GetDataset(), len(have), need, listOrNone(have), wanted, view.connectedSummary())
			if allowed != nil {
				return nil, &quorumLost{msg: msg}
			}
			return nil, errors.New(msg)
		}
		msg := view.waiting(sp.GetDataset(), len(have), need)
		if msg != announced {
			announced = msg
			if _, err := c.update(id, msg, func(j *federav1.Job) { j.Message = msg }); err != nil {
				return nil, err
			}
		}
		waitChanged(ctx, changed, 200*time.Millisecond)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

// sitesWithoutDataset explains, for each listed site that is connected but
// does not serve dataset, what it does serve.
func (c *Coordinator) sitesWithoutDataset(sites []string, dataset string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, s := range sites {
		sess := c.sessions[s]
		if sess == nil || sess.datasets[dataset] {
			continue
		}
		out = append(out, fmt.Sprintf("site %s does not serve it (it serves: [%s])", s, strings.Join(slices.Sorted(maps.Keys(sess.datasets)), ", ")))
	}
	return out
}

func siteSummary(j *federav1.Job, site string) *federav1.SiteSummary {
	for _, s := range j.Sites {
		if s.GetSite() == site {
			return s
		}
	}
	s := &federav1.SiteSummary{Site: site}
	j.Sites = append(j.Sites, s)
	sort.Slice(j.Sites, func(a, b int) bool { return j.Sites[a].GetSite() < j.Sites[b].GetSite() })
	return s
}

func addBytes(j *federav1.Job, col *collected) {
	for s, n := range col.bytesIn {
		siteSummary(j, s).BytesSent += n
	}
	for s, n := range col.bytesOut {
		siteSummary(j, s).BytesReceived += n
	}
}

func sortStrings(s []string) []string { sort.Strings(s); return s }

func intersect(a, b []string) []string {
	in := map[string]bool{}
	for _, x := range b {
		in[x] = true
	}
	var out []string
	for _, x := range a {
		if in[x] {
			out = append(out, x)
		}
	}
	return sortStrings(out)
}

// describeDiff says how site b's columns differ from site a's, briefly.
func describeDiff(a string, ca []string, b string, cb []string) string {
	in := func(list []string) map[string]bool {
		m := map[string]bool{}
		for _, x := range list {
			m[x] = true
		}
		return m
	}
	ma, mb := in(ca), in(cb)
	var extra, missing []string
	for _, x := range cb {
		if !ma[x] {
			extra = append(extra, x)
		}
	}
	for _, x := range ca {
		if !mb[x] {
			missing = append(missing, x)
		}
	}
	var parts []string
	if len(extra) > 0 {
		parts = append(parts, fmt.Sprintf("%s has [%s] that %s lacks", b, strings.Join(extra, ", "), a))
	}
	if len(missing) > 0 {
		parts = append(parts, fmt.Sprintf("%s lacks [%s] that %s has", b, strings.Join(missing, ", "), a))
	}
	if len(parts) == 0 {
		parts = append(parts, fmt.Sprintf("%s and %s have the same columns in a different order", a, b))
	}
	return strings.Join(parts, "; ")
}

// scoreRound pools the sites' evaluations of a round into its summary:
// accuracy and mean cross-entropy for a classifier; for a regressor the
// mean squared error as EvalLoss, its root, and R² from the merged label
// spreads. A round no site could score keeps its NaNs.
func scoreRound(sum *federav1.RoundSummary, answers map[string]reply, kind models.Kind) {
	var correct, total int64
	var lossSum float64
	var spread models.Spread
	for _, s := range slices.Sorted(maps.Keys(answers)) {
		res := answers[s].result
		n := res.GetEvalTotal()
		correct += res.GetEvalCorrect()
		total += n
		lossSum += res.GetEvalLoss() * float64(n)
		spread.Merge(models.Spread{N: float64(n), Mean: res.GetEvalLabelMean(), M2: res.GetEvalLabelM2()})
	}
	if total == 0 {
		return
	}
	sum.EvalLoss = lossSum / float64(total)
	sum.EvalExamples = total
	if kind == models.Regressor {
		sum.EvalRmse = math.Sqrt(sum.EvalLoss)
		sum.EvalR2 = spread.R2(lossSum)
		return
	}
	sum.EvalAccuracy = float64(correct) / float64(total)
}

// maxSiteRounds is the most participants a round keeps per-site figures
// for: beyond it the job record would grow with sites × rounds.
const maxSiteRounds = 32

// siteRounds are each training site's own figures in a round, sorted by
// site, or nil for a round of more than maxSiteRounds sites.
func siteRounds(train, eval map[string]reply, kind models.Kind) []*federav1.SiteRound {
	if len(train) > maxSiteRounds {
		return nil
	}
	out := make([]*federav1.SiteRound, 0, len(train))
	for _, s := range slices.Sorted(maps.Keys(train)) {
		tr := train[s].result
		sr := &federav1.SiteRound{Site: s, TrainLoss: tr.GetTrainLoss(), TrainExamples: tr.GetExamples(),
			EvalAccuracy: math.NaN(), EvalLoss: math.NaN(), EvalRmse: math.NaN()}
		if e, ok := eval[s]; ok && e.result.GetEvalTotal() > 0 {
			res := e.result
			sr.EvalTotal, sr.EvalLoss = res.GetEvalTotal(), res.GetEvalLoss()
			if kind == models.Regressor {
				sr.EvalRmse = math.Sqrt(res.GetEvalLoss())
			} else {
				sr.EvalAccuracy = float64(res.GetEvalCorrect()) / float64(res.GetEvalTotal())
			}
		}
		out = append(out, sr)
	}
	return out
}

// sendingOf counts a send of w's memory under way until the returned
// func is called (nil w: nothing to count).
func (c *Coordinator) sendingOf(w models.Weights) (done func()) {
	key := weightsKey(w)
	if key == nil {
		return func() {}
	}
	c.sendMu.Lock()
	if c.sends == nil {
		c.sends = map[*float32]int{}
	}
	c.sends[key]++
	c.sendMu.Unlock()
	return func() {
		c.sendMu.Lock()
		if c.sends[key]--; c.sends[key] == 0 {
			delete(c.sends, key)
		}
		c.sendMu.Unlock()
	}
}

// reusable is w if no send of its memory is under way, else nil: the
// chunks a fan-out sends are views of the weights (transfer.ShareWeights),
// so a model still being sent to a stalled site is not overwritten; the
// next model then gets a buffer of its own.
func (c *Coordinator) reusable(w models.Weights) models.Weights {
	key := weightsKey(w)
	if key == nil {
		return nil
	}
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if c.sends[key] > 0 {
		return nil
	}
	return w
}

// weightsKey identifies a model's memory by its first non-empty tensor's
// first value: a model's tensors move together (a spare model is reused
// whole, never lent a tensor of another).
func weightsKey(w models.Weights) *float32 {
	for _, name := range w.Names() {
		if t := w[name]; t != nil && len(t.Data) > 0 {
			return &t.Data[0]
		}
	}
	return nil
}
