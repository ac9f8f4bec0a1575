package analytics

import "fmt"

// BatchSource is a RowSource that can also hand its rows over a batch at a
// time, column by column. Compute then reads it through ScanBatches: where
// conditions on numbers filter a batch into a selection of rows, and
// count, sum, mean, variance, stddev and histogram add up whole columns of
// float64s; the other aggregates take the selected rows one by one. The
// partials are the ones Scan's rows give, bit for bit: the accumulators
// see the same values in the same order.
type BatchSource interface {
	RowSource
	// ScanBatches is Scan a batch at a time: fn gets consecutive rows of
	// the named columns, every row once, in Scan's order. The batch may be
	// reused once fn returns. Errors are as Scan's.
	ScanBatches(columns []string, fn func(b *Batch) error) error
}

// Batch is Len consecutive rows, one Column per requested column.
type Batch struct {
	Len  int
	Cols []Column
}

// Column is one column of a Batch, as numbers or as cells.
//
// As numbers (V nil), row i is missing when Null is not nil and Null[i];
// otherwise it is the finite number F[i], with the text S[i] (S nil: no
// text, as a typed column has none): the Value{S: S[i], F: F[i], Num:
// true}. As cells (V not nil), row i is V[i]. A column that holds text, an
// NA marker or a non-finite number in a batch comes as cells.
type Column struct {
	F    []float64
	Null []bool
	S    []string
	V    []Value
}

// value is row i as a Value.
func (c *Column) value(i int) Value {
	switch {
	case c.V != nil:
		return c.V[i]
	case c.Null != nil && c.Null[i]:
		return Value{}
	}
	v := Value{F: c.F[i], Num: true}
	if c.S != nil {
		v.S = c.S[i]
	}
	return v
}

// numbers reports a column as numbers.
func (c *Column) numbers() bool { return c.V == nil }

// check refuses a column shorter than its batch.
func (c *Column) check(n int) bool {
	if c.V != nil {
		return len(c.V) >= n
	}
	return len(c.F) >= n && (c.Null == nil || len(c.Null) >= n) && (c.S == nil || len(c.S) >= n)
}

// colAcc is an acc that takes a run of contributing rows' numeric input
// at once, with the result of add on each in turn.
type colAcc interface {
	addCol(x []float64)
}

// rowCounter is an acc that only counts its contributing rows.
type rowCounter interface {
	addRows(n int64)
}

// maxGroupCache bounds the group_by cells remembered per distinct Value:
// many spellings of one number ("1", "1.0") are one group.
const maxGroupCache = 4 * MaxGroups

// batchState is what a siteRun keeps between batches.
type batchState struct {
	all    []int32 // 0, 1, 2, …: every row of a batch
	sel    []int32 // the rows in the query (where passed, grouped)
	cellOf []*siteCell
	perm   []int32 // sel ordered by cell
	pres   []int32 // rows with every input of an aggregate present
	x      []float64
	row    []Value
	slots  []*siteCell // the cells of this batch, in first-row order
	count  []int
	epoch  int64
	// The group_by cells seen, to their cell (nil for a row in no cell):
	// with one group_by column, text by its text, a finite number by its
	// value, anything else by its Value; with more, by their Values.
	groupS map[string]*siteCell
	groupF map[float64]*siteCell
	group1 map[Value]*siteCell
	groupN map[[MaxGroupBy]Value]*siteCell
}

// batch takes one batch. When a numeric input of an aggregate comes as
// cells (text to refuse, NA markers to skip) the batch goes row by row
// through row; otherwise where, group_by and the aggregates run over
// columns, and only the steps that can fail (a where on cells, group_by)
// look at the rows one at a time, in order, so an error names the row
// row would have named.
func (s *siteRun) batch(b *Batch) error {
	n := b.Len
	if len(b.Cols) != len(s.cols) {
		return fmt.Errorf("row %d: the source gave %d values for %d columns", s.rowNum+1, len(b.Cols), len(s.cols))
	}
	for k := range b.Cols {
		if !b.Cols[k].check(n) {
			return fmt.Errorf("rows %d to %d: the source gave a short column %s", s.rowNum+1, s.rowNum+int64(n), s.cols[k])
		}
	}
	if n <= 0 {
		return nil
	}
	if !s.columnar(b) {
		return s.batchRows(b)
	}
	bs := &s.bs
	if len(bs.all) < n {
		bs.all = make([]int32, n)
		for i := range bs.all {
			bs.all[i] = int32(i)
		}
	}
	base := s.rowNum
	rows, err := s.place(b, base)
	if err != nil {
		return err
	}
	s.rowNum = base + int64(n)
	if len(s.group) == 0 {
		// Every row in the query is in the total alone.
		s.feed(s.total, b, rows, len(rows) == n)
		return nil
	}
	// Order the rows by cell, keeping row order within a cell.
	bs.epoch++
	bs.slots, bs.count = bs.slots[:0], bs.count[:0]
	for _, c := range bs.cellOf {
		if c.epoch != bs.epoch {
			c.epoch, c.slot = bs.epoch, len(bs.slots)
			bs.slots = append(bs.slots, c)
			bs.count = append(bs.count, 0)
		}
		bs.count[c.slot]++
	}
	start := 0
	for i, k := range bs.count {
		bs.count[i] = start
		start += k
	}
	bs.perm = grow(bs.perm, len(rows))
	for j, c := range bs.cellOf {
		bs.perm[bs.count[c.slot]] = rows[j]
		bs.count[c.slot]++
	}
	start = 0
	for i, c := range bs.slots {
		s.feed(c, b, bs.perm[start:bs.count[i]], false)
		start = bs.count[i]
	}
	if s.total != nil {
		s.feed(s.total, b, rows, false)
	}
	return nil
}

// columnar reports whether every numeric input of every aggregate comes as
// numbers in b.
func (s *siteRun) columnar(b *Batch) bool {
	for i := range s.aggs {
		if !s.aggs[i].numeric {
			continue
		}
		for _, ci := range s.aggs[i].cols {
			if !b.Cols[ci].numbers() {
				return false
			}
		}
	}
	return true
}

// batchRows takes b row by row.
func (s *siteRun) batchRows(b *Batch) error {
	bs := &s.bs
	bs.row = grow(bs.row, len(b.Cols))
	for i := range b.Len {
		for k := range b.Cols {
			bs.row[k] = b.Cols[k].value(i)
		}
		if err := s.row(bs.row); err != nil {
			return err
		}
	}
	return nil
}

// place returns the rows of b that are in the query: where holds and, with
// group_by, no group value is missing; then bs.cellOf holds each one's
// cell. base is the rows before b.
func (s *siteRun) place(b *Batch, base int64) ([]int32, error) {
	bs := &s.bs
	n := b.Len
	vector := true // every condition is on numbers: none can fail
	for _, c := range s.conds {
		vector = vector && b.Cols[c.col].numbers()
	}
	if vector && len(s.group) == 0 {
		if len(s.conds) == 0 {
			return bs.all[:n], nil
		}
		bs.sel = grow(bs.sel, n)
		rows := bs.all[:n]
		for _, c := range s.conds {
			rows = c.filter(&b.Cols[c.col], rows, bs.sel[:0])
		}
		return rows, nil
	}
	bs.sel = grow(bs.sel, n)
	in := bs.all[:n]
	if vector {
		for _, c := range s.conds {
			in = c.filter(&b.Cols[c.col], in, bs.sel[:0])
		}
	}
	// One row at a time: conditions that can fail, then group_by, as row
	// takes them. out shares sel's array with in, or in is all.
	out := bs.sel[:0]
	bs.cellOf = bs.cellOf[:0]
rows:
	for _, i := range in {
		rowNum := base + int64(i) + 1
		if !vector {
			for _, c := range s.conds {
				ok, err := c.match(b.Cols[c.col].value(int(i)), rowNum)
				if err != nil {
					return nil, err
				}
				if !ok {
					continue rows
				}
			}
		}
		if len(s.group) > 0 {
			g, err := s.groupOf(b, int(i), rowNum)
			if err != nil {
				return nil, err
			}
			if g == nil {
				continue
			}
			bs.cellOf = append(bs.cellOf, g)
		}
		out = append(out, i)
	}
	return out, nil
}

// filter keeps the rows of in whose cell satisfies the condition,
// appending them to out (which may share in's array): a column as numbers,
// so nothing can fail.
func (c siteCond) filter(col *Column, in, out []int32) []int32 {
	f, null, l := col.F, col.Null, c.c.Value.Items[0].F
	present := func(i int32) bool { return null == nil || !null[i] }
	switch c.c.Op {
	case "<":
		for _, i := range in {
			if present(i) && f[i] < l {
				out = append(out, i)
			}
		}
	case "<=":
		for _, i := range in {
			if present(i) && f[i] <= l {
				out = append(out, i)
			}
		}
	case ">":
		for _, i := range in {
			if present(i) && f[i] > l {
				out = append(out, i)
			}
		}
	case ">=":
		for _, i := range in {
			if present(i) && f[i] >= l {
				out = append(out, i)
			}
		}
	default: // ==, != and in, which may compare text
		for _, i := range in {
			if ok, _ := c.match(col.value(int(i)), 0); ok {
				out = append(out, i)
			}
		}
	}
	return out
}

// groupOf is row i's group cell, created on its first row as row creates
// it; nil when a group value is missing.
func (s *siteRun) groupOf(b *Batch, i int, rowNum int64) (*siteCell, error) {
	bs := &s.bs
	if len(s.group) == 1 {
		// Text groups (and is missing) by its text alone, a finite number
		// by its value alone: the keys need no hashing of a whole Value.
		v := b.Cols[s.group[0]].value(i)
		switch {
		case !v.Num:
			if g, ok := bs.groupS[v.S]; ok {
				return g, nil
			}
		case v.F-v.F == 0:
			if g, ok := bs.groupF[v.F+0]; ok {
				return g, nil
			}
		default:
			if g, ok := bs.group1[v]; ok {
				return g, nil
			}
		}
		g, err := s.cellFor([]Value{v}, rowNum)
		if err != nil {
			return nil, err
		}
		switch {
		case !v.Num:
			remember(&bs.groupS, v.S, g)
		case v.F-v.F == 0:
			remember(&bs.groupF, v.F+0, g)
		default:
			remember(&bs.group1, v, g)
		}
		return g, nil
	}
	var key [MaxGroupBy]Value
	for j, ci := range s.group {
		key[j] = b.Cols[ci].value(i)
	}
	if g, ok := bs.groupN[key]; ok {
		return g, nil
	}
	g, err := s.cellFor(key[:len(s.group)], rowNum)
	if err != nil {
		return nil, err
	}
	remember(&bs.groupN, key, g)
	return g, nil
}

// remember adds k → g to *m, making it, up to maxGroupCache keys.
func remember[K comparable](m *map[K]*siteCell, k K, g *siteCell) {
	if *m == nil {
		*m = map[K]*siteCell{}
	}
	if len(*m) < maxGroupCache {
		(*m)[k] = g
	}
}

// feed adds rows of b (all: they are every row, in order) to cell c.
func (s *siteRun) feed(c *siteCell, b *Batch, rows []int32, all bool) {
	bs := &s.bs
	c.rows += int64(len(rows))
	for i := range s.aggs {
		sa := &s.aggs[i]
		// The rows with every input present.
		pres, whole := rows, all
		for _, ci := range sa.cols {
			col := &b.Cols[ci]
			if col.Null == nil && col.V == nil {
				continue
			}
			out := bs.pres[:0]
			if cap(out) < len(pres) {
				out = make([]int32, 0, len(rows))
			}
			for _, r := range pres {
				if col.V != nil && !col.V[r].Missing() || col.V == nil && !col.Null[r] {
					out = append(out, r)
				}
			}
			pres, whole, bs.pres = out, whole && len(out) == len(pres), out
		}
		if len(pres) == 0 {
			continue
		}
		a := c.accs[i]
		if rc, ok := a.(rowCounter); ok {
			rc.addRows(int64(len(pres)))
			continue
		}
		if !sa.numeric { // inputs only tested for being present
			for range pres {
				a.add(sa.xs)
			}
			continue
		}
		if ca, ok := a.(colAcc); ok && len(sa.cols) == 1 {
			f := b.Cols[sa.cols[0]].F
			if whole && sa.lo == nil {
				ca.addCol(f[:len(pres)])
				continue
			}
			bs.x = grow(bs.x, len(pres))
			x := bs.x[:len(pres)]
			for j, r := range pres {
				x[j] = sa.input(0, f[r])
			}
			ca.addCol(x)
			continue
		}
		for _, r := range pres {
			for j, ci := range sa.cols {
				sa.xs[j] = sa.input(j, b.Cols[ci].F[r])
			}
			a.add(sa.xs)
		}
	}
}

// input is a present number as the aggregate's input j, as read gives it:
// one zero for ±0, clipped to the bounds under privacy.
func (sa *siteAgg) input(j int, x float64) float64 {
	x += 0
	if sa.lo != nil {
		x = clip(x, sa.lo[j], sa.hi[j])
	}
	return x
}

// grow returns s with room for n elements.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
