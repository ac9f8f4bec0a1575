package site

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/internal/logkeys"
	"github.com/federa-dev/federa/policy"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/spec"
)

// admitted is the outcome of an admission check: what the site answers
// and the obligations it must enforce if it goes ahead.
type admitted struct {
	answer      *federav1.Admission
	decision    policy.Decision
	revision    string
	obligations policy.Obligations
	minRecords  int
	dataset     *Dataset
	// features are the columns the policy judged; no task of the job may
	// read another.
	features []string
	// label is the label profile the policy judged.
	label *policy.LabelMeta
}

func (a *Agent) siteName() string {
	name, _ := attest.SiteName(a.cfg.Identity.ID())
	return name
}

func (a *Agent) findDataset(name string) *Dataset {
	for i := range a.cfg.Datasets {
		if a.cfg.Datasets[i].Name == name {
			return &a.cfg.Datasets[i]
		}
	}
	return nil
}

// touched is what a job would read: its explicit features, or every
// column of the file but the label, less columns an obligation drops.
//
// Every column a job names must be a column of the file exactly as its
// header has it (trimmed: the loader's one normalization). The policy
// classifies the names as written, the loader reads the names as written,
// so a near miss (" mean_radius", "Mean_Radius") is refused here, before
// the policy could judge a name that matches nothing it declared. The
// refusal names only the column the job asked for, never the file's.
func touched(ds *Dataset, sp *federav1.JobSpec, drop []string) ([]string, error) {
	header, err := ds.source().Header()
	if err != nil {
		return nil, redact(err)
	}
	has := make(map[string]bool, len(header))
	for _, c := range header {
		has[c] = true
	}
	if !has[sp.GetLabel()] {
		return nil, fmt.Errorf("label %q is not a column of dataset %q at this site (names must match the site's header exactly)", sp.GetLabel(), ds.Name)
	}
	if len(sp.GetFeatures()) > 0 {
		for _, c := range sp.GetFeatures() {
			if !has[c] {
				return nil, fmt.Errorf("feature %q is not a column of dataset %q at this site (names must match the site's header exactly)", c, ds.Name)
			}
		}
		return sp.GetFeatures(), nil
	}
	var out []string
	for _, c := range header {
		if c != sp.GetLabel() && !slices.Contains(drop, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// classify describes columns for the policy.
func classify(ds *Dataset, cols []string) []policy.Column {
	def := ds.DefaultClassification
	if def == "" {
		def = DefaultClassification
	}
	out := make([]policy.Column, 0, len(cols))
	for _, c := range cols {
		col := policy.Column{Name: c, Classification: def}
		for _, m := range ds.Columns {
			if m.Name == c {
				col.Classification, col.Tags = m.Classification, m.Tags
			}
		}
		out = append(out, col)
	}
	return out
}

// defaultedHint explains a refusal over personal data when the columns are
// personal only because the dataset sets no default_classification: a
// site.yaml written without it gets every job refused, and the policy,
// which sees only the classifications, cannot say why they are personal.
func defaultedHint(ds *Dataset, cols []string, reasons []string) string {
	if ds.DefaultClassification != "" || !slices.ContainsFunc(reasons, func(r string) bool { return strings.Contains(r, DefaultClassification) }) {
		return ""
	}
	n := 0 // columns the job uses that the dataset does not classify
	for _, c := range cols {
		if c != "" && !slices.ContainsFunc(ds.Columns, func(m Column) bool { return m.Name == c }) {
			n++
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d %s by default: dataset %q sets no default_classification in site.yaml; set it or list the columns under columns:",
		n, plural(n, "column is "+DefaultClassification, "columns are "+DefaultClassification), ds.Name)
}

// policyInput builds input.* for a task of job spec sp.
func (a *Agent) policyInput(t *federav1.Task, ds *Dataset, features []string) policy.Input {
	sp := t.GetSpec()
	cols := append(append([]string(nil), features...), sp.GetLabel())
	in := policy.Input{
		Version: policy.InputVersion,
		Job: policy.Job{
			ID: t.GetJobId(), Type: "train",
			Requester: policy.Requester{ID: t.GetRequester(), Role: t.GetRequesterRole()},
			Project:   sp.GetProject(), Dataset: sp.GetDataset(), Features: features, Label: sp.GetLabel(),
			Model: policy.Model{Type: sp.GetModel().GetType(), Params: map[string]any{
				"local_epochs": sp.GetLocalEpochs(), "batch_size": sp.GetBatchSize(),
				"learning_rate": sp.GetLearningRate(), "l2": sp.GetL2(),
			}},
			Rounds: int(sp.GetRounds()),
			Privacy: policy.Privacy{
				SecureAggregation: sp.GetPrivacy().GetSecureAggregation(),
				MinCount:          int(sp.GetPrivacy().GetMinCount()),
			},
		},
		Site: policy.Site{
			Name: a.siteName(), Jurisdiction: attest.Jurisdiction(a.siteName()),
			Dataset: policy.DatasetMeta{Name: ds.Name, Columns: classify(ds, cols)},
		},
		Destination: policy.Destination{ID: a.cfg.CoordinatorID.String(), Jurisdiction: a.cfg.CoordinatorJurisdiction},
	}
	if arch, err := spec.ArchOf(sp); err == nil {
		in.Job.Model.Task = arch.Kind().String()
	}
	if m := sp.GetModel(); len(m.GetHidden()) > 0 || m.GetActivation() != "" {
		// A policy may bound a model's shape (how much it can memorize).
		hidden := make([]any, len(m.GetHidden()))
		for i, h := range m.GetHidden() {
			hidden[i] = int(h)
		}
		in.Job.Model.Params["hidden"], in.Job.Model.Params["activation"] = hidden, m.GetActivation()
	}
	if dp := sp.GetPrivacy().GetDp(); dp != nil {
		in.Job.Privacy.DP = &policy.DP{Epsilon: dp.GetEpsilon(), Delta: dp.GetDelta(), ClipNorm: dp.GetClipNorm()}
	}
	return in
}

// admit asks the site's policy whether job t may run here, checks the
// obligations the agent must be able to enforce, and (unless dryRun)
// holds the job for approval when the policy says so. Every decision is
// recorded at the site and reported to the coordinator.
func (a *Agent) admit(ctx context.Context, t *federav1.Task, dryRun bool) admitted {
	sp := t.GetSpec()
	out := admitted{answer: &federav1.Admission{}}
	deny := func(reasons ...string) admitted {
		out.answer.Outcome = federav1.Admission_OUTCOME_DENY
		out.answer.Reasons = append(out.answer.Reasons, reasons...)
		return out
	}
	eng := a.policy.Current()
	out.answer.PolicyRevision = eng.Revision()
	ds := a.findDataset(sp.GetDataset())
	if ds == nil {
		return deny(fmt.Sprintf("this site has no dataset %q", sp.GetDataset()))
	}
	out.dataset = ds
	evalStart := time.Now()
	ev, err := a.evaluate(ctx, eng, t, ds)
	if err != nil {
		return deny(err.Error())
	}
	dec, features, digest := ev.decision, ev.features, ev.digest
	out.features, out.label = features, ev.label
	evalUs := float64(time.Since(evalStart)) / float64(time.Microsecond)
	out.obligations, out.decision, out.revision = dec.Obligations, dec, eng.Revision()
	ob, _ := json.Marshal(dec.Obligations)
	out.answer.ObligationsJson = string(ob)
	defer func() {
		a.record(&federav1.DecisionRecord{
			UnixMs: time.Now().UnixMilli(), Kind: admissionKind(dryRun), JobId: t.GetJobId(), TaskId: t.GetTaskId(),
			InputDigest: digest, Allow: out.answer.GetOutcome() == federav1.Admission_OUTCOME_ALLOW,
			Reasons: out.answer.GetReasons(), ObligationsJson: string(ob), RequireApproval: dec.RequireApproval,
			PolicyRevision: eng.Revision(), EvalUs: evalUs,
		})
	}()
	if !dec.Allow {
		if len(dec.Reasons) == 0 {
			dec.Reasons = []string{"the policy denied the job without a reason"}
		}
		reasons := dec.Reasons
		if hint := defaultedHint(ds, append(slices.Clone(features), sp.GetLabel()), dec.Reasons); hint != "" {
			reasons = append(slices.Clone(reasons), hint)
		}
		return deny(reasons...)
	}
	problems := a.unenforceable(sp, dec.Obligations)
	if isQuery(t) {
		problems = queryUnenforceable(t, dec.Obligations)
	}
	if t.GetKind() == federav1.TaskKind_TASK_KIND_ADMIT && !isQuery(t) {
		// At submit: a DP job whose ε this site cannot meet, or whose plan
		// would overspend the dataset's lifetime budget, is refused now,
		// saying what it would take, rather than before its first round.
		if why := a.dpFeasible(t, ds, ev.rows, dec.Obligations.PrivacyBudget); why != "" {
			problems = append(problems, why)
		}
	}
	if len(problems) > 0 {
		return deny(problems...)
	}
	out.minRecords = max(dec.Obligations.MinRecords, int(sp.GetPrivacy().GetMinCount()))
	out.answer.Reasons = dec.Reasons
	if !dec.RequireApproval {
		out.answer.Outcome = federav1.Admission_OUTCOME_ALLOW
		return out
	}
	if dryRun {
		out.answer.Outcome = federav1.Admission_OUTCOME_PENDING_APPROVAL
		return out
	}
	if a.approvals == nil {
		return deny("the policy requires operator approval but this site has no state_dir to hold approvals")
	}
	ap, err := a.approvals.Hold(Approval{
		JobID: t.GetJobId(), JobName: sp.GetName(), Requester: t.GetRequester(), Dataset: sp.GetDataset(),
		Features: features, Rounds: int(sp.GetRounds()), Reasons: dec.Reasons, PolicyRevision: eng.Revision(),
	})
	if err != nil {
		return deny("hold for approval: " + err.Error())
	}
	switch ap.Status {
	case ApprovalApproved:
		out.answer.Outcome = federav1.Admission_OUTCOME_ALLOW
		out.answer.Reasons = append(out.answer.Reasons, fmt.Sprintf("approved by %s: %s", ap.DecidedBy, ap.Reason))
	case ApprovalRejected:
		return deny(fmt.Sprintf("rejected by the site operator (%s): %s", ap.DecidedBy, ap.Reason))
	default:
		if ap.CreatedAt.After(time.Now().Add(-2 * time.Second)) {
			a.log.Warn("job waits for operator approval", logkeys.Job, t.GetJobId(), "approve_with", "federa site approve "+t.GetJobId()+" --reason ...")
		}
		out.answer.Outcome = federav1.Admission_OUTCOME_PENDING_APPROVAL
	}
	return out
}

// evaluation is one admission evaluation and what it was made on.
type evaluation struct {
	decision policy.Decision
	features []string
	label    *policy.LabelMeta
	digest   string
	// rows is the dataset's row count, read with the label profile; 0
	// when the profile stopped counting (too many distinct labels).
	rows int
}

// maxProfiledClasses is where the label profile stops counting distinct
// values: far above any policy's class limit, and bounded memory for a
// label of unique values.
const maxProfiledClasses = 10000

// profileLabel reads the label column of the site's file: how many
// distinct values, whether all are numbers, and how rare the rarest is.
// The policy judges the label's values as a release.
func profileLabel(ds *Dataset, label string) (*policy.LabelMeta, error) {
	m, _, err := profileLabelRows(ds, label)
	return m, err
}

// profileLabelRows is profileLabel that also returns the rows it counted,
// or 0 when it stopped counting (more distinct values than it profiles).
func profileLabelRows(ds *Dataset, label string) (*policy.LabelMeta, int, error) {
	counts, truncated, err := ds.source().ValueCounts(label, maxProfiledClasses)
	if err != nil {
		return nil, 0, redact(err)
	}
	rows := 0
	for _, n := range counts {
		rows += n
	}
	if truncated {
		rows = 0
	}
	m := &policy.LabelMeta{Column: label, Classes: len(counts), Numeric: len(counts) > 0}
	if truncated {
		m.Classes = maxProfiledClasses + 1
	}
	first := true
	for v, n := range counts {
		if _, err := strconv.ParseFloat(v, 64); err != nil {
			m.Numeric = false
		}
		if first || n < m.SmallestClass {
			m.SmallestClass, first = n, false
		}
	}
	return m, rows, nil
}

// evaluate builds the admission input for job t and evaluates it, reusing
// the evaluation the same policy revision made for the same job: a job's
// spec never changes and neither does this agent's configuration, so the
// input is the same for every task of the job, and Rego is deterministic
// given policy and input. Asking again each task would only cost time; a
// reload is a new revision and a fresh evaluation.
func (a *Agent) evaluate(ctx context.Context, eng *policy.Engine, t *federav1.Task, ds *Dataset) (evaluation, error) {
	if isQuery(t) {
		return a.evaluateQuery(ctx, eng, t, ds)
	}
	// The key holds the spec itself (its digest), not only the job's id: a
	// coordinator that sent a different spec under the same id must get a
	// fresh decision, not the one made for the first spec.
	key := eng.Revision() + "\x00" + t.GetJobId() + "\x00" + ds.Name + "\x00" + specDigest(t.GetSpec())
	// A dry run asks the same policy the same question as the real admission
	// that follows (approval is decided outside the policy), so it shares
	// the cache.
	// A policy that reads the clock or draws random numbers is asked again
	// every time.
	det, _ := eng.Deterministic()
	cacheable := t.GetJobId() != "" && det
	if cacheable {
		a.admitMu.Lock()
		ev, ok := a.admitCache[key]
		a.admitMu.Unlock()
		if ok {
			return ev, nil
		}
	}
	// The coordinator validates specs at submit; the site checks again, so
	// a spec no coordinator should have sent (300k features, a spaced
	// column name) is refused here whoever sent it. Once per spec: the
	// cache key holds its digest.
	if _, err := spec.CheckProto(t.GetSpec()); err != nil {
		return evaluation{}, fmt.Errorf("the job spec is invalid: %w", err)
	}
	features, err := touched(ds, t.GetSpec(), nil)
	if err != nil {
		return evaluation{}, err
	}
	label, rows, err := profileLabelRows(ds, t.GetSpec().GetLabel())
	if err != nil {
		return evaluation{}, err
	}
	in := a.policyInput(t, ds, features)
	in.Site.Dataset.Label = label
	ev := evaluation{features: features, label: label, digest: policy.InputDigest(in), rows: rows}
	if ev.decision, err = eng.Admission(ctx, in); err != nil {
		ev.decision = policy.Decision{Reasons: []string{"policy evaluation failed: " + err.Error()}}
		return ev, nil // a failed evaluation denies, and is not cached
	}
	if cacheable {
		a.admitMu.Lock()
		if a.admitCache == nil || len(a.admitCache) >= 1024 {
			a.admitCache = map[string]evaluation{}
		}
		a.admitCache[key] = ev
		a.admitMu.Unlock()
	}
	return ev, nil
}

func admissionKind(dryRun bool) string {
	if dryRun {
		return "admission-dry-run"
	}
	return "admission"
}

// unenforceable lists the obligations this job cannot meet or this agent
// cannot enforce. Either way the site refuses rather than run unbound.
func (a *Agent) unenforceable(sp *federav1.JobSpec, o policy.Obligations) []string {
	var out []string
	for k := range o.Unknown {
		out = append(out, fmt.Sprintf("obligation %q is not supported by this site agent (version %s); refusing rather than ignoring it", k, Version))
	}
	if o.MaxRounds > 0 && int(sp.GetRounds()) > o.MaxRounds {
		out = append(out, fmt.Sprintf("obligation max_rounds=%d: the job asks for %d rounds", o.MaxRounds, sp.GetRounds()))
	}
	dp := sp.GetPrivacy().GetDp()
	if o.RequireDP && dp == nil {
		out = append(out, "obligation require_dp: the job has no privacy.dp (set epsilon, delta and clip_norm)")
	}
	if o.MaxEpsilon > 0 && dp != nil && dp.GetEpsilon() > o.MaxEpsilon {
		out = append(out, fmt.Sprintf("obligation max_epsilon=%g: the job asks for epsilon %g", o.MaxEpsilon, dp.GetEpsilon()))
	}
	for _, c := range o.DropColumns {
		if slices.Contains(sp.GetFeatures(), c) || sp.GetLabel() == c {
			out = append(out, fmt.Sprintf("obligation drop_columns: column %q may not be used at this site", c))
		}
	}
	return out
}

// enforced describes the obligations a task ran under, for its result.
func (ad admitted) enforced() []string {
	var out []string
	o := ad.obligations
	if ad.minRecords > 0 {
		out = append(out, fmt.Sprintf("min_records=%d", ad.minRecords))
	}
	if o.RequireDP {
		out = append(out, "require_dp")
	}
	if o.MaxEpsilon > 0 {
		out = append(out, fmt.Sprintf("max_epsilon=%g", o.MaxEpsilon))
	}
	if o.MaxRounds > 0 {
		out = append(out, fmt.Sprintf("max_rounds=%d", o.MaxRounds))
	}
	if len(o.DropColumns) > 0 {
		out = append(out, "drop_columns="+strings.Join(o.DropColumns, ","))
	}
	return out
}

// specDigest identifies a job spec's content.
func specDigest(sp *federav1.JobSpec) string {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(sp)
	sum := sha256.Sum256(b)
	return string(sum[:])
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
