package dataset

// Batch is a run of consecutive rows of a scan, held column by column: what
// ScanBatches hands its callback. A caller that sums a column reads a
// []float64 instead of a Value per cell.
type Batch struct {
	// Len is the number of rows, at least 1.
	Len int
	// Cols holds one Column per requested column, in the requested order.
	Cols []Column
}

// Column is one column of a Batch, either as numbers or as cells.
//
// As numbers (V is nil) every cell of the batch is a finite number or
// missing: F[i] is row i's number; Null, when not nil, marks the rows whose
// cell is missing (the zero Value: a null, an empty CSV cell), whose F is
// 0; S, when not nil, is each cell's text as Value.S holds it (a CSV cell as
// written; the typed formats keep no text for a number and leave S nil).
// Row i is then, exactly as Scan gives it, the zero Value if Null[i], else
// Value{S: S[i], F: F[i], Num: true}.
//
// As cells (V is not nil) V[i] is row i's Value as Scan gives it, and F,
// Null and S are nil. A batch holding any cell that is neither a finite
// number nor missing (text, a NaN or an infinity, an integer beyond 2^53
// whose digits are in S, an NA marker in a CSV) comes this way.
type Column struct {
	F    []float64
	Null []bool
	S    []string
	V    []Value
}

// Value returns row i's cell as Scan gives it.
func (c *Column) Value(i int) Value {
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

// ScanBatches is Scan a batch of rows at a time: fn gets the named columns
// of up to batchRows consecutive rows (1024 for a narrow scan), in file
// order, every row exactly once, with the same cells Scan gives (Column
// says how). The batch and its slices are reused, and may alias the file's
// decoded pages, until fn returns: copy what must outlive the call. Errors
// are Scan's; an error from fn stops the scan and is returned as is.
//
// Parquet decodes a numeric column's pages (plain or dictionary-encoded,
// with or without nulls) straight into F; the other formats gather their
// Scan's rows into batches, so every format serves it.
func (s Source) ScanBatches(columns []string, fn func(b *Batch) error) error {
	f, err := s.format()
	if err != nil {
		return err
	}
	if bf, ok := f.(batchFormat); ok {
		return bf.scanBatches(s, columns, fn)
	}
	g := newGatherer(len(columns), batchRows(len(columns)))
	err = f.scan(s, columns, func(row []Value) error {
		if g.add(row) {
			return g.flush(fn)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return g.flush(fn)
}

// batchFormat is a format with a scan of its own a batch at a time.
type batchFormat interface {
	scanBatches(s Source, columns []string, fn func(*Batch) error) error
}

// gatherer collects a row scan's rows into batches.
type gatherer struct {
	b     Batch
	n     int       // rows gathered (a scan of no columns has rows, not cells)
	max   int       // rows a batch holds
	cells [][]Value // per column, the rows so far
	f     [][]float64
	null  [][]bool
	s     [][]string
}

func newGatherer(ncols, rows int) *gatherer {
	g := &gatherer{b: Batch{Cols: make([]Column, ncols)}, max: rows, cells: make([][]Value, ncols),
		f: make([][]float64, ncols), null: make([][]bool, ncols), s: make([][]string, ncols)}
	for k := range ncols {
		g.cells[k] = make([]Value, 0, rows)
	}
	return g
}

// add copies one row and reports whether the batch is full.
func (g *gatherer) add(row []Value) bool {
	for k, v := range row {
		g.cells[k] = append(g.cells[k], v)
	}
	g.n++
	return g.n == g.max
}

// flush hands the rows gathered so far, if any, to fn as a batch, each
// column as numbers where every cell allows it.
func (g *gatherer) flush(fn func(*Batch) error) error {
	if g.n == 0 {
		return nil
	}
	g.b.Len = g.n
	g.n = 0
	for k, cells := range g.cells {
		g.b.Cols[k] = g.column(k, cells)
	}
	err := fn(&g.b)
	for k := range g.cells {
		g.cells[k] = g.cells[k][:0]
	}
	return err
}

// column is one gathered column as numbers if every cell is a finite
// number or the zero Value, else as cells.
func (g *gatherer) column(k int, cells []Value) Column {
	hasNull, hasText := false, false
	for _, v := range cells {
		switch {
		case v.Num && v.F-v.F == 0:
			hasText = hasText || v.S != ""
		case v == Value{}:
			hasNull = true
		default:
			return Column{V: cells}
		}
	}
	if g.f[k] == nil {
		g.f[k] = make([]float64, cap(cells))
	}
	f := g.f[k][:len(cells)]
	for i, v := range cells {
		f[i] = v.F
	}
	c := Column{F: f}
	if hasNull {
		if g.null[k] == nil {
			g.null[k] = make([]bool, cap(cells))
		}
		c.Null = g.null[k][:len(cells)]
		for i, v := range cells {
			c.Null[i] = !v.Num
		}
	}
	if hasText {
		if g.s[k] == nil {
			g.s[k] = make([]string, cap(cells))
		}
		c.S = g.s[k][:len(cells)]
		for i, v := range cells {
			c.S[i] = v.S
		}
	}
	return c
}
