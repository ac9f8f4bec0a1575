package dataset

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"

	"github.com/parquet-go/parquet-go"
	pqformat "github.com/parquet-go/parquet-go/format"
)

// parquetFormat is format "parquet": one Apache Parquet file (Source.Path)
// read as a table whose columns are the file's top-level columns, in
// schema order. A column is read if it is flat (required or optional, not
// repeated, not a group) and of one of these types:
//
//   - BOOLEAN (a number: true is 1, false 0), INT32 and INT64 (signed or
//     unsigned), FLOAT and DOUBLE: numbers, so they can be features;
//   - BYTE_ARRAY (plain, STRING, ENUM or JSON) and FIXED_LEN_BYTE_ARRAY
//     without a logical type: strings, for labels and value counts.
//
// Other types (DECIMAL, DATE, TIMESTAMP, INT96, UUID, …) are listed by
// Header but refused, naming the column and its type, when a scan or load
// asks for them. Load follows LoadCSV's rules: a null or NaN feature, or a
// null or empty label, is an error naming the column and the row (from 1,
// in file order). Rows are read a row group at a time in batches of pages,
// never the whole file.
type parquetFormat struct{}

// batchRows is how many rows a scan of ncols columns decodes per column
// before handing them to fn one by one: 1024, fewer for a wide scan (a
// load of 784 pixel columns) so the batches stay near 4 MB in all.
func batchRows(ncols int) int {
	return max(16, min(1024, (1<<16)/max(ncols, 1)))
}

// pqReadBuffer is the read buffer of each column being read. Small is
// enough: pages larger than it are read straight into the page buffer,
// and a wide scan holds one per column.
const pqReadBuffer = 32 << 10

// pqColumn is one top-level column of a Parquet file.
type pqColumn struct {
	name     string
	leaf     int  // index among the file's leaf columns
	maxDef   byte // its maximum definition level: 1 when optional, 0 when required
	kind     parquet.Kind
	unsigned bool   // INT32 or INT64 with an unsigned integer logical type
	typ      string // the type as errors name it, e.g. DOUBLE or STRING
	numeric  bool
	why      string // non-empty: why the column cannot be read
}

// pqFile is an open Parquet file, its framing and metadata checked.
type pqFile struct {
	path   string
	f      *os.File
	pf     *parquet.File
	size   int64
	header []string
	cols   []pqColumn // in header order
}

func openParquet(path string) (*pqFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fileError(path, err)
	}
	p := &pqFile{path: path, f: f}
	if err := p.open(); err != nil {
		f.Close()
		return nil, err
	}
	return p, nil
}

func (p *pqFile) Close() error { return p.f.Close() }

func (p *pqFile) open() error {
	st, err := p.f.Stat()
	if err != nil {
		return fileError(p.path, err)
	}
	if st.IsDir() {
		return &Error{Path: p.path, Msg: "is a directory, not a Parquet file"}
	}
	p.size = st.Size()
	if err := p.checkFraming(); err != nil {
		return err
	}
	err = protect(func() (err error) {
		p.pf, err = parquet.OpenFile(p.f, p.size,
			parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true), parquet.ReadBufferSize(pqReadBuffer))
		return err
	})
	if err != nil {
		return &Error{Path: p.path, Msg: "not a readable Parquet file: " + err.Error(), Err: err}
	}
	if err := p.checkChunks(); err != nil {
		return err
	}
	return p.readSchema()
}

// checkFraming checks the magic numbers and the footer length before the
// Parquet reader trusts them: the length is a claim, and four bytes must
// not make us allocate gigabytes.
func (p *pqFile) checkFraming() error {
	const magic = "PAR1"
	if p.size < 12 {
		return &Error{Path: p.path, Msg: fmt.Sprintf(
			"too short to be a Parquet file (%d bytes; a Parquet file starts and ends with %q)", p.size, magic)}
	}
	var head [4]byte
	var tail [8]byte
	if _, err := p.f.ReadAt(head[:], 0); err != nil {
		return fileError(p.path, err)
	}
	if _, err := p.f.ReadAt(tail[:], p.size-8); err != nil {
		return fileError(p.path, err)
	}
	switch {
	case string(head[:]) != magic:
		return &Error{Path: p.path, Msg: fmt.Sprintf("not a Parquet file: it does not start with %q", magic)}
	case string(tail[4:]) == "PARE":
		return &Error{Path: p.path, Msg: "is an encrypted Parquet file; encrypted files are not supported"}
	case string(tail[4:]) != magic:
		return &Error{Path: p.path, Msg: fmt.Sprintf(
			"truncated or not a Parquet file: it does not end with %q, so the footer (the schema and where the data is) is missing", magic)}
	}
	if n := int64(binary.LittleEndian.Uint32(tail[:4])); n+12 > p.size {
		return &Error{Path: p.path, Msg: fmt.Sprintf(
			"corrupt footer: it claims %d bytes in a %d-byte file (truncated?)", n, p.size)}
	}
	return nil
}

// checkChunks checks that every column chunk lies inside the file and
// every row group has a sane row count, before any is read.
func (p *pqFile) checkChunks() error {
	md := p.pf.Metadata()
	for g, rg := range md.RowGroups {
		if rg.NumRows < 0 {
			return &Error{Path: p.path, Msg: fmt.Sprintf("corrupt metadata: row group %d has %d rows", g+1, rg.NumRows)}
		}
		for _, c := range rg.Columns {
			m := c.MetaData
			start := m.DataPageOffset
			if m.DictionaryPageOffset > 0 && m.DictionaryPageOffset < start {
				start = m.DictionaryPageOffset
			}
			switch {
			case c.FilePath != "":
				return &Error{Path: p.path, Msg: fmt.Sprintf(
					"row group %d keeps column data in another file (%q); only self-contained files are supported", g+1, c.FilePath)}
			case start < 4 || m.TotalCompressedSize < 0 || start+m.TotalCompressedSize > p.size:
				return &Error{Path: p.path, Msg: fmt.Sprintf(
					"corrupt metadata: a column chunk of row group %d lies outside the %d-byte file (truncated?)", g+1, p.size)}
			}
		}
	}
	return nil
}

// readSchema classifies the top-level columns.
func (p *pqFile) readSchema() error {
	schema := p.pf.Schema()
	seen := map[string]bool{}
	for _, fld := range schema.Fields() {
		c := pqColumn{name: fld.Name()}
		switch {
		case c.name == "":
			return &Error{Path: p.path, Msg: fmt.Sprintf("column %d has no name; every column needs a unique name", len(p.cols)+1)}
		case seen[c.name]:
			return &Error{Path: p.path, Column: c.name, Msg: "duplicate column name; column names must be unique"}
		}
		seen[c.name] = true
		switch {
		case isList(fld):
			c.typ = "list"
			c.why = "is a list column; only one value per row can be read"
		case !fld.Leaf():
			c.typ = "group"
			c.why = "is a nested group; only flat columns can be read (store one column per field)"
		case fld.Repeated():
			c.typ = "repeated " + fld.Type().String()
			c.why = "is a repeated column; only one value per row can be read"
		default:
			lc, ok := schema.Lookup(c.name)
			if !ok {
				return &Error{Path: p.path, Column: c.name, Msg: "corrupt schema: the column has no data"}
			}
			c.leaf, c.maxDef = lc.ColumnIndex, byte(lc.MaxDefinitionLevel)
			c.classify(fld.Type())
		}
		p.header = append(p.header, c.name)
		p.cols = append(p.cols, c)
	}
	if len(p.cols) == 0 {
		return &Error{Path: p.path, Msg: "the schema has no columns"}
	}
	return nil
}

// isList reports a LIST or MAP group, as writers store a column of lists.
func isList(n parquet.Node) bool {
	if n.Leaf() {
		return false
	}
	lt := n.Type().LogicalType()
	if lt == nil {
		return false
	}
	switch lt.Value.(type) {
	case *pqformat.ListType, *pqformat.MapType:
		return true
	}
	return false
}

func (c *pqColumn) classify(t parquet.Type) {
	c.kind = t.Kind()
	c.typ = t.String()
	if lt := t.LogicalType(); lt != nil && lt.Value != nil {
		switch v := lt.Value.(type) {
		case *pqformat.StringType, *pqformat.EnumType, *pqformat.JsonType:
			if c.kind != parquet.ByteArray {
				c.why = fmt.Sprintf("has type %s on %s storage, which is not supported", c.typ, c.kind)
			}
			return
		case *pqformat.IntType:
			c.unsigned = !v.IsSigned
		default:
			c.why = fmt.Sprintf("has type %s, which is not supported; store it as a number (INT32, INT64, FLOAT, DOUBLE, BOOLEAN) or a string", c.typ)
			return
		}
	}
	switch c.kind {
	case parquet.Boolean, parquet.Int32, parquet.Int64, parquet.Float, parquet.Double:
		c.numeric = true
	case parquet.ByteArray, parquet.FixedLenByteArray:
	default:
		c.why = fmt.Sprintf("has type %s, which is not supported; store it as a number (INT32, INT64, FLOAT, DOUBLE, BOOLEAN) or a string", c.typ)
	}
}

func (p *pqFile) column(name string) *pqColumn {
	for i := range p.cols {
		if p.cols[i].name == name {
			return &p.cols[i]
		}
	}
	return nil
}

func (p *pqFile) typed() typedSource {
	return typedSource{
		name:   p.path,
		size:   p.size,
		header: p.header,
		featureErr: func(name string) error {
			c := p.column(name)
			switch {
			case c.why != "":
				return &Error{Path: p.path, Column: name, Msg: c.why}
			case !c.numeric:
				return &Error{Path: p.path, Column: name, Msg: fmt.Sprintf(
					"is a %s column; a feature must be numeric (INT32, INT64, FLOAT, DOUBLE or BOOLEAN)", c.typ)}
			}
			return nil
		},
		scan: p.scan,
	}
}

// protect runs f, turning a panic in the Parquet reader into an error: a
// file is input, and a malformed one must be refused, not crash the site.
// Only library calls run under it, never the caller's fn.
func protect(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed file (the Parquet reader failed: %v)", r)
		}
	}()
	return f()
}

// floatValue is a float cell: a number when finite, else its name in S.
func floatValue(x float64) Value {
	if x-x == 0 {
		return Value{F: x, Num: true}
	}
	return Value{S: nonFinite(x)}
}

// exactInt bounds the integers a float64 holds exactly; beyond it S keeps
// the exact digits.
const exactInt = 1 << 53

func intValue(x int64) Value {
	v := Value{F: float64(x), Num: true}
	if x > exactInt || x < -exactInt {
		v.S = strconv.FormatInt(x, 10)
	}
	return v
}

func uintValue(x uint64) Value {
	v := Value{F: float64(x), Num: true}
	if x > exactInt {
		v.S = strconv.FormatUint(x, 10)
	}
	return v
}

func (parquetFormat) load(s Source, opts Options) (*Table, error) {
	p, err := openParquet(s.Path)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	return p.typed().load(opts)
}

func (parquetFormat) header(s Source) ([]string, error) {
	p, err := openParquet(s.Path)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	return p.header, nil
}

func (parquetFormat) valueCounts(s Source, column string, limit int) (map[string]int, bool, error) {
	p, err := openParquet(s.Path)
	if err != nil {
		return nil, false, err
	}
	defer p.Close()
	return p.typed().valueCounts(column, limit)
}

func (parquetFormat) scan(s Source, columns []string, fn func([]Value) error) error {
	p, err := openParquet(s.Path)
	if err != nil {
		return err
	}
	defer p.Close()
	return p.scan(columns, fn)
}
