package dataset

import (
	"errors"
	"fmt"
	"io"

	"github.com/parquet-go/parquet-go"
)

// scan hands the batches of batches to fn row by row.
func (p *pqFile) scan(columns []string, fn func([]Value) error) error {
	row := make([]Value, len(columns))
	return p.batches(columns, func(cur []pqCursor, m int) error { return emit(cur, row, m, fn) })
}

// scanBatches hands the batches of batches to fn whole.
func (p *pqFile) scanBatches(columns []string, fn func(*Batch) error) error {
	b := &Batch{Cols: make([]Column, len(columns))}
	return p.batches(columns, func(cur []pqCursor, m int) error {
		b.Len = m
		for k := range cur {
			b.Cols[k] = cur[k].column(m)
		}
		return fn(b)
	})
}

// batches reads the row groups in order; in each, every requested column
// is decoded batchRows rows at a time from its own pages, and each batch
// goes to each.
func (p *pqFile) batches(columns []string, each func(cur []pqCursor, m int) error) error {
	idx, err := columnIndexes(p.path, 0, p.header, columns)
	if err != nil {
		return err
	}
	cur := make([]pqCursor, len(idx))
	batch := batchRows(len(idx))
	for k, j := range idx {
		c := &p.cols[j]
		if c.why != "" {
			return &Error{Path: p.path, Column: c.name, Msg: c.why}
		}
		cur[k] = newPQCursor(c, batch)
	}
	defer func() {
		for k := range cur {
			cur[k].close()
		}
	}()
	for g, rg := range p.pf.RowGroups() {
		rows := rg.NumRows()
		err := protect(func() error {
			chunks := rg.ColumnChunks()
			for k := range cur {
				if cur[k].col.leaf >= len(chunks) {
					return errors.New("the row group lacks the column")
				}
				cur[k].reset(chunks[cur[k].col.leaf].Pages())
			}
			return nil
		})
		if err != nil {
			return &Error{Path: p.path, Msg: fmt.Sprintf("row group %d: %v", g+1, err), Err: err}
		}
		for done := int64(0); done < rows; {
			m := int(min(int64(batch), rows-done))
			for k := range cur {
				if err := p.fill(&cur[k], m, g, rows, done); err != nil {
					return err
				}
			}
			if err := each(cur, m); err != nil {
				return err
			}
			done += int64(m)
		}
		for k := range cur {
			n, err := cur[k].readProtected(1)
			if err == nil && n > 0 {
				err = fmt.Errorf("holds more values than the row group's %d rows", rows)
			}
			if err != nil {
				return &Error{Path: p.path, Column: cur[k].col.name, Msg: fmt.Sprintf("row group %d: %v (file corrupt?)", g+1, err), Err: err}
			}
			cur[k].close()
		}
	}
	return nil
}

// emit hands the m rows of the cursors' batches to fn. One numeric column,
// the analytics case, gets a loop of its own.
func emit(cur []pqCursor, row []Value, m int, fn func([]Value) error) error {
	if len(cur) == 1 {
		c := &cur[0]
		if !c.num {
			b := c.vals[:m]
			for i := range b {
				if err := fn(b[i : i+1 : i+1]); err != nil {
					return err
				}
			}
			return nil
		}
		v := &row[0]
		for i, x := range c.f64[:m] {
			if c.nulls && c.null[i] {
				*v = Value{}
			} else {
				setNumber(v, x)
			}
			if err := fn(row); err != nil {
				return err
			}
		}
		return nil
	}
	for i := range m {
		for k := range row {
			c := &cur[k]
			switch {
			case !c.num:
				row[k] = c.vals[i]
			case c.nulls && c.null[i]:
				row[k] = Value{}
			default:
				row[k] = Value{F: c.f64[i], Num: true}
			}
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	return nil
}

// setNumber sets *v to the finite number x storing only what changes: the
// fields one by one, S only when it is not already empty. A whole-struct
// store per row measurably slows the caller's loads of F and Num that
// follow it.
func setNumber(v *Value, x float64) {
	if v.S != "" {
		v.S = ""
	}
	v.F, v.Num = x, true
}

// fill reads the next m values of one column, rows done+1… of row group
// g, which holds rows rows.
func (p *pqFile) fill(c *pqCursor, m int, g int, rows, done int64) error {
	n, err := c.readProtected(m)
	if err != nil {
		return &Error{Path: p.path, Column: c.col.name, Msg: fmt.Sprintf(
			"row group %d, near row %d of %d: cannot read: %v (file truncated or corrupt?)", g+1, done+int64(n)+1, rows, err), Err: err}
	}
	if n < m {
		return &Error{Path: p.path, Column: c.col.name, Msg: fmt.Sprintf(
			"row group %d holds %d rows but the column ends after %d values (file truncated or corrupt?)", g+1, rows, done+int64(n))}
	}
	return nil
}

// pqCursor reads one column's values across the pages of a column chunk, a
// batch at a time. A column of DOUBLE, FLOAT, INT32 or INT64 is decoded
// from each page's data (plain or dictionary-encoded, with or without
// nulls) straight into float64s and a null mask: num is set, and the batch
// is the column as numbers of a Batch. A batch of such a column holding a
// value that is not a plain finite number (a NaN or an infinity, an
// integer beyond 2^53), and every batch of a BOOLEAN or string column, is
// in vals, one Value per row.
type pqCursor struct {
	col    *pqColumn
	pages  parquet.Pages
	page   parquet.Page
	values parquet.ValueReader // the page's reader, for a column read as Values
	pg     pqPage              // the page's data, for a numeric column

	num   bool      // the batch is in f64 and null, else in vals
	nulls bool      // some row of the batch is null
	f64   []float64 // the batch's numbers: in buf, or the page's own values
	buf   []float64
	null  []bool
	vals  []Value
	pv    []parquet.Value
	// strs interns the strings of a column (a label's few classes), so a
	// scan does not allocate one per row; bounded for unique values.
	strs map[string]string

	// The dictionary of a dictionary-encoded column, converted once per
	// column chunk: dictF its numbers, dictV (nil when every entry is a
	// plain finite number) its Values; dictS its strings.
	dict  parquet.Dictionary
	dictF []float64
	dictV []Value
	dictS []string
}

// pqPage is the data of a numeric column's current page.
type pqPage struct {
	rows, row int    // rows in the page, and the next one to read
	defs      []byte // definition levels; nil when no row is null
	maxDef    byte   // the level of a row that is not null
	next      int    // the next non-null value
	dict      bool   // the values are indexes into the dictionary (idx)
	strs      bool   // … of strings (dictS), for a string column
	// The page's non-null values: the one of these its type fills.
	f64 []float64
	f32 []float32
	i32 []int32
	u32 []uint32
	i64 []int64
	u64 []uint64
	idx []int32
}

var errShortPage = errors.New("a page holds fewer values than its rows")

func newPQCursor(c *pqColumn, batch int) pqCursor {
	cur := pqCursor{col: c}
	if cur.numeric() {
		// vals only if a batch holds a value that is not a plain number.
		cur.buf, cur.null = make([]float64, batch), make([]bool, batch)
	} else {
		cur.vals, cur.pv = make([]Value, batch), make([]parquet.Value, batch)
	}
	if c.kind == parquet.ByteArray || c.kind == parquet.FixedLenByteArray {
		cur.strs = map[string]string{}
	}
	return cur
}

// numeric reports a column decoded from its pages' data.
func (c *pqCursor) numeric() bool {
	switch c.col.kind {
	case parquet.Double, parquet.Float, parquet.Int32, parquet.Int64:
		return true
	}
	return false
}

func (c *pqCursor) reset(pages parquet.Pages) {
	c.close()
	c.pages = pages
}

func (c *pqCursor) release() {
	if c.page != nil {
		parquet.Release(c.page)
		c.page, c.values, c.pg = nil, nil, pqPage{}
	}
}

func (c *pqCursor) close() {
	c.release()
	if c.pages != nil {
		c.pages.Close()
		c.pages = nil
	}
}

// column is the batch of m rows as a Batch column.
func (c *pqCursor) column(m int) Column {
	if !c.num {
		return Column{V: c.vals[:m]}
	}
	col := Column{F: c.f64[:m]}
	if c.nulls {
		col.Null = c.null[:m]
	}
	return col
}

func (c *pqCursor) readProtected(m int) (n int, err error) {
	err = protect(func() error {
		var err error
		n, err = c.read(m)
		return err
	})
	return n, err
}

// nextPage moves to the column chunk's next page; false at its end.
func (c *pqCursor) nextPage() (bool, error) {
	c.release()
	pg, err := c.pages.ReadPage()
	if err == io.EOF {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	c.page = pg
	switch {
	case c.numeric():
		return true, c.loadPage(pg)
	case c.col.kind == parquet.ByteArray && pg.Dictionary() != nil:
		return true, c.loadStrings(pg)
	}
	c.values = pg.Values()
	return true, nil
}

// read fills the next batch with up to m values, fewer only at the end of
// the column chunk.
func (c *pqCursor) read(m int) (int, error) {
	if !c.numeric() {
		return c.readValues(m)
	}
	c.num, c.nulls, c.f64 = true, false, c.buf[:m]
	n := 0
	for n < m {
		if c.pg.row == c.pg.rows {
			more, err := c.nextPage()
			if err != nil || !more {
				return n, err
			}
			continue
		}
		k := min(m-n, c.pg.rows-c.pg.row)
		if c.num {
			if n == 0 && k == m && c.pg.defs == nil && !c.pg.dict && c.col.kind == parquet.Double {
				// The whole batch lies in one page of doubles without
				// nulls: the batch is the page's own values.
				x := c.pg.f64[c.pg.next : c.pg.next+k]
				if allFinite(x) {
					c.f64 = x
					c.pg.row, c.pg.next, n = c.pg.row+k, c.pg.next+k, k
					continue
				}
			}
			row, next := c.pg.row, c.pg.next
			plain, nulls, err := c.decode(c.buf[n:n+k], c.null[n:n+k])
			if err != nil {
				return n, err
			}
			if plain {
				c.nulls = c.nulls || nulls
				n += k
				continue
			}
			// A value that is not a plain finite number: the batch goes to
			// Values, this part of the page decoded again.
			c.toValues(n)
			c.pg.row, c.pg.next = row, next
		}
		if err := c.decodeValues(c.vals[n : n+k]); err != nil {
			return n, err
		}
		n += k
	}
	return n, nil
}

// toValues moves the first n rows of a batch of numbers to vals.
func (c *pqCursor) toValues(n int) {
	if c.vals == nil {
		c.vals = make([]Value, len(c.buf))
	}
	for i, x := range c.f64[:n] {
		if c.nulls && c.null[i] {
			c.vals[i] = Value{}
		} else {
			c.vals[i] = Value{F: x, Num: true}
		}
	}
	c.num = false
}

// loadPage takes a numeric page's data: its definition levels and its
// non-null values (or their dictionary indexes), checked against each
// other.
func (c *pqCursor) loadPage(pg parquet.Page) error {
	if len(pg.RepetitionLevels()) > 0 {
		return errors.New("a page of a flat column holds repetition levels")
	}
	p := pqPage{defs: pg.DefinitionLevels(), maxDef: c.col.maxDef}
	data := pg.Data()
	var dense int
	if d := pg.Dictionary(); d != nil {
		if err := c.loadDict(d); err != nil {
			return err
		}
		p.dict, p.idx = true, data.Int32()
		dense = len(p.idx)
	} else {
		switch c.col.kind {
		case parquet.Double:
			p.f64 = data.Double()
			dense = len(p.f64)
		case parquet.Float:
			p.f32 = data.Float()
			dense = len(p.f32)
		case parquet.Int32:
			if c.col.unsigned {
				p.u32 = data.Uint32()
				dense = len(p.u32)
			} else {
				p.i32 = data.Int32()
				dense = len(p.i32)
			}
		case parquet.Int64:
			if c.col.unsigned {
				p.u64 = data.Uint64()
				dense = len(p.u64)
			} else {
				p.i64 = data.Int64()
				dense = len(p.i64)
			}
		}
	}
	if err := p.count(dense); err != nil {
		return err
	}
	c.pg = p
	return nil
}

// count sets the page's rows from its definition levels, or from its
// dense values when it has none, checking there is a value for every row
// that is not null.
func (p *pqPage) count(dense int) error {
	if len(p.defs) == 0 {
		p.defs, p.rows = nil, dense
		return nil
	}
	p.rows = len(p.defs)
	present := 0
	for _, d := range p.defs {
		if d == p.maxDef {
			present++
		}
	}
	if present > dense {
		return fmt.Errorf("a page has %d rows with a value but holds %d values", present, dense)
	}
	if present == p.rows {
		p.defs = nil
	}
	return nil
}

// loadStrings takes a dictionary-encoded page of strings: its definition
// levels and indexes, the dictionary's strings made once per column chunk.
func (c *pqCursor) loadStrings(pg parquet.Page) error {
	if len(pg.RepetitionLevels()) > 0 {
		return errors.New("a page of a flat column holds repetition levels")
	}
	if d := pg.Dictionary(); d != c.dict {
		c.dict, c.dictS = d, c.dictS[:0]
		for i := range d.Len() {
			c.dictS = append(c.dictS, c.text(d.Index(int32(i)).ByteArray()))
		}
	}
	data := pg.Data()
	p := pqPage{defs: pg.DefinitionLevels(), maxDef: c.col.maxDef, dict: true, strs: true, idx: data.Int32()}
	if err := p.count(len(p.idx)); err != nil {
		return err
	}
	c.pg = p
	return nil
}

// loadDict converts a numeric column chunk's dictionary, once.
func (c *pqCursor) loadDict(d parquet.Dictionary) error {
	if d == c.dict {
		return nil
	}
	data := d.Page().Data()
	var vals []Value
	switch c.col.kind {
	case parquet.Double:
		for _, x := range data.Double() {
			vals = append(vals, floatValue(x))
		}
	case parquet.Float:
		for _, x := range data.Float() {
			vals = append(vals, floatValue(float64(x)))
		}
	case parquet.Int32:
		if c.col.unsigned {
			for _, x := range data.Uint32() {
				vals = append(vals, Value{F: float64(x), Num: true})
			}
		} else {
			for _, x := range data.Int32() {
				vals = append(vals, Value{F: float64(x), Num: true})
			}
		}
	case parquet.Int64:
		if c.col.unsigned {
			for _, x := range data.Uint64() {
				vals = append(vals, uintValue(x))
			}
		} else {
			for _, x := range data.Int64() {
				vals = append(vals, intValue(x))
			}
		}
	}
	c.dict, c.dictF, c.dictV = d, make([]float64, len(vals)), nil
	for i, v := range vals {
		c.dictF[i] = v.F
		if !plainNumber(v) {
			c.dictV = vals
		}
	}
	return nil
}

// plainNumber reports a Value that is a finite number and nothing more:
// what a Batch column of numbers holds.
func plainNumber(v Value) bool { return v.Num && v.S == "" }

// decode reads the page's next len(dst) rows as numbers into dst, marking
// the null rows in null (their dst is 0). plain is false when a value is
// not a plain finite number; the rows must then be read as Values.
func (c *pqCursor) decode(dst []float64, null []bool) (plain, nulls bool, err error) {
	p := &c.pg
	defs := p.defs
	if defs != nil {
		defs = defs[p.row : p.row+len(dst)]
	}
	var used int
	plain = true
	switch {
	case p.dict:
		used, nulls, err = gather(dst, null, defs, p.maxDef, p.idx[p.next:], c.dictF)
		if err == nil && c.dictV != nil {
			for _, i := range p.idx[p.next : p.next+used] {
				plain = plain && plainNumber(c.dictV[i])
			}
		}
	case p.f64 != nil:
		used, nulls, err = spread(dst, null, defs, p.maxDef, p.f64[p.next:])
		plain = allFinite(dst)
	case p.f32 != nil:
		used, nulls, err = spread(dst, null, defs, p.maxDef, p.f32[p.next:])
		plain = allFinite(dst)
	case p.i32 != nil:
		used, nulls, err = spread(dst, null, defs, p.maxDef, p.i32[p.next:])
	case p.u32 != nil:
		used, nulls, err = spread(dst, null, defs, p.maxDef, p.u32[p.next:])
	case p.i64 != nil:
		used, nulls, err = spread(dst, null, defs, p.maxDef, p.i64[p.next:])
		if err == nil {
			for _, x := range p.i64[p.next : p.next+used] {
				plain = plain && x <= exactInt && x >= -exactInt
			}
		}
	case p.u64 != nil:
		used, nulls, err = spread(dst, null, defs, p.maxDef, p.u64[p.next:])
		if err == nil {
			for _, x := range p.u64[p.next : p.next+used] {
				plain = plain && x <= exactInt
			}
		}
	default: // a page without values
		used, nulls, err = spread(dst, null, defs, p.maxDef, []float64(nil))
	}
	if err != nil {
		return false, false, err
	}
	p.row += len(dst)
	p.next += used
	return plain, nulls, nil
}

// number is what a numeric page's values are stored as.
type number interface {
	~int32 | ~uint32 | ~int64 | ~uint64 | ~float32 | ~float64
}

// spread converts the rows of dst from src, the page's next non-null
// values, leaving 0 where defs marks a null (defs nil: no row is null). It
// returns how many values it used and whether a row was null.
func spread[T number](dst []float64, null []bool, defs []byte, maxDef byte, src []T) (int, bool, error) {
	if defs == nil {
		if len(src) < len(dst) {
			return 0, false, errShortPage
		}
		for i, x := range src[:len(dst)] {
			dst[i] = float64(x)
		}
		clear(null)
		return len(dst), false, nil
	}
	j := 0
	nulls := false
	for i, d := range defs {
		if d != maxDef {
			dst[i], null[i], nulls = 0, true, true
			continue
		}
		if j == len(src) {
			return 0, false, errShortPage
		}
		dst[i], null[i] = float64(src[j]), false
		j++
	}
	return j, nulls, nil
}

// gather is spread for dictionary indexes.
func gather(dst []float64, null []bool, defs []byte, maxDef byte, idx []int32, dict []float64) (int, bool, error) {
	j := 0
	nulls := false
	for i := range dst {
		if defs != nil && defs[i] != maxDef {
			dst[i], null[i], nulls = 0, true, true
			continue
		}
		if j == len(idx) {
			return 0, false, errShortPage
		}
		x := idx[j]
		if uint64(x) >= uint64(len(dict)) {
			return 0, false, fmt.Errorf("dictionary index %d out of range (the dictionary holds %d values)", x, len(dict))
		}
		dst[i], null[i] = dict[x], false
		j++
	}
	return j, nulls, nil
}

// allFinite reports whether no x is a NaN or an infinity.
func allFinite(x []float64) bool {
	for _, v := range x {
		if v-v != 0 {
			return false
		}
	}
	return true
}

// decodeValues reads the page's next len(dst) rows as Values.
func (c *pqCursor) decodeValues(dst []Value) error {
	p := &c.pg
	for i := range dst {
		if p.defs != nil && p.defs[p.row] != p.maxDef {
			dst[i] = Value{}
			p.row++
			continue
		}
		v, err := c.valueAt(p.next)
		if err != nil {
			return err
		}
		dst[i] = v
		p.row++
		p.next++
	}
	return nil
}

// valueAt is the page's non-null value j as a Value.
func (c *pqCursor) valueAt(j int) (Value, error) {
	p := &c.pg
	switch {
	case p.dict:
		if j >= len(p.idx) {
			return Value{}, errShortPage
		}
		x := p.idx[j]
		if uint64(x) >= uint64(len(c.dictF)) {
			return Value{}, fmt.Errorf("dictionary index %d out of range (the dictionary holds %d values)", x, len(c.dictF))
		}
		if c.dictV != nil {
			return c.dictV[x], nil
		}
		return Value{F: c.dictF[x], Num: true}, nil
	case j < len(p.f64):
		return floatValue(p.f64[j]), nil
	case j < len(p.f32):
		return floatValue(float64(p.f32[j])), nil
	case j < len(p.i32):
		return Value{F: float64(p.i32[j]), Num: true}, nil
	case j < len(p.u32):
		return Value{F: float64(p.u32[j]), Num: true}, nil
	case j < len(p.i64):
		return intValue(p.i64[j]), nil
	case j < len(p.u64):
		return uintValue(p.u64[j]), nil
	}
	return Value{}, errShortPage
}

// readValues fills the next batch of a BOOLEAN or string column with up to
// m values, fewer only at the end of the column chunk.
func (c *pqCursor) readValues(m int) (int, error) {
	c.num = false
	n := 0
	for n < m {
		if c.pg.strs && c.pg.row < c.pg.rows {
			k := min(m-n, c.pg.rows-c.pg.row)
			if err := c.decodeStrings(c.vals[n : n+k]); err != nil {
				return n, err
			}
			n += k
			continue
		}
		if c.values == nil {
			more, err := c.nextPage()
			if err != nil || !more {
				return n, err
			}
			continue
		}
		k, err := c.readGeneric(c.vals[n:m])
		n += k
		switch {
		case err == io.EOF || (err == nil && k == 0):
			c.values = nil // next page
		case err != nil:
			return n, err
		}
	}
	return n, nil
}

// decodeStrings reads the next len(dst) rows of a dictionary page of
// strings.
func (c *pqCursor) decodeStrings(dst []Value) error {
	p := &c.pg
	for i := range dst {
		if p.defs != nil && p.defs[p.row] != p.maxDef {
			dst[i] = Value{}
			p.row++
			continue
		}
		if p.next >= len(p.idx) {
			return errShortPage
		}
		x := p.idx[p.next]
		if uint64(x) >= uint64(len(c.dictS)) {
			return fmt.Errorf("dictionary index %d out of range (the dictionary holds %d values)", x, len(c.dictS))
		}
		dst[i] = Value{S: c.dictS[x]}
		p.row++
		p.next++
	}
	return nil
}

// readGeneric reads any page through parquet.Value.
func (c *pqCursor) readGeneric(dst []Value) (int, error) {
	buf := c.pv[:min(len(dst), len(c.pv))]
	n, err := c.values.ReadValues(buf)
	for i, v := range buf[:n] {
		dst[i] = c.convert(v)
	}
	return n, err
}

func (c *pqCursor) convert(v parquet.Value) Value {
	if v.IsNull() {
		return Value{}
	}
	switch c.col.kind {
	case parquet.Boolean:
		if v.Boolean() {
			return Value{S: "true", F: 1, Num: true}
		}
		return Value{S: "false", Num: true}
	case parquet.ByteArray, parquet.FixedLenByteArray:
		return Value{S: c.text(v.ByteArray())}
	}
	return Value{}
}

// text returns b as a string, interned while the column has few distinct
// values.
func (c *pqCursor) text(b []byte) string {
	if s, ok := c.strs[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(c.strs) < 4096 {
		c.strs[s] = s
	}
	return s
}

func (parquetFormat) scanBatches(s Source, columns []string, fn func(*Batch) error) error {
	p, err := openParquet(s.Path)
	if err != nil {
		return err
	}
	defer p.Close()
	return p.scanBatches(columns, fn)
}
