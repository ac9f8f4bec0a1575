package dataset

import (
	"fmt"
	"strings"

	"gonum.org/v1/gonum/mat"
)

// typedSource is what the formats with typed columns (Parquet,
// PostgreSQL) share: they know each column's type before reading a row,
// so Load and ValueCounts are written once on top of their scan.
type typedSource struct {
	name   string   // the source as errors name it (Error.Path)
	size   int64    // Table.Bytes
	header []string // column names in order
	// featureErr says why a column cannot be a feature, or nil if its type
	// holds numbers.
	featureErr func(column string) error
	scan       func(columns []string, fn func([]Value) error) error
}

// load reads a Table under LoadCSV's rules: every feature cell a finite
// number, every label non-empty. Rows are numbered from 1 in scan order;
// there are no lines, so errors and ClassIndex say "row N".
func (ts typedSource) load(opts Options) (*Table, error) {
	_, _, features, err := resolveColumns(ts.name, 0, ts.header, opts)
	if err != nil {
		return nil, err
	}
	for _, c := range features {
		if err := ts.featureErr(c); err != nil {
			return nil, err
		}
	}
	t := &Table{Path: ts.name, Features: features, Bytes: ts.size}
	var data []float64
	interned := make(map[string]string)
	nf := len(features)
	err = ts.scan(append(features[:nf:nf], opts.Label), func(row []Value) error {
		n := len(t.Labels) + 1
		for k, v := range row[:nf] {
			if !v.Num {
				return ts.cellError(n, features[k], v)
			}
			data = append(data, v.F)
		}
		label := strings.TrimSpace(row[nf].Text())
		if label == "" {
			return &Error{Path: ts.name, Column: opts.Label, Msg: fmt.Sprintf(
				"row %d: empty or null label; every row needs a class label (fill it in or drop the row)", n)}
		}
		t.Labels = append(t.Labels, intern(interned, label))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(t.Labels) == 0 {
		return nil, &Error{Path: ts.name, Msg: "no data rows"}
	}
	t.X = mat.NewDense(len(t.Labels), nf, data)
	return t, nil
}

// cellError explains why the cell of row n in a numeric column is not a
// number: a null, or a NaN or infinity.
func (ts typedSource) cellError(n int, column string, v Value) error {
	if v.S == "" {
		return &Error{Path: ts.name, Column: column, Msg: fmt.Sprintf(
			"row %d: null; every feature needs a number (fill it in or drop the row)", n)}
	}
	return &Error{Path: ts.name, Column: column, Msg: fmt.Sprintf(
		"row %d: %s is not allowed; clean the data or drop the row", n, v.S)}
}

// valueCounts counts the rows holding each value of one column by its
// Text, trimmed as load trims a label (a null counts as ""), as
// ValueCounts does for a CSV file.
func (ts typedSource) valueCounts(column string, limit int) (map[string]int, bool, error) {
	counts := map[string]int{}
	truncated := false
	err := ts.scan([]string{column}, func(row []Value) error {
		v := strings.TrimSpace(row[0].Text())
		if _, ok := counts[v]; !ok && limit > 0 && len(counts) >= limit {
			truncated = true
			return nil
		}
		counts[v]++
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return counts, truncated, nil
}
