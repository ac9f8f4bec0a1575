package analytics

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits on the wire. A message is refused before it is decoded when it is
// larger than MaxMessageBytes, nests deeper than maxDepth or holds more than
// maxElements values, so decoding a hostile message allocates no more than
// a small multiple of what an honest one of the largest size does.
const (
	MaxMessageBytes = 16 << 20 // bytes of one Request or Partials
	MaxValues       = 1 << 19  // numbers one Partials releases
	MaxThresholds   = 1 << 18  // thresholds in one Request
	MaxStages       = 80       // stages of one query
	maxDepth        = 8
	maxElements     = MaxValues + 1<<16
)

// Cell names one cell of a query's result: a group (one value per group_by
// column, in order, as canonical text) or the ungrouped cell (Total).
type Cell struct {
	Total bool     `json:"total,omitempty"`
	Group []string `json:"group,omitempty"`
}

// key is c as a map key; quoting keeps group values from running together.
func (c Cell) key() string {
	if c.Total {
		return "total"
	}
	var b strings.Builder
	b.WriteString("group")
	for _, v := range c.Group {
		b.WriteString(strconv.Quote(v))
	}
	return b.String()
}

func (c Cell) String() string {
	if c.Total {
		return "total"
	}
	return "[" + strings.Join(c.Group, ", ") + "]"
}

// check refuses a cell that is not a cell of q.
func (c Cell) check(q *Query) error {
	if c.Total {
		if len(c.Group) > 0 {
			return errors.New("the total cell has no group values")
		}
		if !q.hasTotal() {
			return errors.New("the query has no total cell (group_by without totals)")
		}
		return nil
	}
	if len(q.GroupBy) == 0 {
		return errors.New("the query has no group_by; its one cell is the total")
	}
	if len(c.Group) != len(q.GroupBy) {
		return fmt.Errorf("cell has %d group values; group_by has %d columns", len(c.Group), len(q.GroupBy))
	}
	for _, v := range c.Group {
		if len(v) > MaxTextBytes || !utf8.ValidString(v) {
			return fmt.Errorf("group value %.40q is longer than %d bytes or not UTF-8", v, MaxTextBytes)
		}
	}
	return nil
}

// Request is what the coordinator asks every site in one stage. Stage 1
// asks for every aggregate in every cell; each later stage (exact quantiles
// only) asks, per cell and quantile aggregate, for the number of values ≤
// each threshold.
type Request struct {
	Query      *Query         `json:"query"`
	Stage      int            `json:"stage"`
	Thresholds []ThresholdSet `json:"thresholds,omitempty"`
}

// ThresholdSet is one cell's thresholds for one quantile aggregate,
// ascending.
type ThresholdSet struct {
	Cell
	Aggregate  string    `json:"aggregate"`
	Thresholds []float64 `json:"thresholds"`
}

// Partials is what one site answers to a Request.
//
// At stage 1, Values holds for every aggregate of every unsuppressed cell
// the vector its fn releases (see each fn's doc and Sensitivity); at later
// stages it holds, for each requested quantile aggregate, the counts of
// values ≤ each threshold. A suppressed cell carries no values.
type Partials struct {
	Query string `json:"query"` // the query's Digest
	Stage int    `json:"stage"`
	// Sensitivity is the L2 sensitivity the release was computed under (0
	// without privacy); NoiseStd the standard deviation of the Gaussian
	// noise AddNoise added to every value.
	Sensitivity float64       `json:"sensitivity,omitempty"`
	NoiseStd    float64       `json:"noise_std,omitempty"`
	Cells       []CellPartial `json:"cells"`
}

// CellPartial is one cell of a Partials.
type CellPartial struct {
	Cell
	Suppressed bool                 `json:"suppressed,omitempty"`
	Values     map[string][]float64 `json:"values,omitempty"`
}

// DecodeRequest decodes a Request strictly: unknown fields, trailing data,
// a message over MaxMessageBytes or one beyond the package's limits is an
// error, and so is a query that fails Validate.
func DecodeRequest(data []byte) (*Request, error) {
	var r Request
	if err := decodeStrict(data, &r); err != nil {
		return nil, fmt.Errorf("decode request: %w", err)
	}
	if r.Query == nil {
		return nil, errors.New("decode request: no query")
	}
	if err := r.check(r.Query); err != nil {
		return nil, fmt.Errorf("decode request: %w", err)
	}
	return &r, nil
}

// DecodePartials decodes a Partials strictly, as DecodeRequest does. Only
// its shape can be checked without the query; the planner checks the rest.
func DecodePartials(data []byte) (*Partials, error) {
	var p Partials
	if err := decodeStrict(data, &p); err != nil {
		return nil, fmt.Errorf("decode partials: %w", err)
	}
	if err := p.checkShape(); err != nil {
		return nil, fmt.Errorf("decode partials: %w", err)
	}
	return &p, nil
}

// decodeStrict bounds the message, then decodes it into v refusing unknown
// fields and trailing data.
func decodeStrict(data []byte, v any) error {
	if len(data) > MaxMessageBytes {
		return fmt.Errorf("message is %d bytes; at most %d", len(data), MaxMessageBytes)
	}
	if err := precheck(data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the message")
	}
	return nil
}

// precheck bounds a message's nesting and its number of elements in one
// pass over the bytes that allocates nothing, so a message of a million
// tiny values is refused before it becomes a million-element slice. It
// does not check the syntax; the decoder does.
func precheck(data []byte) error {
	depth, elems := 0, 0
	inString, escaped := false, false
	for _, b := range data {
		if inString {
			switch {
			case escaped:
				escaped = false
			case b == '\\':
				escaped = true
			case b == '"':
				inString = false
			}
			continue
		}
		switch b {
		case '"':
			inString = true
		case '{', '[':
			if depth++; depth > maxDepth {
				return fmt.Errorf("nested deeper than %d", maxDepth)
			}
			elems++
		case '}', ']':
			depth--
		case ',':
			elems++
		}
		if elems > maxElements {
			return fmt.Errorf("more than %d values", maxElements)
		}
	}
	return nil
}

// check refuses a request that is not a valid stage of q: a different
// query, a stage out of range, thresholds at stage 1 or under privacy,
// thresholds for something other than a quantile aggregate of a cell of q,
// or thresholds not strictly ascending.
func (r *Request) check(q *Query) error {
	if err := q.Validate(ValidateOptions{}); err != nil {
		return fmt.Errorf("query: %w", err)
	}
	if r.Query != nil && r.Query != q && r.Query.Digest() != q.Digest() {
		return errors.New("the request carries a different query")
	}
	switch {
	case r.Stage < 1 || r.Stage > MaxStages:
		return fmt.Errorf("stage %d is out of range; want 1 to %d", r.Stage, MaxStages)
	case r.Stage == 1 && len(r.Thresholds) > 0:
		return errors.New("stage 1 carries no thresholds")
	case r.Stage > 1 && q.private():
		return fmt.Errorf("stage %d: a private query has one stage", r.Stage)
	case r.Stage > 1 && len(r.Thresholds) == 0:
		return fmt.Errorf("stage %d carries no thresholds", r.Stage)
	}
	total := 0
	seen := map[string]bool{}
	for i, ts := range r.Thresholds {
		a := q.aggregate(ts.Aggregate)
		switch {
		case a == nil || a.Fn != "quantile":
			return fmt.Errorf("thresholds[%d]: %q is not a quantile aggregate of the query", i, ts.Aggregate)
		case len(ts.Thresholds) == 0:
			return fmt.Errorf("thresholds[%d]: empty", i)
		}
		if err := ts.Cell.check(q); err != nil {
			return fmt.Errorf("thresholds[%d]: %w", i, err)
		}
		id := ts.Cell.key() + "\x00" + ts.Aggregate
		if seen[id] {
			return fmt.Errorf("thresholds[%d]: cell %s, aggregate %s is asked twice", i, ts.Cell, ts.Aggregate)
		}
		seen[id] = true
		for j, t := range ts.Thresholds {
			if !finite(t) || (j > 0 && orderKey(t) <= orderKey(ts.Thresholds[j-1])) {
				return fmt.Errorf("thresholds[%d]: threshold %d (%v) is not finite or not above the one before", i, j, t)
			}
		}
		if total += len(ts.Thresholds); total > MaxThresholds {
			return fmt.Errorf("more than %d thresholds", MaxThresholds)
		}
	}
	return nil
}

// aggregate is q's aggregate of that name, or nil.
func (q *Query) aggregate(name string) *Aggregate {
	for i := range q.Aggregates {
		if q.Aggregates[i].Name == name {
			return &q.Aggregates[i]
		}
	}
	return nil
}

// checkShape checks what can be checked without the query.
func (p *Partials) checkShape() error {
	switch {
	case p.Stage < 1 || p.Stage > MaxStages:
		return fmt.Errorf("stage %d is out of range; want 1 to %d", p.Stage, MaxStages)
	case len(p.Cells) > MaxGroups+1:
		return fmt.Errorf("%d cells; at most %d", len(p.Cells), MaxGroups+1)
	case !finite(p.Sensitivity) || p.Sensitivity < 0 || !finite(p.NoiseStd) || p.NoiseStd < 0:
		return errors.New("sensitivity and noise_std must be finite and not negative")
	}
	values := 0
	for i, c := range p.Cells {
		if len(c.Group) > MaxGroupBy {
			return fmt.Errorf("cells[%d]: %d group values; at most %d", i, len(c.Group), MaxGroupBy)
		}
		if len(c.Values) > MaxAggregates {
			return fmt.Errorf("cells[%d]: %d aggregates; at most %d", i, len(c.Values), MaxAggregates)
		}
		if c.Suppressed && len(c.Values) > 0 {
			return fmt.Errorf("cells[%d]: a suppressed cell carries values", i)
		}
		for name, v := range c.Values {
			for _, x := range v {
				if !finite(x) {
					return fmt.Errorf("cells[%d]: aggregate %.40q: value %v is not finite", i, name, x)
				}
			}
			if values += len(v); values > MaxValues {
				return fmt.Errorf("more than %d values", MaxValues)
			}
		}
	}
	return nil
}

// check refuses partials that do not answer req for q: another query or
// stage, a cell twice or not of q, a missing, extra or mis-sized vector, or
// a private release without noise.
func (p *Partials) check(q *Query, req *Request) error {
	if err := p.checkShape(); err != nil {
		return err
	}
	switch {
	case p.Query != q.Digest():
		return errors.New("answers a different query")
	case p.Stage != req.Stage:
		return fmt.Errorf("answers stage %d; the request was stage %d", p.Stage, req.Stage)
	}
	if q.private() {
		want, err := Sensitivity(q)
		if err != nil {
			return err
		}
		switch {
		case p.NoiseStd == 0:
			return errors.New("private query answered without noise (AddNoise was not applied)")
		case math.Abs(p.Sensitivity-want) > 1e-12*want:
			return fmt.Errorf("computed under sensitivity %v; the query's is %v", p.Sensitivity, want)
		}
	} else if p.NoiseStd != 0 || p.Sensitivity != 0 {
		return errors.New("noise on a query without privacy")
	}
	asked := map[string]int{}
	for _, ts := range req.Thresholds {
		asked[ts.Cell.key()+"\x00"+ts.Aggregate] = len(ts.Thresholds)
	}
	seen := map[string]bool{}
	for i, c := range p.Cells {
		if err := c.Cell.check(q); err != nil {
			return fmt.Errorf("cells[%d]: %w", i, err)
		}
		k := c.Cell.key()
		if seen[k] {
			return fmt.Errorf("cells[%d]: cell %s appears twice", i, c.Cell)
		}
		seen[k] = true
		if c.Suppressed {
			continue
		}
		if req.Stage == 1 {
			if len(c.Values) != len(q.Aggregates) {
				return fmt.Errorf("cells[%d]: %d aggregates; the query has %d", i, len(c.Values), len(q.Aggregates))
			}
			for _, a := range q.Aggregates {
				v, ok := c.Values[a.Name]
				if want := functions[a.Fn].width(&a, q.private()); !ok || len(v) != want {
					return fmt.Errorf("cells[%d]: aggregate %s: %d values; want %d", i, a.Name, len(v), want)
				}
			}
			continue
		}
		for name, v := range c.Values {
			want, ok := asked[k+"\x00"+name]
			if !ok {
				return fmt.Errorf("cells[%d]: aggregate %.40q was not asked for in cell %s", i, name, c.Cell)
			}
			if len(v) != want {
				return fmt.Errorf("cells[%d]: aggregate %s: %d counts for %d thresholds", i, name, len(v), want)
			}
			for j, x := range v {
				if err := checkCount("count", x); err != nil || (j > 0 && x < v[j-1]) {
					return fmt.Errorf("cells[%d]: aggregate %s: counts are not non-decreasing whole numbers", i, name)
				}
			}
		}
	}
	return nil
}
