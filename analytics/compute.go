package analytics

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Compute is a site's answer to one stage of a query: it streams rows once,
// keeping one accumulator per cell and aggregate (memory grows with groups
// times aggregates, never with rows), applies disclosure control with k,
// and returns only mergeable partials. Under privacy the caller must then
// apply AddNoise before anything leaves the site.
//
// k is the site's minimum records per cell, the larger of the query's
// min_count and the site policy's; Compute uses at least q.MinCount
// whatever is passed. A cell holding 1 to k−1 records, or 1 to k−1 values
// for any aggregate, is withheld, and further cells (or the total) are
// withheld so that the total cannot reveal it (see the package doc).
//
// req.Query, when set, must be q.
func Compute(q *Query, req *Request, k int, rows RowSource) (*Partials, error) {
	if req == nil {
		return nil, errors.New("compute: no request")
	}
	if rows == nil {
		return nil, errors.New("compute: no row source")
	}
	if err := req.check(q); err != nil {
		return nil, fmt.Errorf("compute: %w", err)
	}
	s := newSiteRun(q, req, max(k, q.MinCount, 1))
	if l, ok := rows.(ColumnLister); ok {
		have, err := l.Columns()
		if err != nil {
			return nil, fmt.Errorf("compute: list columns: %w", err)
		}
		for _, c := range s.cols {
			if !slices.Contains(have, c) {
				return nil, fmt.Errorf("compute: unknown column %q; available: %s", c, strings.Join(have, ", "))
			}
		}
	}
	var err error
	if bs, ok := rows.(BatchSource); ok {
		err = bs.ScanBatches(s.cols, s.batch)
	} else {
		err = rows.Scan(s.cols, s.row)
	}
	if err != nil {
		return nil, fmt.Errorf("compute: %w", err)
	}
	return s.partials()
}

// siteRun is one stage's scan at a site.
type siteRun struct {
	q     *Query
	req   *Request
	k     int64
	cols  []string
	conds []siteCond
	group []int // indexes of the group_by columns
	aggs  []siteAgg
	// thresholds[cell key][aggregate index] are the stage's quantile
	// thresholds as order keys.
	thresholds map[string]map[int][]uint64

	rowNum    int64
	groups    map[string]*siteCell
	total     *siteCell
	parts     []string // a row's group values, as text
	groupVals []Value  // … as cells
	present   []bool
	bs        batchState // a BatchSource's batches (batch.go)
}

type siteCond struct {
	col   int
	where string // where[i], for errors
	c     Condition
}

type siteAgg struct {
	a       *Aggregate
	f       function
	names   []string // input columns
	use     string   // "aggregate x (fn mean)", for errors
	cols    []int
	numeric bool
	lo, hi  []float64 // privacy bounds of the numeric inputs
	xs      []float64 // this row's inputs
}

type siteCell struct {
	cell Cell
	rows int64
	accs []acc
	// slot is the cell's place among the cells of the batch being taken
	// when epoch is that batch's (batch.go).
	epoch int64
	slot  int
}

func newSiteRun(q *Query, req *Request, k int) *siteRun {
	s := &siteRun{q: q, req: req, k: int64(k), groups: map[string]*siteCell{}, thresholds: map[string]map[int][]uint64{}}
	col := func(name string) int {
		if i := slices.Index(s.cols, name); i >= 0 {
			return i
		}
		s.cols = append(s.cols, name)
		return len(s.cols) - 1
	}
	for i, c := range q.Where {
		s.conds = append(s.conds, siteCond{col: col(c.Column), where: fmt.Sprintf("where[%d]", i), c: c})
	}
	for _, g := range q.GroupBy {
		s.group = append(s.group, col(g))
	}
	for i := range q.Aggregates {
		a := &q.Aggregates[i]
		f := functions[a.Fn]
		names, numeric := f.inputs(a)
		sa := siteAgg{a: a, f: f, names: names, use: fmt.Sprintf("aggregate %s (fn %s)", a.Name, a.Fn), numeric: numeric, xs: make([]float64, len(names))}
		for _, n := range names {
			sa.cols = append(sa.cols, col(n))
			if b := q.bounds(n); numeric && b != nil {
				sa.lo, sa.hi = append(sa.lo, b[0]), append(sa.hi, b[1])
			}
		}
		s.aggs = append(s.aggs, sa)
	}
	for _, ts := range req.Thresholds {
		k := ts.Cell.key()
		if s.thresholds[k] == nil {
			s.thresholds[k] = map[int][]uint64{}
		}
		keys := make([]uint64, len(ts.Thresholds))
		for i, t := range ts.Thresholds {
			keys[i] = orderKey(t)
		}
		s.thresholds[k][slices.IndexFunc(q.Aggregates, func(a Aggregate) bool { return a.Name == ts.Aggregate })] = keys
	}
	s.parts = make([]string, len(s.group))
	s.groupVals = make([]Value, len(s.group))
	s.present = make([]bool, len(s.aggs))
	if q.hasTotal() {
		s.total = s.newCell(Cell{Total: true})
	}
	return s
}

func (s *siteRun) newCell(c Cell) *siteCell {
	sc := &siteCell{cell: c}
	th := s.thresholds[c.key()]
	for i, sa := range s.aggs {
		env := accEnv{private: s.q.private(), lo: sa.lo, hi: sa.hi, thresholds: th[i]}
		sc.accs = append(sc.accs, sa.f.newAcc(sa.a, env))
	}
	return sc
}

// row takes one row: filter, group, then every aggregate's inputs.
func (s *siteRun) row(row []Value) error {
	s.rowNum++
	if len(row) != len(s.cols) {
		return fmt.Errorf("row %d: the source gave %d values for %d columns", s.rowNum, len(row), len(s.cols))
	}
	for _, c := range s.conds {
		ok, err := c.match(row[c.col], s.rowNum)
		if err != nil || !ok {
			return err
		}
	}
	var g *siteCell
	if len(s.group) > 0 {
		for i, ci := range s.group {
			s.groupVals[i] = row[ci]
		}
		var err error
		if g, err = s.cellFor(s.groupVals, s.rowNum); err != nil || g == nil {
			return err
		}
	}
	for i := range s.aggs {
		ok, err := s.aggs[i].read(row, s.rowNum)
		if err != nil {
			return err
		}
		s.present[i] = ok
	}
	for _, c := range []*siteCell{g, s.total} {
		if c == nil {
			continue
		}
		c.rows++
		for i, ok := range s.present {
			if ok {
				c.accs[i].add(s.aggs[i].xs)
			}
		}
	}
	return nil
}

// cellFor is the cell of a row whose group_by cells are vals, created on
// the group's first row; nil when one is missing (the row is in no cell).
// rowNum names the row in an error.
func (s *siteRun) cellFor(vals []Value, rowNum int64) (*siteCell, error) {
	for i, v := range vals {
		if v.Missing() {
			// As pandas' groupby(dropna=True): a row without a group is
			// in no cell, the total included.
			return nil, nil
		}
		t := strings.ToValidUTF8(v.groupText(), "\uFFFD")
		if len(t) > MaxTextBytes {
			return nil, fmt.Errorf("column %s, row %d: a group_by value of %d bytes; at most %d", s.q.GroupBy[i], rowNum, len(t), MaxTextBytes)
		}
		s.parts[i] = t
	}
	key := Cell{Group: s.parts}.key()
	g := s.groups[key]
	if g == nil {
		if len(s.groups) >= MaxGroups {
			return nil, fmt.Errorf("group_by %s: more than %d distinct groups (group %d first appears at row %d); group_by is for categorical columns, not identifiers", strings.Join(s.q.GroupBy, ", "), MaxGroups, MaxGroups+1, rowNum)
		}
		g = s.newCell(Cell{Group: append([]string(nil), s.parts...)})
		s.groups[key] = g
	}
	return g, nil
}

// read fills xs with the row's inputs: false when one is missing (the row
// does not count for this aggregate), an error when a numeric input is
// text.
func (sa *siteAgg) read(row []Value, rowNum int64) (bool, error) {
	for j, ci := range sa.cols {
		v := row[ci]
		if v.Missing() {
			return false, nil
		}
		if !sa.numeric {
			continue
		}
		x, err := v.number(sa.names[j], rowNum, sa.use)
		if err != nil {
			return false, err
		}
		if sa.lo != nil {
			x = clip(x, sa.lo[j], sa.hi[j])
		}
		sa.xs[j] = x
	}
	return true, nil
}

// match evaluates the condition on one cell. A missing cell fails every
// condition (as SQL's NULL does).
func (c siteCond) match(v Value, row int64) (bool, error) {
	if v.Missing() {
		return false, nil
	}
	switch c.c.Op {
	case "==":
		return equal(v, c.c.Value.Items[0]), nil
	case "!=":
		return !equal(v, c.c.Value.Items[0]), nil
	case "in":
		return slices.ContainsFunc(c.c.Value.Items, func(l Literal) bool { return equal(v, l) }), nil
	}
	if !v.Num {
		return false, fmt.Errorf("column %s, row %d: %q is not a number; %s compares it with %s %s", c.c.Column, row, v.S, c.where, c.c.Op, c.c.Value.Items[0].Text)
	}
	x, l := v.F, c.c.Value.Items[0].F
	switch c.c.Op {
	case "<":
		return x < l, nil
	case "<=":
		return x <= l, nil
	case ">":
		return x > l, nil
	}
	return x >= l, nil
}

// equal compares a cell with a literal: by value for a number, by raw text
// otherwise.
func equal(v Value, l Literal) bool {
	if l.Num {
		return v.Num && v.F == l.F
	}
	return v.S == l.Text
}

// measures are what disclosure control counts in a cell: its rows, and the
// contributing rows of each aggregate.
func (c *siteCell) measures() []float64 {
	m := make([]float64, 0, 1+len(c.accs))
	m = append(m, float64(c.rows))
	for _, a := range c.accs {
		m = append(m, float64(a.n()))
	}
	return m
}

// small reports whether any measure is between 1 and k−1.
func small(m []float64, k float64) bool {
	return slices.ContainsFunc(m, func(x float64) bool { return x >= 1 && x < k })
}

// partials applies disclosure control and builds the release.
func (s *siteRun) partials() (*Partials, error) {
	k := float64(s.k)
	keys := sortedKeys(s.groups)
	cells := make([]*suppCell, len(keys))
	for i, key := range keys {
		g := s.groups[key]
		m := g.measures()
		cells[i] = &suppCell{key: key, size: m[0], m: m, withheld: small(m, k)}
	}
	totalWithheld := s.total != nil && small(s.total.measures(), k)
	if s.total != nil && len(s.group) > 0 && !totalWithheld {
		// The site knows its withheld cells' counts: their union is what
		// the total minus the visible cells would reveal.
		union := func() []float64 {
			u := make([]float64, len(s.aggs)+1)
			for _, c := range cells {
				if c.withheld {
					for j, x := range c.m {
						u[j] += x
					}
				}
			}
			return u
		}
		totalWithheld = complement(cells, union, k, false)
	}

	p := &Partials{Query: s.q.Digest(), Stage: s.req.Stage, Cells: []CellPartial{}}
	if s.q.private() {
		sens, err := Sensitivity(s.q)
		if err != nil {
			return nil, err
		}
		p.Sensitivity = sens
	}
	values := 0
	emit := func(sc *siteCell, withheld bool) error {
		th, asked := s.thresholds[sc.cell.key()]
		if s.req.Stage > 1 && !asked {
			return nil
		}
		cp := CellPartial{Cell: sc.cell, Suppressed: withheld}
		if !withheld {
			cp.Values = map[string][]float64{}
			for i, a := range sc.accs {
				var v []float64
				switch {
				case s.req.Stage == 1:
					v = a.release()
				case th[i] != nil:
					v = a.(*quantAcc).counts()
				default:
					continue
				}
				for _, x := range v {
					if !finite(x) {
						return fmt.Errorf("cell %s, aggregate %s: a partial overflows float64; the column's values are too large", sc.cell, s.aggs[i].a.Name)
					}
				}
				cp.Values[s.aggs[i].a.Name] = v
				values += len(v)
			}
		}
		if values > MaxValues {
			return fmt.Errorf("the release would hold more than %d values; use fewer groups, aggregates or histogram edges", MaxValues)
		}
		p.Cells = append(p.Cells, cp)
		return nil
	}
	for i, key := range keys {
		if err := emit(s.groups[key], cells[i].withheld); err != nil {
			return nil, fmt.Errorf("compute: %w", err)
		}
	}
	if s.total != nil {
		if err := emit(s.total, totalWithheld); err != nil {
			return nil, fmt.Errorf("compute: %w", err)
		}
	}
	return p, nil
}
