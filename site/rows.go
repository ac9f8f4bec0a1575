package site

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/federa-dev/federa/analytics"
)

// csvRows streams a site's CSV dataset to a query, row by row, reading
// only the columns the query names: memory stays flat in the file's size.
//
// Note: the dataset package has no streaming Scan yet (Source.Load builds
// a whole Table). When it gains one (Source.Scan(columns, fn)), this
// adapter should become a call to it so that every format can answer
// queries; until then queries read CSV only, and say so for other formats.
type csvRows struct {
	ds *Dataset
	// rows counts the data rows of the last Scan: the records behind the
	// release, for the egress policy.
	rows int64
}

// csvRows is deliberately not an analytics.ColumnLister: Compute would
// list the file's columns in its error, and a site never names its columns
// to a coordinator. The admission checks every column the query reads.
var _ analytics.RowSource = (*csvRows)(nil)

func newCSVRows(ds *Dataset) (*csvRows, error) {
	if ds.Format != "" && ds.Format != "csv" {
		return nil, fmt.Errorf("dataset %q: queries read CSV datasets only for now; this one is %s", ds.Name, ds.Format)
	}
	return &csvRows{ds: ds}, nil
}

// Scan implements analytics.RowSource.
func (s *csvRows) Scan(columns []string, fn func(row []analytics.Value) error) error {
	f, err := os.Open(s.ds.Path)
	if err != nil {
		return fmt.Errorf("dataset %q: open: %w", s.ds.Name, errors.Unwrap(err))
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.ReuseRecord = true
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		return fmt.Errorf("dataset %q: read the header: %w", s.ds.Name, err)
	}
	for i := range header {
		header[i] = strings.TrimSpace(strings.TrimPrefix(header[i], "\ufeff"))
	}
	idx := make([]int, len(columns))
	for i, c := range columns {
		if idx[i] = slices.Index(header, c); idx[i] < 0 {
			return fmt.Errorf("dataset %q: %q is not a column here (names must match the site's header exactly)", s.ds.Name, c)
		}
	}
	row := make([]analytics.Value, len(columns))
	s.rows = 0
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			// The csv error names the line, never a cell's value.
			return fmt.Errorf("dataset %q: %w", s.ds.Name, err)
		}
		s.rows++
		for i, k := range idx {
			var text string
			if k < len(rec) {
				text = strings.TrimSpace(rec[k])
			}
			v := analytics.Value{S: text}
			if f, err := strconv.ParseFloat(text, 64); err == nil {
				v.F, v.Num = f, true
			}
			row[i] = v
		}
		if err := fn(row); err != nil {
			return err
		}
	}
}
