package analytics

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// batchSource serves a memSource's rows a batch at a time, as a site's
// dataset does: batches of random sizes, each column as numbers wherever
// every cell of the batch is a finite number or empty (sometimes as cells
// anyway), as cells otherwise. typed drops a number's text, in Scan's rows
// and in the batches alike, as a Parquet or PostgreSQL column does.
type batchSource struct {
	m     *memSource
	typed bool
	seed  uint64
}

func (b *batchSource) cell(s string) Value {
	v := value(s)
	if b.typed && v.Num && !math.IsNaN(v.F) && !math.IsInf(v.F, 0) {
		v.S = ""
	}
	return v
}

func (b *batchSource) Scan(columns []string, fn func([]Value) error) error {
	idx, err := indexes(b.m.header, columns)
	if err != nil {
		return err
	}
	row := make([]Value, len(columns))
	for _, r := range b.m.rows {
		for i, j := range idx {
			row[i] = b.cell(r[j])
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	return nil
}

func (b *batchSource) ScanBatches(columns []string, fn func(*Batch) error) error {
	idx, err := indexes(b.m.header, columns)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(b.seed, 1))
	for start := 0; start < len(b.m.rows); {
		n := min(1+rng.IntN(300), len(b.m.rows)-start)
		batch := &Batch{Len: n, Cols: make([]Column, len(columns))}
		for k, j := range idx {
			cells := make([]Value, n)
			numbers := rng.IntN(8) > 0 // now and then as cells although numbers would do
			for i := range n {
				cells[i] = b.cell(b.m.rows[start+i][j])
				v := cells[i]
				numbers = numbers && (v == Value{} || v.Num && !math.IsNaN(v.F) && !math.IsInf(v.F, 0))
			}
			if !numbers {
				batch.Cols[k] = Column{V: cells}
				continue
			}
			c := Column{F: make([]float64, n)}
			for i, v := range cells {
				c.F[i] = v.F
				if v == (Value{}) {
					if c.Null == nil {
						c.Null = make([]bool, n)
					}
					c.Null[i] = true
				}
				if v.S != "" {
					if c.S == nil {
						c.S = make([]string, n)
					}
					c.S[i] = v.S
				}
			}
			batch.Cols[k] = c
		}
		if err := fn(batch); err != nil {
			return err
		}
		start += n
	}
	return nil
}

// batchTestRows: groups by text (one of them missing now and then) and by
// numbers spelled several ways, numbers with missing values, NA markers and
// negative zeros, and a text column.
func batchTestRows(n int, seed uint64) *memSource {
	rng := rand.New(rand.NewPCG(seed, 2))
	m := &memSource{header: []string{"g", "h", "x", "y", "z", "t"}}
	num := func(p float64) string {
		switch r := rng.Float64(); {
		case r < p:
			return ""
		case r < p*1.3:
			return []string{"NA", "nan", "-0", "0"}[rng.IntN(4)]
		}
		return strconv.FormatFloat(math.Round(rng.NormFloat64()*1000)/100+10, 'g', -1, 64)
	}
	for i := range n {
		g := []string{"a", "b", "c", "d"}[rng.IntN(4)]
		if rng.IntN(50) == 0 {
			g = ""
		}
		h := []string{"1", "1.0", "2", "2e0", "3"}[rng.IntN(5)]
		t := []string{"p", "q", "r", ""}[rng.IntN(4)]
		m.rows = append(m.rows, []string{g, h, num(0.05), num(0.02), strconv.Itoa(i % 97), t})
	}
	return m
}

// batchTestQueries cover every aggregate fn, ungrouped and grouped (by
// text, by numbers, by both with totals), with where conditions on numbers
// and on text, with and without privacy bounds. Histogram hd has edges the
// data holds, in steps no float64 spans exactly.
var batchTestQueries = []string{
	`aggregates:
  - {name: n, fn: count}
  - {name: nx, fn: count, column: x}
  - {name: nt, fn: count, column: t}
  - {name: s, fn: sum, column: x}
  - {name: m, fn: mean, column: y}
  - {name: v, fn: variance, column: x}
  - {name: sd, fn: stddev, column: z}
  - {name: h, fn: histogram, column: x, edges: [0, 2.5, 5, 7.5, 10, 12.5, 15, 17.5, 20]}
  - {name: hu, fn: histogram, column: y, edges: [-20, 0, 9, 9.5, 10, 11, 40]}
  - {name: hd, fn: histogram, column: x, edges: [0.3, 0.6, 0.9, 1.2, 1.5, 1.8, 2.1, 2.4, 2.7, 3.0, 3.3, 3.6, 3.9, 4.2, 4.5, 4.8, 5.1, 5.4, 5.7, 6.0, 6.3, 6.6, 6.9, 7.2, 7.5, 7.8, 8.1, 8.4, 8.7, 9.0, 9.3, 9.6, 9.9, 10.2, 10.5, 10.8, 11.1, 11.4, 11.7, 12.0, 12.3, 12.6, 12.9, 13.2, 13.5, 13.8, 14.1, 14.4, 14.7, 15.0, 15.3, 15.6, 15.9, 16.2, 16.5, 16.8, 17.1, 17.4, 17.7, 18.0, 18.3, 18.6, 18.9, 19.2, 19.5, 19.8, 20.1, 20.4, 20.7, 21.0]}
  - {name: q, fn: quantile, column: x, q: [0, 0.1, 0.5, 0.99, 1]}
  - {name: c, fn: correlation, columns: [x, y, z]}
  - {name: r, fn: linear_regression, label: y, columns: [x, z]}`,
	`group_by: [g]
where: [{column: x, op: ">", value: 8}, {column: z, op: "<=", value: 80}]
aggregates:
  - {name: n, fn: count}
  - {name: s, fn: sum, column: y}
  - {name: v, fn: variance, column: y}
  - {name: h, fn: histogram, column: y, edges: [0, 5, 10, 15, 20]}
  - {name: q, fn: quantile, column: y, q: [0.5]}`,
	`group_by: [h]
totals: true
where: [{column: t, op: "!=", value: q}, {column: y, op: ">=", value: 3}]
aggregates:
  - {name: n, fn: count}
  - {name: nx, fn: count, column: x}
  - {name: m, fn: mean, column: x}
  - {name: sd, fn: stddev, column: x}
  - {name: h, fn: histogram, column: x, edges: [-100, 5, 10, 12, 100]}
  - {name: c, fn: correlation, columns: [x, y]}`,
	`group_by: [g, h]
totals: true
where: [{column: h, op: in, value: [1, "2e0", 3]}, {column: x, op: "<", value: 30}]
aggregates:
  - {name: n, fn: count}
  - {name: s, fn: sum, column: x}
  - {name: m, fn: mean, column: z}
  - {name: h, fn: histogram, column: z, edges: [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]}
  - {name: r, fn: linear_regression, label: x, columns: [y]}`,
	`where: [{column: x, op: "==", value: 0}]
aggregates: [{name: n, fn: count}, {name: s, fn: sum, column: x}]`,
	`group_by: [t]
totals: true
aggregates:
  - {name: n, fn: count}
  - {name: s, fn: sum, column: x}
  - {name: m, fn: mean, column: y}
  - {name: v, fn: variance, column: z}
  - {name: h, fn: histogram, column: x, edges: [0, 4, 8, 12, 16, 20]}
  - {name: q, fn: quantile, column: x, q: [0.25, 0.75]}
  - {name: c, fn: correlation, columns: [x, z]}
privacy: {epsilon: 1, delta: 1e-6, bounds: {x: [0, 15], y: [-5, 12], z: [0, 60]}}`,
}

// TestBatchesSameAsRows: a query over a BatchSource (where, group_by and
// the aggregates over columns) answers bit for bit as over its rows one by
// one, for every aggregate fn, at every stage: the same partials, the same
// result.
func TestBatchesSameAsRows(t *testing.T) {
	m := batchTestRows(3000, 1)
	for qi, spec := range batchTestQueries {
		for _, typed := range []bool{false, true} {
			t.Run(fmt.Sprintf("query-%d/typed=%v", qi, typed), func(t *testing.T) {
				q := mustParse(t, "name: q\n"+spec)
				rows := &batchSource{m: m, typed: typed}
				for seed := range uint64(3) {
					batches := &batchSource{m: m, typed: typed, seed: seed}
					// Stage 1: the same partials.
					req := &Request{Query: q, Stage: 1}
					want, err := Compute(q, req, 1, rowsOnly{rows})
					if err != nil {
						t.Fatal(err)
					}
					got, err := Compute(q, req, 1, batches)
					if err != nil {
						t.Fatal(err)
					}
					if w, g := mustJSON(t, want), mustJSON(t, got); !bytes.Equal(w, g) {
						t.Fatalf("seed %d: stage 1 partials over batches\n%s\nover rows\n%s", seed, g, w)
					}
					// Every stage: the same result (under privacy, the same noise).
					var prepare func(int, *Partials)
					if q.Privacy != nil {
						prepare = func(i int, p *Partials) {
							if err := AddNoise(p, 0.5, rand.New(rand.NewPCG(uint64(i), 9))); err != nil {
								t.Fatal(err)
							}
						}
					}
					wantRes, wantStages, err := run(t, q, []RowSource{rowsOnly{rows}, rowsOnly{rows}}, 1, prepare)
					if err != nil {
						t.Fatal(err)
					}
					gotRes, gotStages, err := run(t, q, []RowSource{batches, batches}, 1, prepare)
					if err != nil {
						t.Fatal(err)
					}
					if w, g := mustJSON(t, wantRes), mustJSON(t, gotRes); !bytes.Equal(w, g) || gotStages != wantStages {
						t.Fatalf("seed %d: result over batches (%d stages)\n%s\nover rows (%d stages)\n%s", seed, gotStages, g, wantStages, w)
					}
				}
			})
		}
	}
}

// rowsOnly hides a source's ScanBatches: Compute reads it row by row.
type rowsOnly struct{ RowSource }

// TestBatchErrorsSameAsRows: over batches a bad row is refused with the
// error the rows give, naming the same row, whichever step it fails in
// and whatever later row fails earlier steps.
func TestBatchErrorsSameAsRows(t *testing.T) {
	long := strings.Repeat("w", MaxTextBytes+1)
	rows := func(edit func(i int, r []string)) *memSource {
		m := batchTestRows(2000, 3)
		for i, r := range m.rows {
			edit(i, r)
		}
		return m
	}
	many := rows(func(i int, r []string) { r[1] = strconv.Itoa(i) })
	for _, tc := range []struct {
		name, spec string
		m          *memSource
		want       string
	}{
		{"text in a sum", "aggregates: [{name: s, fn: sum, column: x}]",
			rows(func(i int, r []string) {
				if i == 1500 {
					r[2] = "abc"
				}
			}), `column x, row 1501: "abc" is not a number`},
		{"infinite in a histogram", "aggregates: [{name: h, fn: histogram, column: y, edges: [0, 1]}]",
			rows(func(i int, r []string) {
				if i == 700 {
					r[3] = "-inf"
				}
			}), `column y, row 701: "-inf" is infinite`},
		{"text in an ordering, after a long group", "group_by: [g]\nwhere: [{column: t, op: '>', value: 1}, {column: x, op: '<', value: 1000}]\naggregates: [{name: n, fn: count}]",
			rows(func(i int, r []string) {
				r[5] = "2" // t is a number …
				if i == 1801 {
					r[5] = "p" // … but here
				}
				if i == 1802 {
					r[0] = long
				}
			}), `column t, row 1802: "p" is not a number; where[0] compares it with > 1`},
		{"a long group, before text in an ordering", "group_by: [g]\nwhere: [{column: t, op: '>', value: 1}]\naggregates: [{name: n, fn: count}]",
			rows(func(i int, r []string) {
				r[5] = "2"
				if i == 1802 {
					r[5] = "p"
				}
				if i == 1801 {
					r[0] = long
				}
			}), `column g, row 1802: a group_by value of 1025 bytes`},
		{"too many groups", "group_by: [h]\naggregates: [{name: n, fn: count}]",
			many, `more than 1000 distinct groups (group 1001 first appears at row 1001)`},
		{"too many groups, filtered", "group_by: [h]\nwhere: [{column: z, op: '>', value: 0}]\naggregates: [{name: n, fn: count}]",
			many, `more than 1000 distinct groups (group 1001 first appears at row 10`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := mustParse(t, "name: q\n"+tc.spec)
			req := &Request{Query: q, Stage: 1}
			_, want := Compute(q, req, 1, rowsOnly{tc.m})
			if want == nil || !strings.Contains(want.Error(), tc.want) {
				t.Fatalf("over rows: %v; want an error containing %q", want, tc.want)
			}
			for seed := range uint64(4) {
				_, got := Compute(q, req, 1, &batchSource{m: tc.m, seed: seed})
				if got == nil || got.Error() != want.Error() {
					t.Fatalf("seed %d: over batches: %v\nover rows: %v", seed, got, want)
				}
			}
		})
	}
}

// TestHistogramBins: the bin search of a column of values agrees with
// numpy.histogram's rule (bin), value by value, for equally and unequally
// spaced edges, on the edges themselves, just beside them and outside.
func TestHistogramBins(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, edges := range [][]float64{
		{0, 12.5, 25, 37.5, 50, 62.5, 75, 87.5, 100},
		{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7},
		{-3, 1},
		{6, 10, 12, 14, 18, 30},
		{-1e300, 0, 1e300},
		{1, 1.0000000000000002, 1.0000000000000004},
		{0, 1e-300, 1},
		thousandBins(),
	} {
		var xs []float64
		for _, e := range edges {
			xs = append(xs, e, math.Nextafter(e, math.Inf(1)), math.Nextafter(e, math.Inf(-1)))
		}
		lo, hi := edges[0], edges[len(edges)-1]
		for range 2000 {
			xs = append(xs, lo+(hi-lo)*(rng.Float64()*1.2-0.1))
		}
		h := newHistAcc(edges)
		h.addCol(xs)
		want := make([]int64, len(edges)-1)
		in := int64(0)
		for _, x := range xs {
			if b := bin(edges, x); b >= 0 {
				want[b]++
				in++
			}
		}
		for i := range want {
			if h.counts[i] != want[i] || h.n() != in {
				t.Fatalf("edges %v: counts %v (n %d), numpy's rule %v (n %d)", edges, h.counts, h.n(), want, in)
			}
		}
	}
}

// thousandBins are 1000 bins of uneven widths.
func thousandBins() []float64 {
	e := []float64{0}
	for i := range 1000 {
		e = append(e, e[i]+1+float64(i%7)/3)
	}
	return e
}
