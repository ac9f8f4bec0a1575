package analytics

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on a query. They keep what one query can make a site hold and send
// proportional to the number of groups times the number of aggregates.
const (
	MaxGroups           = 1000    // distinct group_by values, at a site and over all sites
	MaxGroupBy          = 8       // group_by columns
	MaxAggregates       = 32      // aggregates in a query
	MaxConditions       = 32      // where conditions
	MaxInValues         = 1000    // values in one `in` list
	MaxQuantiles        = 32      // q values over all quantile aggregates
	MaxEdges            = 1025    // histogram edges (1024 bins)
	MaxColumns          = 16      // columns of a correlation, or label plus columns of a regression
	MaxNameBytes        = 128     // query and aggregate names
	MaxTextBytes        = 1024    // column names, literals and group values
	MaxMinCount         = 1 << 30 // min_count
	PrivateQuantileBins = 64      // bins of the noisy histogram a private quantile is read from
	maxCellValues       = 1 << 14 // partial values one cell releases
	maxSensitivity      = 1e150   // beyond it, squares of noisy sums overflow
)

// Query is an analytics query as written in YAML (ParseQuery) or carried in a
// Request (JSON). Validate checks it; the zero value is not a valid query.
type Query struct {
	Name    string `yaml:"name" json:"name"`
	Dataset string `yaml:"dataset,omitempty" json:"dataset,omitempty"`
	// Where keeps the rows for which every condition holds.
	Where []Condition `yaml:"where,omitempty" json:"where,omitempty"`
	// GroupBy makes one cell per distinct combination of these columns'
	// values; without it the query has the one ungrouped cell.
	GroupBy    []string    `yaml:"group_by,omitempty" json:"group_by,omitempty"`
	Aggregates []Aggregate `yaml:"aggregates" json:"aggregates"`
	// MinCount is the query's k for disclosure control; a site applies the
	// larger of it and its own policy's minimum.
	MinCount int `yaml:"min_count,omitempty" json:"min_count,omitempty"`
	// Totals publishes the ungrouped cell beside the groups.
	Totals  bool     `yaml:"totals,omitempty" json:"totals,omitempty"`
	Privacy *Privacy `yaml:"privacy,omitempty" json:"privacy,omitempty"`
}

// Condition is one where clause: Column Op Value.
type Condition struct {
	Column string  `yaml:"column" json:"column"`
	Op     string  `yaml:"op" json:"op"`
	Value  Operand `yaml:"value" json:"value"`
}

// Aggregate is one statistic computed in every cell.
type Aggregate struct {
	Name    string    `yaml:"name" json:"name"`
	Fn      string    `yaml:"fn" json:"fn"`
	Column  string    `yaml:"column,omitempty" json:"column,omitempty"`
	Columns []string  `yaml:"columns,omitempty" json:"columns,omitempty"`
	Label   string    `yaml:"label,omitempty" json:"label,omitempty"`
	Edges   []float64 `yaml:"edges,omitempty" json:"edges,omitempty"`
	Q       []float64 `yaml:"q,omitempty" json:"q,omitempty"`
}

// Privacy turns on differential privacy: each site clips every numeric
// input column to its bounds and adds Gaussian noise to what it releases.
// Epsilon and Delta are the budget the caller's accountant calibrates the
// noise to; this package does no accounting.
type Privacy struct {
	Epsilon float64              `yaml:"epsilon" json:"epsilon"`
	Delta   float64              `yaml:"delta" json:"delta"`
	Bounds  map[string][]float64 `yaml:"bounds,omitempty" json:"bounds,omitempty"`
}

// Ops are the where operators.
var Ops = []string{"==", "!=", "<", "<=", ">", ">=", "in"}

// ValidateOptions are the checks that depend on where a query is used. The
// zero value is what ParseQuery applies.
type ValidateOptions struct {
	// RequireDataset refuses a query without a dataset (the demo serves one
	// dataset per site and may leave it out).
	RequireDataset bool
}

// FieldError is one problem with a query: the field, as a path like
// aggregates[2].edges, and what is wrong or what would be valid. Line is the
// YAML line when the query came from ParseQuery, else 0.
type FieldError struct {
	Field  string
	Reason string
	Line   int
}

func (e *FieldError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", e.Line, e.Field, e.Reason)
	}
	return fmt.Sprintf("%s: %s", e.Field, e.Reason)
}

// Validate checks every field and reports all problems at once, each a
// *FieldError joined with errors.Join.
func (q *Query) Validate(opts ValidateOptions) error {
	if q == nil {
		return &FieldError{Field: "query", Reason: "missing"}
	}
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	checkName(bad, "name", q.Name, true)
	if q.Dataset == "" && opts.RequireDataset {
		bad("dataset", "required; name the dataset the sites serve")
	} else if q.Dataset != "" {
		checkName(bad, "dataset", q.Dataset, false)
	}
	if len(q.Where) > MaxConditions {
		bad("where", "%d conditions; at most %d", len(q.Where), MaxConditions)
	}
	for i, c := range q.Where[:min(len(q.Where), MaxConditions)] {
		c.validate(bad, fmt.Sprintf("where[%d]", i))
	}
	q.validateGroupBy(bad)
	q.validateAggregates(bad)
	if q.MinCount < 0 || q.MinCount > MaxMinCount {
		bad("min_count", "%d is out of range; want 0 (the site policy decides) up to %d", q.MinCount, MaxMinCount)
	}
	if q.Privacy != nil {
		q.validatePrivacy(bad)
		if len(errs) == 0 {
			if s := sensitivity(q); !finite(s) || s > maxSensitivity {
				bad("privacy.bounds", "the bounds are too wide: the release's sensitivity would be %v", s)
			}
		}
	}
	return errors.Join(errs...)
}

// checkName checks a short printable name.
func checkName(bad func(string, string, ...any), field, s string, required bool) {
	switch {
	case s == "" && required:
		bad(field, "required")
	case s == "":
	case len(s) > MaxNameBytes:
		bad(field, "%d bytes; at most %d", len(s), MaxNameBytes)
	default:
		if err := checkText(s); err != nil {
			bad(field, "%v", err)
		}
	}
}

// checkText refuses text that is not printable UTF-8 or is too long.
func checkText(s string) error {
	if len(s) > MaxTextBytes {
		return fmt.Errorf("%d bytes; at most %d", len(s), MaxTextBytes)
	}
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	for _, r := range s {
		if !unicode.IsPrint(r) && r != ' ' {
			return fmt.Errorf("contains the unprintable character %U", r)
		}
	}
	return nil
}

func checkColumn(bad func(string, string, ...any), field, s string) {
	if s == "" {
		bad(field, "required; name a column")
		return
	}
	if err := checkText(s); err != nil {
		bad(field, "%v", err)
	}
}

func (c Condition) validate(bad func(string, string, ...any), path string) {
	checkColumn(bad, path+".column", c.Column)
	if !slices.Contains(Ops, c.Op) {
		if c.Op == "" {
			bad(path+".op", "required; valid: %s", strings.Join(Ops, ", "))
		} else {
			bad(path+".op", "%q is not supported; valid: %s", c.Op, strings.Join(Ops, ", "))
		}
		return
	}
	v := c.Value
	switch {
	case len(v.Items) == 0 && !v.List:
		bad(path+".value", "required")
	case c.Op == "in" && !v.List:
		bad(path+".value", "op in needs a list, e.g. [a, b]")
	case c.Op != "in" && v.List:
		bad(path+".value", "a list is only for op in; op %s compares with one value", c.Op)
	case v.List && len(v.Items) == 0:
		bad(path+".value", "empty list; op in needs at least one value")
	case len(v.Items) > MaxInValues:
		bad(path+".value", "%d values; at most %d", len(v.Items), MaxInValues)
	default:
		for i, l := range v.Items {
			field := path + ".value"
			if v.List {
				field = fmt.Sprintf("%s[%d]", field, i)
			}
			if err := l.check(); err != nil {
				bad(field, "%v", err)
			} else if isOrdering(c.Op) && !l.Num {
				bad(field, "op %s compares numbers; %q is not a number", c.Op, l.Text)
			}
		}
	}
}

func isOrdering(op string) bool { return op == "<" || op == "<=" || op == ">" || op == ">=" }

func (q *Query) validateGroupBy(bad func(string, string, ...any)) {
	if len(q.GroupBy) > MaxGroupBy {
		bad("group_by", "%d columns; at most %d", len(q.GroupBy), MaxGroupBy)
		return
	}
	for i, c := range q.GroupBy {
		field := fmt.Sprintf("group_by[%d]", i)
		checkColumn(bad, field, c)
		if j := slices.Index(q.GroupBy[:i], c); j >= 0 && c != "" {
			bad(field, "%q is already group_by[%d]", c, j)
		}
	}
}

func (q *Query) validateAggregates(bad func(string, string, ...any)) {
	switch {
	case len(q.Aggregates) == 0:
		bad("aggregates", "required; at least one, e.g. {name: n, fn: count}")
		return
	case len(q.Aggregates) > MaxAggregates:
		bad("aggregates", "%d aggregates; at most %d", len(q.Aggregates), MaxAggregates)
		return
	}
	quantiles, width := 0, 0
	for i, a := range q.Aggregates {
		path := fmt.Sprintf("aggregates[%d]", i)
		checkName(bad, path+".name", a.Name, true)
		for j, b := range q.Aggregates[:i] {
			if a.Name != "" && a.Name == b.Name {
				bad(path+".name", "%q is already the name of aggregates[%d]; names must be unique", a.Name, j)
			}
		}
		f, ok := functions[a.Fn]
		if !ok {
			if a.Fn == "" {
				bad(path+".fn", "required; valid: %s", strings.Join(FunctionNames(), ", "))
			} else {
				bad(path+".fn", "%q is not supported; valid: %s", a.Fn, strings.Join(FunctionNames(), ", "))
			}
			continue
		}
		fields := f.fields()
		for _, fl := range []struct {
			name string
			set  bool
		}{{"column", a.Column != ""}, {"columns", a.Columns != nil}, {"label", a.Label != ""}, {"edges", a.Edges != nil}, {"q", a.Q != nil}} {
			if fl.set && !slices.Contains(fields, fl.name) {
				takes := "no other fields"
				if len(fields) > 0 {
					takes = strings.Join(fields, ", ")
				}
				bad(path+"."+fl.name, "not used by fn %s, which takes %s", a.Fn, takes)
			}
		}
		f.check(&a, path, bad)
		if a.Fn == "quantile" {
			quantiles += len(a.Q)
		}
		width += f.width(&a, q.Privacy != nil)
	}
	if quantiles > MaxQuantiles {
		bad("aggregates", "%d quantiles (q values) in all; at most %d", quantiles, MaxQuantiles)
	}
	if width > maxCellValues {
		bad("aggregates", "each cell would release %d values; at most %d (fewer histogram edges or columns)", width, maxCellValues)
	}
}

func (q *Query) validatePrivacy(bad func(string, string, ...any)) {
	p := q.Privacy
	if !(p.Epsilon > 0) || math.IsInf(p.Epsilon, 0) {
		bad("privacy.epsilon", "%v is out of range; want a finite number > 0, e.g. 1.0", p.Epsilon)
	}
	if !(p.Delta > 0 && p.Delta < 1) {
		bad("privacy.delta", "%v is out of range; want 0 < delta < 1, e.g. 1e-6", p.Delta)
	}
	for _, col := range sortedKeys(p.Bounds) {
		b := p.Bounds[col]
		field := "privacy.bounds." + col
		switch {
		case len(b) != 2:
			bad(field, "want [low, high], got %d numbers", len(b))
		case !finite(b[0]) || !finite(b[1]):
			bad(field, "bounds must be finite numbers")
		case !(b[0] < b[1]):
			bad(field, "low %v is not below high %v", b[0], b[1])
		}
	}
	for i, a := range q.Aggregates {
		f, ok := functions[a.Fn]
		if !ok {
			continue
		}
		cols, numeric := f.inputs(&a)
		if !numeric {
			continue
		}
		for _, col := range cols {
			if _, ok := p.Bounds[col]; !ok && col != "" {
				bad("privacy.bounds", "missing bounds for column %s, which aggregates[%d] (%s) uses; add %s: [low, high]", col, i, a.Fn, col)
			}
		}
	}
}

// bounds are the clipping bounds of a numeric input column, or nil without
// privacy.
func (q *Query) bounds(col string) []float64 {
	if q.Privacy == nil {
		return nil
	}
	return q.Privacy.Bounds[col]
}

// private reports whether the query is answered under differential privacy.
func (q *Query) private() bool { return q.Privacy != nil }

// Digest identifies the query: the hex SHA-256 of its JSON form. Partials
// carry it so the planner never merges answers to another query.
func (q *Query) Digest() string {
	b, err := json.Marshal(q)
	if err != nil {
		// Only a query that fails Validate (a NaN edge) cannot be marshalled.
		b = []byte(fmt.Sprintf("%#v", q))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// hasTotal reports whether the ungrouped cell is computed and published:
// always without group_by, and with it when totals is set.
func (q *Query) hasTotal() bool { return len(q.GroupBy) == 0 || q.Totals }

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func formatNumber(f float64) string { return strconv.FormatFloat(f+0, 'g', -1, 64) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
