package analytics

import (
	"fmt"
	"math"
	"strings"
)

// RowSource streams the named columns of every row in file order. Each call to
// fn gets one Value per requested column; the slice is reused between calls.
//
// Scan must fail, naming the column and listing the available ones, when a
// requested column does not exist, and must stop with fn's error when fn
// returns one. Compute calls Scan once per stage, so a source is read again
// for every stage of an exact-quantile query; its rows must not change in
// between (the planner refuses counts that contradict an earlier stage).
type RowSource interface {
	Scan(columns []string, fn func(row []Value) error) error
}

// ColumnLister is implemented by a RowSource that can name its columns
// without reading its rows. Compute then checks every column the query uses
// before the first row is read.
type ColumnLister interface {
	Columns() ([]string, error)
}

// Value is one cell of a row.
type Value struct {
	S   string  // raw text, as in the file
	F   float64 // the number, when Num
	Num bool    // S parses as a number
}

// naTokens are the texts that mean "no value": pandas' default na_values, so
// a CSV reads the same here as in pandas.read_csv.
var naTokens = map[string]bool{
	"": true, "#N/A": true, "#N/A N/A": true, "#NA": true, "-1.#IND": true,
	"-1.#QNAN": true, "-NaN": true, "-nan": true, "1.#IND": true, "1.#QNAN": true,
	"<NA>": true, "N/A": true, "NA": true, "NULL": true, "NaN": true, "None": true,
	"n/a": true, "nan": true, "null": true,
}

// Missing reports whether the cell holds no value: its text, trimmed of
// spaces, is empty or one of pandas' NA markers (NA, NaN, null, N/A, …), or
// it is a NaN number.
func (v Value) Missing() bool {
	if v.Num {
		return math.IsNaN(v.F)
	}
	return naTokens[strings.TrimSpace(v.S)]
}

// number is v as an input to a numeric aggregate. The caller has already
// skipped missing cells, so any other text is an error naming the column and
// the row (1-based, in the order Scan delivers rows).
func (v Value) number(column string, row int64, use string) (float64, error) {
	if !v.Num {
		return 0, fmt.Errorf("column %s, row %d: %q is not a number; %s needs numbers (empty cells and NA markers are missing values and are skipped)", column, row, v.S, use)
	}
	if math.IsInf(v.F, 0) {
		return 0, fmt.Errorf("column %s, row %d: %q is infinite; %s needs finite numbers", column, row, v.S, use)
	}
	// -0 and +0 are the same value; one key for both keeps the quantile
	// bisection's order total.
	return v.F + 0, nil
}

// groupText is the canonical text of a group_by cell: a number is grouped by
// its exact value, written in the shortest form that reads back to it
// (strconv 'g', -1), so "1", "1.0" and "1e0" are one group; other text is
// grouped as written.
func (v Value) groupText() string {
	if v.Num && !math.IsInf(v.F, 0) {
		return formatNumber(v.F)
	}
	return v.S
}
