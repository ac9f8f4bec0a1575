package dataset

import (
	"fmt"
	"strings"
)

// LabelValues parses each row's label as a number, for a model that
// predicts the label as a value (regression). The error names the first
// label that is not a finite number and its line (or, for tables not
// loaded from a file, its row).
func (t *Table) LabelValues() ([]float64, error) {
	out := make([]float64, len(t.Labels))
	for i, l := range t.Labels {
		v, err := parseCell(l)
		if err != nil {
			e := &Error{Path: t.Path, Value: strings.TrimSpace(l), Msg: fmt.Sprintf("label: a regression model needs a number: %v", err)}
			if i < len(t.lines) {
				e.Line = t.lines[i]
			} else {
				e.Msg = fmt.Sprintf("row %d: %s", i+1, e.Msg)
			}
			return nil, e
		}
		out[i] = v
	}
	return out, nil
}
