package analytics

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestComputeErrors(t *testing.T) {
	m := &memSource{header: []string{"g", "x", "t"}, rows: [][]string{{"a", "1", "p"}, {"a", "2", "q"}, {"b", "abc", "r"}, {"b", "inf", "s"}}}
	for _, tc := range []struct {
		name, spec, want string
	}{
		{"unknown column", "aggregates: [{name: m, fn: mean, column: alcohol}]", `unknown column "alcohol"; available: g, x, t`},
		{"unknown group_by column", "group_by: [label]\naggregates: [{name: n, fn: count}]", `unknown column "label"; available: g, x, t`},
		{"text in a mean", "aggregates: [{name: m, fn: mean, column: x}]", `column x, row 3: "abc" is not a number; aggregate m (fn mean) needs numbers`},
		{"text in a correlation", "aggregates: [{name: c, fn: correlation, columns: [x, t]}]", `column t, row 1: "p" is not a number; aggregate c (fn correlation) needs numbers`},
		{"infinite", "where: [{column: g, op: '==', value: b}]\naggregates: [{name: s, fn: sum, column: x}]\n", `column x, row 3: "abc" is not a number`},
		{"infinite only", "where: [{column: x, op: '!=', value: abc}]\naggregates: [{name: s, fn: sum, column: x}]\n", `column x, row 4: "inf" is infinite`},
		{"text in an ordering", "where: [{column: t, op: '>', value: 1}]\naggregates: [{name: n, fn: count}]", `column t, row 1: "p" is not a number; where[0] compares it with > 1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := mustParse(t, "name: q\n"+tc.spec)
			_, err := Compute(q, &Request{Query: q, Stage: 1}, 1, m)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Compute: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// A source that cannot list its columns still names the unknown one,
	// through Scan.
	q := mustParse(t, "name: q\naggregates: [{name: m, fn: mean, column: alcohol}]")
	_, err := Compute(q, &Request{Query: q, Stage: 1}, 1, csvSource{"../testdata/breast-cancer/eu-paris.csv"})
	if err == nil || !strings.Contains(err.Error(), `unknown column "alcohol"; available: mean_radius`) {
		t.Fatalf("CSV source: %v", err)
	}
}

// TestMissingValues pins the missing-value rules: conditions on a missing
// cell fail, a row missing its group is in no cell (total included), an
// aggregate skips rows missing any of its columns, and count with a column
// counts the present values.
func TestMissingValues(t *testing.T) {
	m := &memSource{header: []string{"g", "x", "y"}, rows: [][]string{
		{"a", "1", "10"},
		{"a", "", "20"},   // x missing
		{"a", "NA", "30"}, // x missing
		{"a", "4", "nan"}, // y missing
		{"a", "5", "50"},
		{"", "100", "100"},   // no group: dropped, total included
		{"NULL", "100", "1"}, // no group
		{"b", "2", "2"},
	}}
	q := mustParse(t, `
name: missing
group_by: [g]
totals: true
where: [{column: y, op: "!=", value: 999}]
aggregates:
  - {name: n, fn: count}
  - {name: nx, fn: count, column: x}
  - {name: mx, fn: mean, column: x}
  - {name: c, fn: correlation, columns: [x, y]}
`)
	res, _, err := run(t, q, []RowSource{m}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := groupOf2(t, res, "a")
	// where on y: the row with y missing fails y != 999.
	if a.Values["n"] != 4.0 || a.Values["nx"] != 2.0 || a.Values["mx"] != 3.0 {
		t.Errorf("group a: %v; want n 4 (y missing fails where), nx 2, mx (1+5)/2 = 3", a.Values)
	}
	total := groupOf2(t, res, "")
	if total.Values["n"] != 5.0 {
		t.Errorf("total n %v; want 5: rows without a group are not in the total", total.Values["n"])
	}
	// Correlation over complete rows of group a: (1,10), (5,50): exactly 1.
	if c := a.Values["c"].([][]any); c[0][1] != 1.0 {
		t.Errorf("correlation %v", c)
	}
}

func groupOf2(t testing.TB, res *Result, g string) Group {
	t.Helper()
	for _, x := range res.Groups {
		if x.Group["g"] == g || (g == "" && len(x.Group) == 0) {
			return x
		}
	}
	t.Fatalf("no group %q", g)
	return Group{}
}

// TestEmptyResult: a where that keeps no row gives a clear empty result,
// not an error.
func TestEmptyResult(t *testing.T) {
	sites, _ := breastCancer(t)
	q := mustParse(t, `
name: nothing
where: [{column: mean_radius, op: ">", value: 1000}]
aggregates:
  - {name: n, fn: count}
  - {name: s, fn: sum, column: mean_radius}
  - {name: m, fn: mean, column: mean_radius}
  - {name: v, fn: variance, column: mean_radius}
  - {name: h, fn: histogram, column: mean_radius, edges: [0, 10, 20]}
  - {name: q, fn: quantile, column: mean_radius, q: [0.5, 1]}
  - {name: c, fn: correlation, columns: [mean_radius, mean_area]}
  - {name: r, fn: linear_regression, label: mean_radius, columns: [mean_area]}
`)
	res, _, err := run(t, q, sites, 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"query_id":"","status":"","groups":[{"group":{},"values":{"c":[[null,null],[null,null]],"h":[0,0],"m":null,"n":0,"q":[null,null],"r":null,"s":0,"v":null},"suppressed":false}],"epsilon_spent":0,"sites":[]}`
	if got := string(mustJSON(t, res)); got != want {
		t.Fatalf("empty result\n got %s\nwant %s", got, want)
	}
	q.GroupBy, q.Totals = []string{"label"}, true
	res, _, err = run(t, q, sites, 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Groups) != 1 || len(res.Groups[0].Group) != 0 || res.Groups[0].Values["n"] != 0.0 {
		t.Fatalf("grouped empty result: %s", mustJSON(t, res))
	}
}

// TestNumericGroups: a numeric group_by column groups by exact value in
// canonical form, and groups are ordered by value.
func TestNumericGroups(t *testing.T) {
	m := &memSource{header: []string{"k", "x"}}
	for i, k := range []string{"1", "1.0", "1e0", "10", "2", "2.50", "2.5", "b", "a", "-0", "0"} {
		m.rows = append(m.rows, []string{k, fmt.Sprint(i)})
	}
	q := mustParse(t, "name: q\ngroup_by: [k]\naggregates: [{name: n, fn: count}]\n")
	res, _, err := run(t, q, []RowSource{m}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range res.Groups {
		got = append(got, fmt.Sprintf("%s:%v", g.Group["k"], g.Values["n"]))
	}
	if want := "0:2 1:3 2:1 2.5:2 10:1 a:1 b:1"; strings.Join(got, " ") != want {
		t.Fatalf("groups %s, want %s", got, want)
	}
}

// TestQuantileExactOnHardData: values with ties, both zeros, subnormals,
// huge magnitudes and both signs, split over three sites: every quantile
// equals numpy's definition computed by sorting, bit for bit, within the
// stage bound.
func TestQuantileExactOnHardData(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 17))
	special := []float64{0, math.Copysign(0, -1), 5e-324, -5e-324, math.MaxFloat64, -math.MaxFloat64, 1, 1, 1, 1e300, -1e-300, math.Nextafter(1, 2), 0.1, 0.2, 0.30000000000000004}
	q := mustParse(t, "name: q\ngroup_by: [g]\ntotals: true\naggregates: [{name: q, fn: quantile, column: x, q: [0, 0.001, 0.333, 0.5, 0.75, 0.999, 1]}]\n")
	for trial := range 5 {
		var sites []RowSource
		var all []float64
		byGroup := map[string][]float64{}
		for range 3 {
			m := &memSource{header: []string{"g", "x"}}
			for range 1 + rng.IntN(60) {
				var x float64
				switch rng.IntN(3) {
				case 0:
					x = special[rng.IntN(len(special))]
				case 1:
					x = math.Round(rng.NormFloat64() * 3)
				default:
					x = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(40)-20))
				}
				g := []string{"a", "b"}[rng.IntN(2)]
				m.rows = append(m.rows, []string{g, fmt.Sprint(x)})
				all = append(all, x+0)
				byGroup[g] = append(byGroup[g], x+0)
			}
			sites = append(sites, m)
		}
		res, stages, err := run(t, q, sites, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		if stages > 8 {
			t.Errorf("trial %d: %d stages; at most 1 + ⌈64/10⌉ = 8", trial, stages)
		}
		for _, g := range res.Groups {
			xs := all
			if len(g.Group) > 0 {
				xs = byGroup[g.Group["g"]]
			}
			for i, p := range q.Aggregates[0].Q {
				got := g.Values["q"].([]any)[i]
				if len(xs) == 0 {
					if got != nil {
						t.Errorf("trial %d: quantile of nothing: %v", trial, got)
					}
					continue
				}
				want := numpyQuantile(xs, p)
				if got == nil || math.Float64bits(got.(float64)+0) != math.Float64bits(want+0) {
					t.Errorf("trial %d, group %v: quantile %v = %v, want %v", trial, g.Group, p, got, want)
				}
			}
		}
	}
}

// changing is a source whose rows change after its first scan.
type changing struct {
	memSource
}

func (c *changing) Scan(columns []string, fn func([]Value) error) error {
	if c.scans == 1 {
		c.rows = append(c.rows, c.rows...)
	}
	return c.memSource.Scan(columns, fn)
}

// TestDataChangedBetweenStages: exact quantiles need the same rows at every
// stage; counts that contradict stage 1 fail the query with a clear error.
func TestDataChangedBetweenStages(t *testing.T) {
	q := mustParse(t, "name: q\naggregates: [{name: q, fn: quantile, column: x, q: [0.5]}]\n")
	c := &changing{memSource{header: []string{"x"}}}
	for i := range 50 {
		c.rows = append(c.rows, []string{fmt.Sprint(i)})
	}
	_, _, err := run(t, q, []RowSource{c}, 1, nil)
	if err == nil || !strings.Contains(err.Error(), "did the data change between stages") {
		t.Fatalf("changed data: %v", err)
	}
}

// generated streams n rows without holding them.
type generated struct{ n int }

func (g generated) Scan(columns []string, fn func([]Value) error) error {
	row := make([]Value, len(columns))
	for i := range g.n {
		for j := range columns {
			x := float64((i*7919 + j*104729) % 1000)
			if j == 0 {
				x = float64(i % 7)
			}
			row[j] = Value{S: "", F: x, Num: true}
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	return nil
}

// TestMemoryFlatInRows: a site's memory does not grow with its rows: the
// heap in use after scanning 400 000 rows is within a small margin of that
// after 40 000.
func TestMemoryFlatInRows(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: scans 440 000 rows")
	}
	q := mustParse(t, `
name: big
group_by: [g]
totals: true
aggregates:
  - {name: n, fn: count}
  - {name: v, fn: variance, column: x}
  - {name: h, fn: histogram, column: x, edges: [0, 250, 500, 750, 1000]}
  - {name: q, fn: quantile, column: x, q: [0.5]}
  - {name: c, fn: correlation, columns: [x, y]}
`)
	heapAfter := func(n int) uint64 {
		var peak uint64
		src := sampling{generated{n}, &peak}
		if _, err := Compute(q, &Request{Query: q, Stage: 1}, 1, src); err != nil {
			t.Fatal(err)
		}
		return peak
	}
	small, large := heapAfter(40_000), heapAfter(400_000)
	if large > small+1<<20 {
		t.Fatalf("heap in use while scanning: %d bytes for 40 000 rows, %d for 400 000", small, large)
	}
}

// sampling records the live heap near the end of a scan.
type sampling struct {
	generated
	peak *uint64
}

func (s sampling) Scan(columns []string, fn func([]Value) error) error {
	i := 0
	return s.generated.Scan(columns, func(row []Value) error {
		if i++; i == s.n-1 {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			*s.peak = ms.HeapAlloc
		}
		return fn(row)
	})
}

// TestPartialsHoldNoRowValues: no raw value from a site's rows appears in
// what it releases, for a query that has no aggregate a single value
// could pass through unchanged (count, sums of many, histograms).
func TestPartialsHoldNoRowValues(t *testing.T) {
	m := loadCSV(t, "../testdata/breast-cancer/sg-singapore.csv")
	q := mustParse(t, `
name: no-rows
group_by: [label]
aggregates:
  - {name: n, fn: count}
  - {name: v, fn: variance, column: mean_radius}
  - {name: q, fn: quantile, column: mean_radius, q: [0.5]}
`)
	raw := map[float64]bool{}
	ci := slices.Index(m.header, "mean_radius")
	for _, r := range m.rows {
		raw[value(r[ci]).F] = true
	}
	p, err := Compute(q, &Request{Query: q, Stage: 1}, 5, m)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range p.Cells {
		for name, v := range c.Values {
			for _, x := range v {
				if raw[x] {
					t.Errorf("cell %s, %s releases %v, a value of a row", c.Cell, name, x)
				}
			}
		}
	}
}

// TestHistogramEdges pins numpy.histogram's bins: [e_i, e_i+1), the last
// closed, values outside not counted.
func TestHistogramEdges(t *testing.T) {
	q := mustParse(t, "name: q\naggregates: [{name: h, fn: histogram, column: x, edges: [1, 2, 4]}]\n")
	m := &memSource{header: []string{"x"}}
	for _, x := range []string{"0.999", "1", "1.5", "2", "3.999", "4", "4.0001", "-7", "100"} {
		m.rows = append(m.rows, []string{x})
	}
	res, _, err := run(t, q, []RowSource{m}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	// [1, 2): 1, 1.5; [2, 4]: 2, 3.999, 4.
	if got := res.Groups[0].Values["h"].([]float64); !slices.Equal(got, []float64{2, 3}) {
		t.Fatalf("histogram %v, want [2 3]", got)
	}
}
