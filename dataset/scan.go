package dataset

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Value is one cell of a scanned row.
//
// A missing value (an empty CSV cell, a Parquet or SQL null) is the zero
// Value. Numbers read from typed columns (Parquet, PostgreSQL) usually leave
// S empty, because formatting every cell would cost a sum an allocation per
// row it never uses: Text gives the cell as text whatever the format.
type Value struct {
	// S is the cell's text as stored. For CSV it is the cell as written,
	// trimmed of surrounding spaces as LoadCSV and ValueCounts read it; for
	// string columns of the typed formats it is the string; for booleans it
	// is "true" or "false"; for a non-finite float "NaN", "+Inf" or "-Inf".
	S string
	// F is the number when Num is set, 0 otherwise.
	F float64
	// Num reports a finite number: a CSV cell strconv.ParseFloat accepts
	// (what LoadCSV takes as a feature), an IDX pixel or numeric label, or a
	// non-null value of a numeric or boolean column (true is 1).
	Num bool
}

// Text returns the cell as text: S, or for a number stored without text
// the shortest decimal that reads back as F (integers without an exponent).
func (v Value) Text() string {
	if v.S != "" || !v.Num {
		return v.S
	}
	return formatNumber(v.F)
}

// formatNumber is the text of a number read from a typed column: integers
// as integers (up to 2^63), everything else as the shortest round-tripping
// decimal.
func formatNumber(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1<<63 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// nonFinite names a NaN or infinity as Value.S does.
func nonFinite(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case f > 0:
		return "+Inf"
	default:
		return "-Inf"
	}
}

// Scan streams the named columns of every row in file order (for a database
// table, the order the server returns), calling fn once per row with one
// Value per requested column, in the requested order. It holds one row (or
// one batch of rows) at a time, so its memory does not grow with the size
// of the data. The row slice is reused between calls: copy what must
// outlive the call (the strings in it stay valid). An error from fn stops
// the scan and is returned as is; any other error is an *Error naming the
// source, and the line, row or column when there is one. An unknown column
// name is an *Error listing the available columns.
//
// Unlike Load, Scan does not insist on numbers: a cell that is not one
// comes with Num false, and the caller decides what that means.
func (s Source) Scan(columns []string, fn func(row []Value) error) error {
	f, err := s.format()
	if err != nil {
		return err
	}
	return f.scan(s, columns, fn)
}

// columnIndexes finds each requested column in header; line is the
// header's line (0 when the format has none).
func columnIndexes(path string, line int, header, columns []string) ([]int, error) {
	index := make(map[string]int, len(header))
	for i, c := range header {
		if _, dup := index[c]; !dup {
			index[c] = i
		}
	}
	idx := make([]int, len(columns))
	for k, c := range columns {
		i, ok := index[c]
		if !ok {
			return nil, &Error{Path: path, Line: line, Column: c, Msg: "column not in the header", Hint: suggest(c, header)}
		}
		idx[k] = i
	}
	return idx, nil
}

// parseNumber is parseCell without the error text, for scans: it reports
// whether the trimmed cell s is a finite number. Text that cannot start a
// number (a class name, say) is refused before strconv.ParseFloat, whose
// error would cost an allocation per cell.
func parseNumber(s string) (float64, bool) {
	if s == "" {
		return 0, false
	}
	switch c := s[0]; {
	case '0' <= c && c <= '9', c == '.', c == '-', c == '+':
	default:
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v-v != 0 { // v-v is NaN for NaN and ±Inf
		return 0, false
	}
	return v, true
}

func (csvFormat) scan(s Source, columns []string, fn func([]Value) error) error {
	path := s.Path
	f, _, err := open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := newReader(f)
	header, headerLine, err := readHeader(r, path)
	if err != nil {
		return err
	}
	idx, err := columnIndexes(path, headerLine, header, columns)
	if err != nil {
		return err
	}
	row := make([]Value, len(idx))
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return readError(path, err)
		}
		if len(rec) != len(header) {
			line, _ := r.FieldPos(0)
			return fieldCountError(path, line, headerLine, len(header), rec)
		}
		for k, j := range idx {
			c := strings.TrimSpace(rec[j])
			f, ok := parseNumber(c)
			row[k] = Value{S: c, F: f, Num: ok}
		}
		if err := fn(row); err != nil {
			return err
		}
	}
}

// fieldCountError is LoadCSV's error for a row with the wrong number of
// fields, so a scan reports a ragged file exactly as loading it would.
func fieldCountError(path string, line, headerLine, want int, rec []string) error {
	hint := "check for a missing or extra comma, or quote cells that contain commas"
	if len(rec) == want+1 && strings.TrimSpace(rec[len(rec)-1]) == "" {
		hint = "the line ends with an extra comma"
	}
	return &Error{Path: path, Line: line, Msg: fmt.Sprintf(
		"wrong number of fields: expected %d (as in the header on line %d), got %d; %s",
		want, headerLine, len(rec), hint)}
}

func (idxFormat) scan(s Source, columns []string, fn func([]Value) error) error {
	p, err := openIDX(s)
	if err != nil {
		return err
	}
	defer p.Close()
	idx, err := columnIndexes(s.Path, 0, p.columns(), columns)
	if err != nil {
		return err
	}
	npix := p.rows * p.cols
	images := false // a scan of the label alone reads only the labels file
	for _, j := range idx {
		images = images || j < npix
	}
	row := make([]Value, len(idx))
	for i := range p.n {
		b, err := p.next(i, images)
		if err != nil {
			return err
		}
		for k, j := range idx {
			switch {
			case j < npix:
				px := p.pix[j]
				row[k] = Value{S: decimal[px], F: float64(px), Num: true}
			case len(s.Classes) == 0:
				row[k] = Value{S: decimal[b], F: float64(b), Num: true}
			default:
				name, err := className(s, b, i)
				if err != nil {
					return err
				}
				row[k] = Value{S: name}
			}
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	return p.atEnd(images)
}
