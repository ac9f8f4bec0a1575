package site

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"

	"github.com/federa-dev/federa/analytics"
	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/policy"
	"github.com/federa-dev/federa/privacy"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// A query's tasks take the job path: admission (job.type "query", with the
// columns the query reads), compute, egress (kind "statistics", with the
// record count), journal and audit. What differs is the compute: package
// analytics' disclosure-controlled partials of this site's rows, with
// k = max(the query's min_count, the policy's min_records), and under a
// privacy section Gaussian noise charged to the dataset's privacy ledger
// as one release (q = 1, one step).

// isQuery reports whether task t belongs to an analytics query.
func isQuery(t *federav1.Task) bool { return len(t.GetQueryRequest()) > 0 }

// queryRequest decodes and checks a query task's request: strictly, within
// its bound, and for the dataset the task names.
func queryRequest(t *federav1.Task) (*analytics.Request, error) {
	b := t.GetQueryRequest()
	if len(b) > federav1.MaxQueryWireBytes {
		return nil, fmt.Errorf("the query request is %d bytes; at most %d", len(b), federav1.MaxQueryWireBytes)
	}
	req, err := analytics.DecodeRequest(b)
	if err != nil {
		return nil, fmt.Errorf("the query request is invalid: %w", err)
	}
	if req.Query.Dataset != t.GetSpec().GetDataset() {
		return nil, fmt.Errorf("the query reads dataset %q but its task names dataset %q; refusing", req.Query.Dataset, t.GetSpec().GetDataset())
	}
	return req, nil
}

// queryColumns are the columns q reads, in first-use order: where,
// group_by, then each aggregate's inputs.
func queryColumns(q *analytics.Query) []string {
	var out []string
	add := func(cs ...string) {
		for _, c := range cs {
			if c != "" && !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	for _, c := range q.Where {
		add(c.Column)
	}
	add(q.GroupBy...)
	for _, a := range q.Aggregates {
		add(a.Column, a.Label)
		add(a.Columns...)
	}
	return out
}

// evaluateQuery is evaluate for a query's task: the policy judges the
// columns the query reads, as a "query" job.
func (a *Agent) evaluateQuery(ctx context.Context, eng *policy.Engine, t *federav1.Task, ds *Dataset) (evaluation, error) {
	req, err := queryRequest(t)
	if err != nil {
		return evaluation{}, err
	}
	cols := queryColumns(req.Query)
	header, err := ds.source().Header()
	if err != nil {
		return evaluation{}, redact(err)
	}
	for _, c := range cols {
		if !slices.Contains(header, c) {
			return evaluation{}, fmt.Errorf("column %q is not a column of dataset %q at this site (names must match the site's header exactly)", c, ds.Name)
		}
	}
	in := a.queryPolicyInput(t, req.Query, ds, cols)
	ev := evaluation{features: cols, digest: policy.InputDigest(in)}
	if ev.decision, err = eng.Admission(ctx, in); err != nil {
		ev.decision = policy.Decision{Reasons: []string{"policy evaluation failed: " + err.Error()}}
	}
	return ev, nil
}

// queryPolicyInput is input.* for a query: job.type "query", the columns
// it reads as its features, its min_count and its privacy.
func (a *Agent) queryPolicyInput(t *federav1.Task, q *analytics.Query, ds *Dataset, cols []string) policy.Input {
	in := policy.Input{
		Version: policy.InputVersion,
		Job: policy.Job{
			ID: t.GetJobId(), Type: "query",
			Requester: policy.Requester{ID: t.GetRequester(), Role: t.GetRequesterRole()},
			Dataset:   q.Dataset, Features: cols,
			Model:   policy.Model{Params: map[string]any{}},
			Rounds:  1,
			Privacy: policy.Privacy{MinCount: q.MinCount},
		},
		Site: policy.Site{
			Name: a.siteName(), Jurisdiction: attest.Jurisdiction(a.siteName()),
			Dataset: policy.DatasetMeta{Name: ds.Name, Columns: classify(ds, cols)},
		},
		Destination: policy.Destination{ID: a.cfg.CoordinatorID.String(), Jurisdiction: a.cfg.CoordinatorJurisdiction},
	}
	if p := q.Privacy; p != nil {
		// clip_norm is the release's L2 sensitivity: what one record can
		// move everything this site sends.
		sens, _ := analytics.Sensitivity(q)
		in.Job.Privacy.DP = &policy.DP{Epsilon: p.Epsilon, Delta: p.Delta, ClipNorm: sens}
	}
	return in
}

// queryUnenforceable lists the obligations a query cannot meet here.
func queryUnenforceable(t *federav1.Task, o policy.Obligations) []string {
	var out []string
	for k := range o.Unknown {
		out = append(out, fmt.Sprintf("obligation %q is not supported by this site agent (version %s); refusing rather than ignoring it", k, Version))
	}
	req, err := queryRequest(t)
	if err != nil {
		return append(out, err.Error())
	}
	q := req.Query
	if o.RequireDP && q.Privacy == nil {
		out = append(out, "obligation require_dp: the query has no privacy section (set epsilon, delta and bounds)")
	}
	if o.MaxEpsilon > 0 && q.Privacy != nil && q.Privacy.Epsilon > o.MaxEpsilon {
		out = append(out, fmt.Sprintf("obligation max_epsilon=%g: the query asks for epsilon %g", o.MaxEpsilon, q.Privacy.Epsilon))
	}
	cols := queryColumns(q)
	for _, c := range o.DropColumns {
		if slices.Contains(cols, c) {
			out = append(out, fmt.Sprintf("obligation drop_columns: column %q may not be used at this site", c))
		}
	}
	return out
}

// query computes one stage of a query and makes it the task's release.
func (a *Agent) query(t *federav1.Task, ad admitted, r *release) error {
	req, err := queryRequest(t)
	if err != nil {
		return err
	}
	q := req.Query
	cols := queryColumns(q)
	// The columns must be those the admission judged: a coordinator cannot
	// widen a later stage.
	for _, c := range cols {
		if !slices.Contains(ad.features, c) {
			return fmt.Errorf("the query reads column %q, which its admission did not judge; refusing", c)
		}
	}
	src := newSourceRows(ad.dataset)
	k := max(q.MinCount, ad.minRecords)
	part, err := analytics.Compute(q, req, k, src)
	if err != nil {
		return withheldValues(err)
	}
	res := r.res
	if q.Privacy != nil {
		if err := a.queryNoise(t, ad, q.Privacy, part, r); err != nil {
			return err
		}
	}
	b, err := json.Marshal(part)
	if err != nil {
		return fmt.Errorf("encode the partials: %w", err)
	}
	if len(b) > federav1.MaxQueryWireBytes {
		return fmt.Errorf("the partials are %d bytes; a stage may send at most %d (fewer groups or aggregates)", len(b), federav1.MaxQueryWireBytes)
	}
	res.QueryPartials, res.QueryRecords = b, src.rows
	res.ObligationsEnforced = append(res.ObligationsEnforced, fmt.Sprintf("disclosure control: k=%d", max(k, 1)))
	r.kind, r.records, r.dataset = egressStatistics, src.rows, ad.dataset.Name
	r.maxBytes = federav1.MaxQueryWireBytes + boundFor(egressStatistics, 0, 0, 0)
	r.input = a.queryPolicyInput(t, q, ad.dataset, cols)
	return nil
}

// queryNoise makes a private query's release: a plan of one Gaussian
// release (q = 1, one step) at the noise multiplier its (ε, δ) needs,
// checked against the dataset's lifetime budget, then the noise. The spend
// itself is charged with the egress check (conn.start), in one step.
func (a *Agent) queryNoise(t *federav1.Task, ad admitted, qp *analytics.Privacy, part *analytics.Partials, r *release) error {
	p := part
	if t.GetRound() != 1 || p.Stage != 1 {
		return errors.New("a private query has one stage; refusing a later one")
	}
	if old := a.ledger.lookup(ad.dataset.Name, t.GetJobId()); old != nil && len(old.Paid) > 0 {
		// Answered and paid for once; a second, fresh noisy answer would be
		// a second look at the data for the price of one.
		return fmt.Errorf("privacy: query %s was answered here already; a private query is released once", t.GetJobId())
	}
	z, err := privacy.CalibrateNoise(qp.Epsilon, qp.Delta, 1, 1, ledgerOrders)
	if err != nil {
		return fmt.Errorf("differential privacy: epsilon %g at delta %g: %w", qp.Epsilon, qp.Delta, err)
	}
	plan, err := a.ledger.plan(ad.dataset.Name, t.GetJobId(), dpPlan{
		Epsilon: qp.Epsilon, Delta: qp.Delta, Q: 1, Sigma: z, ClipNorm: p.Sensitivity,
		StepsPerRelease: 1, Releases: 1,
	}, ad.obligations.PrivacyBudget)
	if err != nil {
		return err
	}
	if err := analytics.AddNoise(p, plan.Sigma, a.noise()); err != nil {
		return err
	}
	r.dp = &dpRelease{budget: ad.obligations.PrivacyBudget, plan: plan}
	r.noise = &policy.Noise{Mechanism: "gaussian", Sigma: p.NoiseStd, ClipNorm: p.Sensitivity}
	r.res.NoiseSigma = p.NoiseStd
	r.res.ObligationsEnforced = append(r.res.ObligationsEnforced, fmt.Sprintf("dp: gaussian noise multiplier %.4g on sensitivity %.4g", plan.Sigma, p.Sensitivity))
	return nil
}

// quoted matches a Go-quoted string in an error.
var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// withheldValues makes a compute error fit to leave the site: analytics
// quotes the offending cell's text ("column x, row 7: "abc" is not a
// number"), which is data; the column and row stay, the text goes.
func withheldValues(err error) error {
	return errors.New(quoted.ReplaceAllString(err.Error(), "(value withheld)"))
}
