package analytics

import (
	"cmp"
	"strconv"
)

// Result is a query's published result. The planner fills Groups; the
// caller fills QueryID, Status, EpsilonSpent and Sites.
type Result struct {
	QueryID      string   `json:"query_id"`
	Status       string   `json:"status"`
	Groups       []Group  `json:"groups"`
	EpsilonSpent float64  `json:"epsilon_spent"`
	Sites        []string `json:"sites"`
}

// Group is one row of a Result: a group, or the ungrouped cell with an
// empty Group.
//
// Values maps each aggregate's name to its statistic: a number (null when
// undefined, e.g. the mean of no values) for count, sum, mean, variance
// and stddev; a list of counts, one per bin, for histogram; a list, one per
// q, for quantile; a matrix (list of lists) for correlation; a Regression
// for linear_regression (null when it cannot be solved). A suppressed cell
// carries no values.
type Group struct {
	Group      map[string]string `json:"group"`
	Values     map[string]any    `json:"values,omitempty"`
	Suppressed bool              `json:"suppressed"`
}

// compareCells orders group cells by their values, column by column:
// numbers by value before text, text by bytes. The total comes last.
func compareCells(a, b Cell) int {
	if a.Total != b.Total {
		if a.Total {
			return 1
		}
		return -1
	}
	for i := range min(len(a.Group), len(b.Group)) {
		x, ex := strconv.ParseFloat(a.Group[i], 64)
		y, ey := strconv.ParseFloat(b.Group[i], 64)
		var c int
		switch {
		case ex == nil && ey == nil:
			c = cmp.Compare(x, y)
		case ex == nil:
			c = -1
		case ey == nil:
			c = 1
		}
		if c == 0 {
			c = cmp.Compare(a.Group[i], b.Group[i])
		}
		if c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a.Group), len(b.Group))
}
