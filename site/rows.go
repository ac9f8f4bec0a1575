package site

import (
	"errors"
	"fmt"

	"github.com/federa-dev/federa/analytics"
	"github.com/federa-dev/federa/dataset"
)

// sourceRows streams a site's dataset to a query in any format the site
// serves (dataset.Source: CSV, Parquet, PostgreSQL, IDX), reading only the
// columns the query names: memory stays flat in the data's size. It hands
// the rows over a batch at a time (analytics.BatchSource), so a numeric
// column reaches the aggregates as float64s without a Value per cell.
type sourceRows struct {
	ds *Dataset
	// rows counts the data rows of the last scan: the records behind the
	// release, for the egress policy.
	rows int64
}

// sourceRows is deliberately not an analytics.ColumnLister: Compute would
// list the dataset's columns in its error, and a site never names its
// columns to a coordinator. The admission checks every column the query
// reads.
var _ analytics.BatchSource = (*sourceRows)(nil)

func newSourceRows(ds *Dataset) *sourceRows { return &sourceRows{ds: ds} }

// Scan implements analytics.RowSource. A dataset error leaves the site
// redacted: its line and column, never a cell or the file's other columns.
func (s *sourceRows) Scan(columns []string, fn func(row []analytics.Value) error) error {
	row := make([]analytics.Value, len(columns))
	s.rows = 0
	var fnErr error
	err := s.ds.source().Scan(columns, func(vals []dataset.Value) error {
		s.rows++
		for i, v := range vals {
			// A typed format leaves a number's text empty (formatting every
			// cell would cost an allocation per cell); analytics groups and
			// compares numbers by F.
			row[i] = analytics.Value{S: v.S, F: v.F, Num: v.Num}
		}
		fnErr = fn(row)
		return fnErr
	})
	return s.scanError(err, fnErr)
}

// ScanBatches implements analytics.BatchSource: a column of numbers is
// handed over as it comes (the same slices), a column of cells copied.
func (s *sourceRows) ScanBatches(columns []string, fn func(b *analytics.Batch) error) error {
	b := &analytics.Batch{Cols: make([]analytics.Column, len(columns))}
	cells := make([][]analytics.Value, len(columns))
	s.rows = 0
	var fnErr error
	err := s.ds.source().ScanBatches(columns, func(db *dataset.Batch) error {
		s.rows += int64(db.Len)
		b.Len = db.Len
		for k, c := range db.Cols {
			if c.V == nil {
				b.Cols[k] = analytics.Column{F: c.F, Null: c.Null, S: c.S}
				continue
			}
			if cap(cells[k]) < len(c.V) {
				cells[k] = make([]analytics.Value, len(c.V))
			}
			vs := cells[k][:len(c.V)]
			for i, v := range c.V {
				vs[i] = analytics.Value{S: v.S, F: v.F, Num: v.Num}
			}
			b.Cols[k] = analytics.Column{V: vs}
		}
		fnErr = fn(b)
		return fnErr
	})
	return s.scanError(err, fnErr)
}

// scanError is a scan's error fit to leave the site: fn's own as is, a
// dataset error redacted.
func (s *sourceRows) scanError(err, fnErr error) error {
	if err != nil && (fnErr == nil || !errors.Is(err, fnErr)) {
		var de *dataset.Error
		if errors.As(err, &de) {
			return fmt.Errorf("dataset %q: %w", s.ds.Name, de.Redacted())
		}
		return fmt.Errorf("dataset %q: %w", s.ds.Name, err)
	}
	return err
}
