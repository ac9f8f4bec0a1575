package analytics

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestSensitivityHandWorked checks Sensitivity against sums done by hand.
func TestSensitivityHandWorked(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		want       float64
	}{{
		// Per cell: count 1; mean of alcohol, h = (16−10)/2 = 3: 1 + 3² =
		// 10; histogram 1. 12 per cell; a record is in its group and in the
		// total: 2 · 12 = 24.
		"grouped with totals", `
group_by: [g]
totals: true
aggregates:
  - {name: n, fn: count}
  - {name: m, fn: mean, column: alcohol}
  - {name: h, fn: histogram, column: alcohol, edges: [10, 12, 14, 16]}
privacy: {epsilon: 1, delta: 1e-6, bounds: {alcohol: [10, 16]}}
`, math.Sqrt(24),
	}, {
		"grouped without totals", `
group_by: [g]
aggregates:
  - {name: n, fn: count}
  - {name: m, fn: mean, column: alcohol}
  - {name: h, fn: histogram, column: alcohol, edges: [10, 12, 14, 16]}
privacy: {epsilon: 1, delta: 1e-6, bounds: {alcohol: [10, 16]}}
`, math.Sqrt(12),
	}, {
		// variance of ash, h = 1: 1 + 1 + 1 = 3. correlation of alcohol
		// (h = 3) and ash (h = 1): 1 + (9 + 1) + (9·9 + 9·1 + 1·1) = 102.
		// quantile: 1. One cell: 3 + 102 + 1 = 106.
		"ungrouped", `
aggregates:
  - {name: v, fn: variance, column: ash}
  - {name: c, fn: correlation, columns: [alcohol, ash]}
  - {name: q, fn: quantile, column: ash, q: [0.5]}
privacy: {epsilon: 1, delta: 1e-6, bounds: {alcohol: [10, 16], ash: [1, 3]}}
`, math.Sqrt(106),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Sensitivity(mustParse(t, "name: s\n"+tc.spec))
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got-tc.want) > 1e-12 {
				t.Fatalf("Sensitivity = %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := Sensitivity(mustParse(t, "name: s\naggregates: [{name: n, fn: count}]\n")); err == nil {
		t.Fatal("Sensitivity of a query without privacy: no error")
	}
}

const privateSpec = `
name: private
group_by: [g]
totals: true
aggregates:
  - {name: n, fn: count}
  - {name: s, fn: sum, column: alcohol}
  - {name: m, fn: mean, column: alcohol}
  - {name: v, fn: variance, column: ash}
  - {name: h, fn: histogram, column: alcohol, edges: [10, 12, 14, 16]}
  - {name: q, fn: quantile, column: alcohol, q: [0.5]}
  - {name: c, fn: correlation, columns: [alcohol, ash]}
  - {name: r, fn: linear_regression, label: alcohol, columns: [ash]}
privacy: {epsilon: 1, delta: 1e-6, bounds: {alcohol: [10, 16], ash: [1, 3]}}
`

func wine(rng *rand.Rand, rows int) *memSource {
	m := &memSource{header: []string{"g", "alcohol", "ash"}}
	for range rows {
		g := []string{"red", "white", "rose"}[rng.IntN(3)]
		// Some values fall outside the bounds, to be clipped.
		m.rows = append(m.rows, []string{g, fmt.Sprint(9 + 8*rng.Float64()), fmt.Sprint(0.5 + 3*rng.Float64())})
	}
	return m
}

// release flattens a site's stage-1 release into one vector per cell.
func release(t testing.TB, q *Query, p *Partials) map[string][]float64 {
	out := map[string][]float64{}
	for _, c := range p.Cells {
		if c.Suppressed {
			t.Fatalf("cell %s suppressed", c.Cell)
		}
		var v []float64
		for _, a := range q.Aggregates {
			v = append(v, c.Values[a.Name]...)
		}
		out[c.key()] = v
	}
	return out
}

// TestSensitivityBoundsOneRecord adds one record to a site's data and
// measures how far the whole release moves: never more than Sensitivity,
// and exactly Sensitivity for a record at a corner of the bounds.
func TestSensitivityBoundsOneRecord(t *testing.T) {
	q := mustParse(t, privateSpec)
	delta, err := Sensitivity(q)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 5))
	d := wine(rng, 300)
	req := &Request{Query: q, Stage: 1}
	base, err := Compute(q, req, 1, d)
	if err != nil {
		t.Fatal(err)
	}
	if base.Sensitivity != delta {
		t.Fatalf("Compute records sensitivity %v, Sensitivity says %v", base.Sensitivity, delta)
	}
	before := release(t, q, base)
	dist := func(rec []string) float64 {
		d2 := &memSource{header: d.header, rows: append(slices.Clone(d.rows), rec)}
		p, err := Compute(q, req, 1, d2)
		if err != nil {
			t.Fatal(err)
		}
		var s float64
		for k, v := range release(t, q, p) {
			for i := range v {
				s += (v[i] - before[k][i]) * (v[i] - before[k][i])
			}
		}
		return math.Sqrt(s)
	}
	for range 200 {
		rec := []string{"red", fmt.Sprint(0 + 30*rng.Float64()), fmt.Sprint(-5 + 10*rng.Float64())}
		if got := dist(rec); got > delta*(1+1e-12) {
			t.Fatalf("record %v moves the release by %v > sensitivity %v", rec, got, delta)
		}
	}
	for _, rec := range [][]string{{"red", "16", "3"}, {"white", "10", "1"}, {"rose", "99", "-7"}} {
		if got := dist(rec); math.Abs(got-delta) > 1e-9*delta {
			t.Errorf("corner record %v moves the release by %v; sensitivity %v should be tight", rec, got, delta)
		}
	}
}

// TestClipping: under privacy a site clips every numeric input to its
// bounds before computing; the result (with negligible noise) is the
// statistic of the clipped values.
func TestClipping(t *testing.T) {
	q := mustParse(t, `
name: clip
aggregates:
  - {name: s, fn: sum, column: x}
  - {name: m, fn: mean, column: x}
  - {name: h, fn: histogram, column: x, edges: [0, 2, 20, 200]}
privacy: {epsilon: 1, delta: 1e-6, bounds: {x: [1, 10]}}
`)
	m := &memSource{header: []string{"x"}, rows: [][]string{{"0"}, {"5"}, {"100"}, {"7"}}}
	res, _, err := run(t, q, []RowSource{m}, 1, func(i int, p *Partials) {
		if err := AddNoise(p, 1e-12, rand.New(rand.NewPCG(1, uint64(i)))); err != nil {
			t.Fatal(err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	got := res.Groups[0].Values
	// Clipped: 1, 5, 10, 7.
	if s := got["s"].(float64); math.Abs(s-23) > 1e-6 {
		t.Errorf("sum %v, want 23 (clipped 1+5+10+7)", s)
	}
	if m := got["m"].(float64); math.Abs(m-5.75) > 1e-6 {
		t.Errorf("mean %v, want 5.75", m)
	}
	h := got["h"].([]float64)
	if math.Abs(h[0]-1) > 1e-6 || math.Abs(h[1]-3) > 1e-6 || math.Abs(h[2]) > 1e-6 {
		t.Errorf("histogram %v, want [1 3 0]: 0 clipped to 1, 100 to 10", h)
	}
}

// TestNoiseWithinFewSigma: the noisy result on real data is within five
// standard deviations of the exact statistic of the clipped data.
func TestNoiseWithinFewSigma(t *testing.T) {
	q := mustParse(t, `
name: noisy
group_by: [label]
totals: true
aggregates:
  - {name: n, fn: count}
  - {name: s, fn: sum, column: mean_radius}
  - {name: m, fn: mean, column: mean_radius}
  - {name: h, fn: histogram, column: mean_radius, edges: [5, 10, 15, 20, 30]}
privacy: {epsilon: 1, delta: 1e-6, bounds: {mean_radius: [5, 30]}}
`)
	sites, union := breastCancer(t)
	const z = 1.0
	delta, _ := Sensitivity(q)
	sigma := z * delta
	for seed := range uint64(20) {
		res, stages, err := run(t, q, sites, 5, func(i int, p *Partials) {
			if err := AddNoise(p, z, rand.New(rand.NewPCG(seed, uint64(i)))); err != nil {
				t.Fatal(err)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if stages != 1 {
			t.Fatalf("a private query took %d stages", stages)
		}
		want := central(t, q, union) // no value is outside the bounds
		for _, g := range res.Groups {
			c := cellOf(q, g)
			w := want[c.key()]
			n := w["n"].(float64)
			s3 := math.Sqrt(3) * sigma // three sites' noise
			within := func(name string, got, want, sd float64) {
				if math.Abs(got-want) > 5*sd {
					t.Errorf("seed %d, cell %s, %s: %v is more than 5σ (σ = %v) from %v", seed, c, name, got, sd, want)
				}
			}
			within("count", g.Values["n"].(float64), n, s3)
			within("sum", g.Values["s"].(float64), w["s"].(float64), s3*math.Sqrt(1+17.5*17.5))
			mean := w["m"].(float64)
			within("mean", g.Values["m"].(float64), mean, s3/n*math.Sqrt(1+(mean-17.5)*(mean-17.5)))
			for i, b := range g.Values["h"].([]float64) {
				within(fmt.Sprintf("bin %d", i), b, w["h"].([]float64)[i], s3)
			}
		}
	}
}

// TestNoisyQuantileWithinFewSigma: a private median is the exact median's
// neighbourhood: its rank is off by at most five standard deviations of
// the noise on the cumulative count (64 bins, three sites), plus half a
// bin.
func TestNoisyQuantileWithinFewSigma(t *testing.T) {
	q := mustParse(t, `
name: noisy-median
group_by: [label]
totals: true
aggregates: [{name: med, fn: quantile, column: mean_radius, q: [0.25, 0.5, 0.75]}]
privacy: {epsilon: 1, delta: 1e-6, bounds: {mean_radius: [5, 30]}}
`)
	sites, union := breastCancer(t)
	const z = 1.0
	delta, _ := Sensitivity(q) // √(2 cells · 1)
	cumSD := math.Sqrt(3*PrivateQuantileBins) * z * delta
	for seed := range uint64(20) {
		res, _, err := run(t, q, sites, 5, func(i int, p *Partials) {
			if err := AddNoise(p, z, rand.New(rand.NewPCG(seed, uint64(i)))); err != nil {
				t.Fatal(err)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range res.Groups {
			c := cellOf(q, g)
			rows := float64(len(cellRows(union, c)))
			for i, p := range []float64{0.25, 0.5, 0.75} {
				got := g.Values["med"].([]any)[i].(float64)
				lo := numpyQuantileOf(union, q, c, "mean_radius", max(0, p-5*cumSD/rows))
				hi := numpyQuantileOf(union, q, c, "mean_radius", min(1, p+5*cumSD/rows))
				if half := 25.0 / PrivateQuantileBins / 2; got < lo-half || got > hi+half {
					t.Errorf("seed %d, cell %s: noisy quantile %v = %v outside [%v, %v]", seed, c, p, got, lo, hi)
				}
			}
		}
	}
}

func cellRows(union *memSource, c Cell) [][]string {
	li := slices.Index(union.header, "label")
	var out [][]string
	for _, r := range union.rows {
		if c.Total || r[li] == c.Group[0] {
			out = append(out, r)
		}
	}
	return out
}

// numpyQuantileOf is the exact quantile of a column in one cell of the
// union.
func numpyQuantileOf(union *memSource, q *Query, c Cell, column string, p float64) float64 {
	var xs []float64
	ci, li := slices.Index(union.header, column), slices.Index(union.header, "label")
	for _, r := range union.rows {
		if c.Total || r[li] == c.Group[0] {
			xs = append(xs, value(r[ci]).F)
		}
	}
	return numpyQuantile(xs, p)
}

// TestNoiseScale: AddNoise adds N(0, (z·Δ)²) to every released value:
// over many seeds the added noise has mean about 0 and standard deviation
// about z·Δ, independently of the value.
func TestNoiseScale(t *testing.T) {
	q := mustParse(t, privateSpec)
	d := wine(rand.New(rand.NewPCG(1, 1)), 200)
	req := &Request{Query: q, Stage: 1}
	base, err := Compute(q, req, 1, d)
	if err != nil {
		t.Fatal(err)
	}
	before := release(t, q, base)
	const z, runs = 0.7, 400
	var sum, sum2 float64
	var count int
	for seed := range uint64(runs) {
		p, _ := Compute(q, req, 1, d)
		if err := AddNoise(p, z, rand.New(rand.NewPCG(seed, 99))); err != nil {
			t.Fatal(err)
		}
		if p.NoiseStd != z*base.Sensitivity {
			t.Fatalf("NoiseStd %v, want z·Δ = %v", p.NoiseStd, z*base.Sensitivity)
		}
		for k, v := range release(t, q, p) {
			for i := range v {
				e := v[i] - before[k][i]
				sum += e
				sum2 += e * e
				count++
			}
		}
	}
	sigma := z * base.Sensitivity
	mean := sum / float64(count)
	sd := math.Sqrt(sum2/float64(count) - mean*mean)
	if math.Abs(mean) > 0.02*sigma || math.Abs(sd/sigma-1) > 0.02 {
		t.Fatalf("noise mean %v and sd %v over %d values; want 0 and %v", mean, sd, count, sigma)
	}
}

func TestAddNoiseRefuses(t *testing.T) {
	q := mustParse(t, privateSpec)
	d := wine(rand.New(rand.NewPCG(1, 1)), 50)
	rng := rand.New(rand.NewPCG(1, 2))
	fresh := func() *Partials {
		p, err := Compute(q, &Request{Query: q, Stage: 1}, 1, d)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	plain := mustParse(t, "name: plain\naggregates: [{name: n, fn: count}]\n")
	plainP, _ := Compute(plain, &Request{Query: plain, Stage: 1}, 1, d)
	noised := fresh()
	if err := AddNoise(noised, 1, rng); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		p    *Partials
		z    float64
		rng  *rand.Rand
		want string
	}{
		{"zero z", fresh(), 0, rng, "noise multiplier"},
		{"negative z", fresh(), -1, rng, "noise multiplier"},
		{"infinite z", fresh(), math.Inf(1), rng, "noise multiplier"},
		{"no rng", fresh(), 1, nil, "random source"},
		{"no privacy", plainP, 1, rng, "without privacy"},
		{"twice", noised, 1, rng, "already"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := AddNoise(tc.p, tc.z, tc.rng); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("AddNoise: %v, want an error about %q", err, tc.want)
			}
		})
	}
}

// TestPlannerRefusesUnnoised: a site that forgets AddNoise fails the query
// instead of publishing exact values.
func TestPlannerRefusesUnnoised(t *testing.T) {
	q := mustParse(t, privateSpec)
	d := wine(rand.New(rand.NewPCG(1, 1)), 100)
	_, _, err := run(t, q, []RowSource{d}, 1, nil)
	if err == nil || !strings.Contains(err.Error(), "without noise") {
		t.Fatalf("unnoised private partials: %v", err)
	}
}

// TestPrivateQuantileWithinHalfBin: read from an exact (noise-free)
// histogram, the private quantile is within half a bin of numpy's quantile
// of the clipped values.
func TestPrivateQuantileWithinHalfBin(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 8))
	const lo, hi = -3.0, 5.0
	w := (hi - lo) / PrivateQuantileBins
	qs := []float64{0, 0.01, 0.1, 0.25, 0.5, 0.77, 0.9, 1}
	for trial := range 200 {
		n := 1 + rng.IntN(300)
		xs := make([]float64, n)
		bins := make([]float64, PrivateQuantileBins)
		acc := &fineAcc{lo: lo, hi: hi, bins: make([]int64, PrivateQuantileBins)}
		for i := range xs {
			x := rng.NormFloat64() * 3
			if trial%3 == 0 {
				x = math.Round(x) // ties and gaps
			}
			xs[i] = clip(x, lo, hi)
			acc.add([]float64{xs[i]})
		}
		for i, c := range acc.release() {
			bins[i] = c
		}
		got := fineQuantiles(bins, lo, hi, qs)
		for i, q := range qs {
			want := numpyQuantile(xs, q)
			if g := got[i].(float64); math.Abs(g-want) > w/2+1e-12 {
				t.Fatalf("trial %d (n %d): quantile %v = %v, exact %v: more than half a bin (%v) off", trial, n, q, g, want, w/2)
			}
		}
	}
	// All mass noised away: null, not a made-up value.
	if got := fineQuantiles(make([]float64, PrivateQuantileBins), lo, hi, []float64{0.5}); got[0] != nil {
		t.Fatalf("quantile of nothing: %v", got[0])
	}
}

// TestPrivateDenominators: noise that drives counts to zero or below gives
// clamped, finite statistics, never a division by a non-positive count.
func TestPrivateDenominators(t *testing.T) {
	q := mustParse(t, privateSpec)
	a := func(name string) (*Aggregate, accEnv) {
		ag := q.aggregate(name)
		env := accEnv{private: true}
		cols, _ := functions[ag.Fn].inputs(ag)
		for _, c := range cols {
			env.lo, env.hi = append(env.lo, q.Privacy.Bounds[c][0]), append(env.hi, q.Privacy.Bounds[c][1])
		}
		return ag, env
	}
	for _, n := range []float64{-3, 0, 0.2, 1, 1.5} {
		for _, name := range []string{"m", "v", "c", "r"} {
			ag, env := a(name)
			m := functions[ag.Fn].newMerger(ag, env)
			v := make([]float64, functions[ag.Fn].width(ag, true))
			v[0] = n
			for i := 1; i < len(v); i++ {
				v[i] = 5 * float64(i)
			}
			if err := m.add(v); err != nil {
				t.Fatal(err)
			}
			got := mustJSON(t, m.value())
			if strings.Contains(string(got), "Inf") || strings.Contains(string(got), "NaN") {
				t.Errorf("n=%v, %s: %s", n, name, got)
			}
			if name == "m" {
				if x := m.value().(float64); x < 10 || x > 16 {
					t.Errorf("n=%v: mean %v outside the bounds [10, 16]", n, x)
				}
			}
			if name == "v" {
				if x := m.value().(float64); x < 0 {
					t.Errorf("n=%v: variance %v is negative", n, x)
				}
			}
		}
	}
}

// TestPrivateQuantileUnbiased: empty bins' noise must not drag quantiles
// towards them. With the data in the lowest quarter of the bounds, the
// average noisy median over many draws is the true one.
func TestPrivateQuantileUnbiased(t *testing.T) {
	const lo, hi, sigma, draws = 0.0, 64.0, 10.0, 400
	acc := &fineAcc{lo: lo, hi: hi, bins: make([]int64, PrivateQuantileBins)}
	var xs []float64
	for i := range 1000 {
		x := float64(i%997) * 16 / 997
		xs = append(xs, x)
		acc.add([]float64{x})
	}
	exact := acc.release()
	rng := rand.New(rand.NewPCG(21, 34))
	var sum float64
	for range draws {
		noisy := make([]float64, len(exact))
		for i, c := range exact {
			noisy[i] = c + sigma*rng.NormFloat64()
		}
		sum += fineQuantiles(noisy, lo, hi, []float64{0.5})[0].(float64)
	}
	if mean, want := sum/draws, numpyQuantile(xs, 0.5); math.Abs(mean-want) > 0.3 {
		t.Fatalf("average noisy median %v; the exact median is %v", mean, want)
	}
}
