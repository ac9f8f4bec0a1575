package sim_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/gonum/mat"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/federa-dev/federa/models"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
)

// queryResult is the published result as a client reads it (the JSON
// shape of docs/queries.md).
type queryResult struct {
	QueryID      string   `json:"query_id"`
	Status       string   `json:"status"`
	EpsilonSpent float64  `json:"epsilon_spent"`
	Sites        []string `json:"sites"`
	Groups       []struct {
		Group      map[string]string          `json:"group"`
		Values     map[string]json.RawMessage `json:"values"`
		Suppressed bool                       `json:"suppressed"`
	} `json:"groups"`
}

// runQuery submits spec as alice and waits for the query to end.
func runQuery(t *testing.T, n *sim.Net, spec string) *federav1.Query {
	t.Helper()
	c, closeFn, err := n.DialQueries("alice")
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	q, err := c.SubmitQuery(context.Background(), &federav1.SubmitQueryRequest{Spec: []byte(spec), Source: "test.yaml"})
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	deadline := time.Now().Add(hangBound)
	for {
		got, err := c.GetQuery(context.Background(), &federav1.GetQueryRequest{Id: q.GetId()})
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		if s := got.GetStatus(); s == federav1.JobStatus_JOB_STATUS_SUCCEEDED || s == federav1.JobStatus_JOB_STATUS_FAILED {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("query %s did not end within %s: %s", q.GetId(), hangBound, got.GetMessage())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func resultOf(t *testing.T, q *federav1.Query) *queryResult {
	t.Helper()
	if q.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("query %s: %s: %s", q.GetId(), q.GetStatus(), q.GetMessage())
	}
	var r queryResult
	if err := json.Unmarshal(q.GetResultJson(), &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// unionRows reads every shipped site's file: the rows a central analyst
// would hold if the data could move.
func unionRows(t *testing.T) (header []string, rows [][]string) {
	t.Helper()
	for _, s := range shippedSites {
		f, err := os.Open(s.Path)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(f).ReadAll()
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		header = recs[0]
		rows = append(rows, recs[1:]...)
	}
	return header, rows
}

// column is one numeric column of the rows that have label == group ("" for all).
func column(t *testing.T, header []string, rows [][]string, name, group string) []float64 {
	t.Helper()
	ci, li := slices.Index(header, name), slices.Index(header, "label")
	var out []float64
	for _, r := range rows {
		if group != "" && r[li] != group {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(r[ci]), 64)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

// Central statistics, written out plainly as pandas and numpy define them.
func mean(x []float64) float64 {
	s := 0.0
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

func sampleVar(x []float64) float64 {
	m, s := mean(x), 0.0
	for _, v := range x {
		s += (v - m) * (v - m)
	}
	return s / float64(len(x)-1)
}

func pearson(x, y []float64) float64 {
	mx, my := mean(x), mean(y)
	var sxy, sxx, syy float64
	for i := range x {
		sxy += (x[i] - mx) * (y[i] - my)
		sxx += (x[i] - mx) * (x[i] - mx)
		syy += (y[i] - my) * (y[i] - my)
	}
	return sxy / math.Sqrt(sxx*syy)
}

// numpyHistogram: half-open bins, the last closed, outside not counted.
func numpyHistogram(x, edges []float64) []float64 {
	out := make([]float64, len(edges)-1)
	for _, v := range x {
		for b := range out {
			last := b == len(out)-1
			if v >= edges[b] && (v < edges[b+1] || (last && v == edges[b+1])) {
				out[b]++
				break
			}
		}
	}
	return out
}

// numpyQuantile: method="linear".
func numpyQuantile(x []float64, q float64) float64 {
	s := slices.Clone(x)
	sort.Float64s(s)
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	if lo+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[lo] + (pos-float64(lo))*(s[lo+1]-s[lo])
}

// ols regresses y on xs with an intercept by the normal equations.
func ols(y []float64, xs ...[]float64) (intercept float64, coef []float64) {
	n, p := len(y), len(xs)+1
	X := mat.NewDense(n, p, nil)
	for i := range n {
		X.Set(i, 0, 1)
		for j, x := range xs {
			X.Set(i, j+1, x[i])
		}
	}
	var b mat.VecDense
	if err := b.SolveVec(X, mat.NewVecDense(n, y)); err != nil {
		panic(err)
	}
	for j := 1; j < p; j++ {
		coef = append(coef, b.AtVec(j))
	}
	return b.AtVec(0), coef
}

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
		t.Errorf("%s = %.17g; central %.17g (relative error %.3g)", what, got, want, math.Abs(got-want)/math.Max(1, math.Abs(want)))
	}
}

const equivalenceQuery = `
name: equivalence
dataset: breast-cancer
group_by: [label]
totals: true
min_count: 5
aggregates:
  - {name: n,      fn: count}
  - {name: sum_a,  fn: sum,       column: mean_area}
  - {name: mean_r, fn: mean,      column: mean_radius}
  - {name: var_r,  fn: variance,  column: mean_radius}
  - {name: sd_r,   fn: stddev,    column: mean_radius}
  - {name: hist_r, fn: histogram, column: mean_radius, edges: [6, 10, 12, 14, 18, 30]}
  - {name: q_r,    fn: quantile,  column: mean_radius, q: [0.1, 0.5, 0.9]}
  - {name: corr,   fn: correlation, columns: [mean_radius, mean_texture, mean_area]}
  - {name: ols,    fn: linear_regression, label: mean_area, columns: [mean_radius, mean_texture]}
`

// TestQueryEqualsCentral runs a query over the three shipped sites, over
// real mTLS with each site's real OPA policy, and checks every statistic
// against the same statistic computed centrally over the union of the
// sites' files: count, sum, mean, variance, stddev, histogram and exact
// quantiles, Pearson correlation and OLS, per group and in total, to 1e-9
// relative. The result's digest is in the audit log.
func TestQueryEqualsCentral(t *testing.T) {
	tap := &wireTap{}
	n, _ := startNet(t, sim.Options{Coordinator: withTap(tap)})
	q := runQuery(t, n, equivalenceQuery)
	res := resultOf(t, q)
	if res.QueryID != q.GetId() || res.Status != "succeeded" {
		t.Errorf("result names query %q status %q; want %q succeeded", res.QueryID, res.Status, q.GetId())
	}
	if want := []string{"eu/paris", "sg/singapore", "us/boston"}; !slices.Equal(res.Sites, want) {
		t.Errorf("sites %v; want %v", res.Sites, want)
	}
	if q.GetStages() < 2 {
		t.Errorf("exact quantiles in %d stages; bisection needs more than one", q.GetStages())
	}
	header, rows := unionRows(t)
	groups := map[string]bool{}
	for _, g := range res.Groups {
		label := g.Group["label"]
		groups[label] = true
		if g.Suppressed {
			t.Fatalf("group %q suppressed; every cell here holds far more than 5 rows", label)
		}
		r := column(t, header, rows, "mean_radius", label)
		tex := column(t, header, rows, "mean_texture", label)
		area := column(t, header, rows, "mean_area", label)
		num := func(name string) float64 {
			var v float64
			if err := json.Unmarshal(g.Values[name], &v); err != nil {
				t.Fatalf("group %q %s: %v", label, name, err)
			}
			return v
		}
		near(t, label+" n", num("n"), float64(len(r)))
		s := 0.0
		for _, v := range area {
			s += v
		}
		near(t, label+" sum_a", num("sum_a"), s)
		near(t, label+" mean_r", num("mean_r"), mean(r))
		near(t, label+" var_r", num("var_r"), sampleVar(r))
		near(t, label+" sd_r", num("sd_r"), math.Sqrt(sampleVar(r)))
		var hist []float64
		if err := json.Unmarshal(g.Values["hist_r"], &hist); err != nil {
			t.Fatal(err)
		}
		want := numpyHistogram(r, []float64{6, 10, 12, 14, 18, 30})
		if !slices.Equal(hist, want) {
			t.Errorf("%s hist_r %v; central %v", label, hist, want)
		}
		var qs []float64
		if err := json.Unmarshal(g.Values["q_r"], &qs); err != nil {
			t.Fatal(err)
		}
		for i, p := range []float64{0.1, 0.5, 0.9} {
			near(t, label+" q_r "+strconv.FormatFloat(p, 'g', -1, 64), qs[i], numpyQuantile(r, p))
		}
		var corr [][]float64
		if err := json.Unmarshal(g.Values["corr"], &corr); err != nil {
			t.Fatal(err)
		}
		cols := [][]float64{r, tex, area}
		for i := range cols {
			for j := range cols {
				near(t, label+" corr", corr[i][j], pearson(cols[i], cols[j]))
			}
		}
		var reg struct {
			Coefficients map[string]float64 `json:"coefficients"`
			Intercept    float64            `json:"intercept"`
		}
		if err := json.Unmarshal(g.Values["ols"], &reg); err != nil {
			t.Fatal(err)
		}
		b0, b := ols(area, r, tex)
		near(t, label+" ols intercept", reg.Intercept, b0)
		near(t, label+" ols mean_radius", reg.Coefficients["mean_radius"], b[0])
		near(t, label+" ols mean_texture", reg.Coefficients["mean_texture"], b[1])
	}
	if !groups["benign"] || !groups["malignant"] || !groups[""] {
		t.Errorf("groups %v; want benign, malignant and the total", groups)
	}
	if q.GetResultSha256() == "" {
		t.Fatal("no result digest")
	}
	assertAuditHas(t, n, q.GetId(), q.GetResultSha256())
	// No row in the partials the sites sent, in any form (leak_test.go):
	// raw cells, three in sequence, in any column order. (A query has no
	// scaler: the identity stands in for one.)
	files := map[string]string{}
	for _, s := range shippedSites {
		files[s.Name] = s.Path
	}
	features := header[:len(header)-1]
	identity := models.Scaler{Mean: make([]float64, len(features)), Scale: slices.Repeat([]float64{1}, len(features))}
	if l := findLeak(indexRows(t, files, features, identity), tap.typedAll()); l != "" {
		t.Fatalf("a row reached the coordinator in a query's partials: %s", l)
	}
}

// assertAuditHas checks the coordinator's audit log records the query's
// end with its result digest.
func assertAuditHas(t *testing.T, n *sim.Net, id, sha string) {
	t.Helper()
	waitFor(t, "the query's end in the audit log, with its result digest", func() bool {
		for _, e := range auditEntries(t, n) {
			d, _ := e["data"].(map[string]any)
			if e["type"] == "query_end" && e["job"] == id && d["result_sha256"] == sha {
				return true
			}
		}
		return false
	})
}

// TestQuerySmallGroupSuppressed: a group that one site holds only a few
// rows of is withheld by that site and published suppressed, its values
// absent; the group's existence is published.
func TestQuerySmallGroupSuppressed(t *testing.T) {
	n, _ := startNet(t, sim.Options{})
	// Singapore holds few malignant rows with mean_radius < 13 (fewer than
	// the policy's min_records of 10), the other sites many.
	q := runQuery(t, n, `
name: small
dataset: breast-cancer
where: [{column: mean_radius, op: "<", value: 13}]
group_by: [label]
aggregates: [{name: n, fn: count}, {name: m, fn: mean, column: mean_area}]
`)
	res := resultOf(t, q)
	var sawSuppressed, sawVisible bool
	for _, g := range res.Groups {
		if g.Group["label"] == "malignant" {
			if !g.Suppressed || len(g.Values) != 0 {
				t.Errorf("malignant (small at a site) published: suppressed=%v values=%s", g.Suppressed, g.Values)
			}
			sawSuppressed = true
		} else if !g.Suppressed {
			sawVisible = true
		}
	}
	if !sawSuppressed {
		t.Error("the small group is missing from the result; its existence is published, suppressed")
	}
	if !sawVisible {
		t.Error("benign (large everywhere) was suppressed too; nothing else needed withholding without totals")
	}

	// With totals, the total minus the visible groups would be the
	// withheld one: complementary suppression withholds enough more that
	// malignant's count and sum cannot be derived from what is published.
	q = runQuery(t, n, `
name: small-with-totals
dataset: breast-cancer
where: [{column: mean_radius, op: "<", value: 13}]
group_by: [label]
totals: true
aggregates: [{name: n, fn: count}, {name: m, fn: mean, column: mean_area}]
`)
	res = resultOf(t, q)
	visible := map[string]bool{}
	for _, g := range res.Groups {
		key := g.Group["label"]
		if len(g.Group) == 0 {
			key = "total"
		}
		if !g.Suppressed {
			visible[key] = true
		}
	}
	if visible["malignant"] || (visible["total"] && visible["benign"]) {
		t.Errorf("published %v: malignant = total − benign is derivable", visible)
	}
}

// TestQueryRefusedByPolicy: a site whose policy refuses the query fails
// it, and the query's status names the site and its reason.
func TestQueryRefusedByPolicy(t *testing.T) {
	// eu/paris classifies mean_radius as special-category health data,
	// which its policy releases only under DP.
	n, _ := startNet(t, sim.Options{Sites: healthSites()})
	q := runQuery(t, n, `
name: refused
dataset: breast-cancer
aggregates: [{name: m, fn: mean, column: mean_radius}]
`)
	if q.GetStatus() != federav1.JobStatus_JOB_STATUS_FAILED {
		t.Fatalf("query %s; want failed, refused by eu/paris", q.GetStatus())
	}
	msg := q.GetMessage()
	if !strings.Contains(msg, "refused by site eu/paris") || !strings.Contains(msg, "special-category") || strings.Contains(msg, "us/boston") {
		t.Errorf("message %q does not name the refusing site (eu/paris alone) and its policy's reason", msg)
	}
	if len(q.GetResultJson()) != 0 {
		t.Error("a refused query has a result")
	}
	// The same statistic under DP is what eu/paris's policy asks for: it runs.
	resultOf(t, runQuery(t, n, `
name: admitted
dataset: breast-cancer
aggregates: [{name: m, fn: mean, column: mean_radius}]
privacy: {epsilon: 1, delta: 1e-6, bounds: {mean_radius: [5, 30]}}
`))
}

// TestQueryBadInputNamesField: a bad spec is refused at submit with the
// field named, and nothing runs.
func TestQueryBadInputNamesField(t *testing.T) {
	n, _ := startNet(t, sim.Options{})
	c, closeFn, err := n.DialQueries("alice")
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	for _, tc := range []struct{ spec, field string }{
		{"name: x\naggregates: [{name: n, fn: count}]\n", "dataset"},
		{"name: x\ndataset: breast-cancer\naggregates: [{name: h, fn: histogram, column: mean_radius, edges: [3, 2]}]\n", "aggregates[0].edges"},
		{"name: x\ndataset: breast-cancer\naggregates: [{name: q, fn: quantile, column: mean_radius, q: [1.5]}]\n", "aggregates[0].q"},
		{"name: x\ndataset: breast-cancer\nbogus: 1\naggregates: [{name: n, fn: count}]\n", "bogus"},
		{"name: x\ndataset: breast-cancer\naggregates: [{name: m, fn: mean, column: mean_radius}]\nprivacy: {epsilon: 1, delta: 1e-6}\n", "privacy.bounds"},
	} {
		_, err := c.SubmitQuery(context.Background(), &federav1.SubmitQueryRequest{Spec: []byte(tc.spec), Source: "bad.yaml"})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("spec %q: error %v; want InvalidArgument naming %s", tc.spec, err, tc.field)
		}
	}
	list, err := c.ListQueries(context.Background(), &federav1.ListQueriesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetQueries()) != 0 {
		t.Errorf("%d queries stored after bad submits; want none", len(list.GetQueries()))
	}
}

// TestQueryPrivacyBudget: a private query reports the ε it spent; a second
// one that would take the dataset past the site's lifetime budget is
// refused, saying how much is left.
func TestQueryPrivacyBudget(t *testing.T) {
	n, _ := startNet(t, sim.Options{})
	const spec = `
name: private
dataset: breast-cancer
aggregates: [{name: n, fn: count}, {name: m, fn: mean, column: mean_radius}]
privacy: {epsilon: 6, delta: 1e-6, bounds: {mean_radius: [5, 30]}}
`
	res := resultOf(t, runQuery(t, n, spec))
	if res.EpsilonSpent <= 0 || res.EpsilonSpent > 6*(1+1e-9) {
		t.Errorf("epsilon_spent %v; want in (0, 6]", res.EpsilonSpent)
	}
	second := runQuery(t, n, spec)
	if second.GetStatus() != federav1.JobStatus_JOB_STATUS_FAILED {
		t.Fatalf("a second ε=6 query over a lifetime budget of 8: %s %s", second.GetStatus(), second.GetMessage())
	}
	if !strings.Contains(second.GetMessage(), "privacy budget") || !strings.Contains(second.GetMessage(), "left of its lifetime 8") {
		t.Errorf("refusal %q does not say how much of the budget is spent", second.GetMessage())
	}
}
