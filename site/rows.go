package site

import (
	"errors"
	"fmt"

	"github.com/federa-dev/federa/analytics"
	"github.com/federa-dev/federa/dataset"
)

// sourceRows streams a site's dataset to a query, row by row, in any
// format the site serves (dataset.Source.Scan: CSV, Parquet, PostgreSQL,
// IDX), reading only the columns the query names: memory stays flat in the
// data's size.
type sourceRows struct {
	ds *Dataset
	// rows counts the data rows of the last Scan: the records behind the
	// release, for the egress policy.
	rows int64
}

// sourceRows is deliberately not an analytics.ColumnLister: Compute would
// list the dataset's columns in its error, and a site never names its
// columns to a coordinator. The admission checks every column the query
// reads.
var _ analytics.RowSource = (*sourceRows)(nil)

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
	if err != nil && (fnErr == nil || !errors.Is(err, fnErr)) {
		var de *dataset.Error
		if errors.As(err, &de) {
			return fmt.Errorf("dataset %q: %w", s.ds.Name, de.Redacted())
		}
		return fmt.Errorf("dataset %q: %w", s.ds.Name, err)
	}
	return err
}
