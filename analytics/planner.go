package analytics

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrNotDone is returned by Result before the planner has finished.
var ErrNotDone = errors.New("analytics: the planner has not finished")

// Planner is the coordinator's side of one query, a state machine without
// I/O: Next turns the sites' answers to one stage into the next stage's
// request, until the result is complete. It is not safe for concurrent use.
//
//	p := NewPlanner(q)
//	req, done, err := p.Next(nil)
//	for err == nil && !done {
//		answers := ask every site req // each runs Compute (and AddNoise)
//		req, done, err = p.Next(answers)
//	}
//	res, err := p.Result()
//
// Every site that answers stage 1 must answer every later stage.
type Planner struct {
	q     *Query
	err   error // sticky: once failed, the planner stays failed
	req   *Request
	sites int
	cells map[string]*planCell
	// sent[i] is what stage req asked: the thresholds of one cell's
	// quantile aggregate, as order keys.
	sent   []sentSet
	result *Result
}

type planCell struct {
	cell     Cell
	withheld bool
	mergers  []merger
}

type sentSet struct {
	cell *planCell
	agg  int
	keys []uint64
}

// staged is a merger that needs more stages: the exact quantile.
type staged interface {
	start()
	pending() int
	intervals() int
	thresholds(per int) []uint64
	observe(keys []uint64, counts []float64) error
}

// NewPlanner plans q. A q that fails Validate makes Next fail.
func NewPlanner(q *Query) *Planner {
	p := &Planner{q: q, cells: map[string]*planCell{}}
	if err := q.Validate(ValidateOptions{}); err != nil {
		p.err = fmt.Errorf("analytics: query: %w", err)
	}
	return p
}

// Next takes every site's answer to the last request (none before the
// first) and returns the next request, or done once the result is ready.
// The first request needs no answers. An error is final.
func (p *Planner) Next(answers []*Partials) (req *Request, done bool, err error) {
	if p.err != nil {
		return nil, false, p.err
	}
	if p.result != nil {
		return nil, true, nil
	}
	if p.req == nil {
		if len(answers) > 0 {
			return nil, false, p.fail(errors.New("answers given before the first request"))
		}
		p.req = &Request{Query: p.q, Stage: 1}
		return p.req, false, nil
	}
	if len(answers) == 0 {
		return nil, false, p.fail(fmt.Errorf("stage %d: no site answered", p.req.Stage))
	}
	if p.req.Stage > 1 && len(answers) != p.sites {
		return nil, false, p.fail(fmt.Errorf("stage %d: %d answers; %d sites answered stage 1 and each must answer every stage", p.req.Stage, len(answers), p.sites))
	}
	for i, a := range answers {
		if a == nil {
			return nil, false, p.fail(fmt.Errorf("stage %d: answer %d is nil", p.req.Stage, i))
		}
		if err := a.check(p.q, p.req); err != nil {
			return nil, false, p.fail(fmt.Errorf("stage %d: answer %d: %w", p.req.Stage, i, err))
		}
	}
	if p.req.Stage == 1 {
		p.sites = len(answers)
		if err := p.mergeFirst(answers); err != nil {
			return nil, false, p.fail(err)
		}
	} else if err := p.observe(answers); err != nil {
		return nil, false, p.fail(fmt.Errorf("stage %d: %w", p.req.Stage, err))
	}
	if next := p.nextRequest(); next != nil {
		if next.Stage > MaxStages {
			return nil, false, p.fail(fmt.Errorf("quantiles unresolved after %d stages", MaxStages))
		}
		p.req = next
		return next, false, nil
	}
	p.result = p.build()
	return nil, true, nil
}

func (p *Planner) fail(err error) error {
	p.err = fmt.Errorf("analytics: %w", err)
	return p.err
}

// Result is the published result once Next has reported done.
func (p *Planner) Result() (*Result, error) {
	if p.err != nil {
		return nil, p.err
	}
	if p.result == nil {
		return nil, ErrNotDone
	}
	return p.result, nil
}

func (p *Planner) cell(c Cell) *planCell {
	k := c.key()
	pc := p.cells[k]
	if pc == nil {
		pc = &planCell{cell: Cell{Total: c.Total, Group: slices.Clone(c.Group)}}
		for i := range p.q.Aggregates {
			a := &p.q.Aggregates[i]
			env := accEnv{private: p.q.private()}
			if cols, numeric := functions[a.Fn].inputs(a); numeric && p.q.private() {
				for _, col := range cols {
					b := p.q.Privacy.Bounds[col]
					env.lo, env.hi = append(env.lo, b[0]), append(env.hi, b[1])
				}
			}
			pc.mergers = append(pc.mergers, functions[a.Fn].newMerger(a, env))
		}
		p.cells[k] = pc
	}
	return pc
}

// mergeFirst merges stage 1, applies the coordinator's disclosure control
// and starts the quantile searches.
func (p *Planner) mergeFirst(answers []*Partials) error {
	groups := map[string]bool{}
	for _, a := range answers {
		for _, c := range a.Cells {
			if !c.Total {
				groups[c.key()] = true
			}
		}
	}
	if len(groups) > MaxGroups {
		return fmt.Errorf("group_by %s: the sites hold %d distinct groups; at most %d", strings.Join(p.q.GroupBy, ", "), len(groups), MaxGroups)
	}
	if p.q.hasTotal() {
		p.cell(Cell{Total: true})
	}
	for i, a := range answers {
		for _, c := range a.Cells {
			pc := p.cell(c.Cell)
			if c.Suppressed {
				// One site withholding a cell withholds it everywhere.
				pc.withheld = true
				continue
			}
			for j, ag := range p.q.Aggregates {
				if err := pc.mergers[j].add(c.Values[ag.Name]); err != nil {
					return fmt.Errorf("stage 1: answer %d: cell %s, aggregate %s: %w", i, c.Cell, ag.Name, err)
				}
			}
		}
	}
	p.complement()
	for _, pc := range p.cells {
		if pc.withheld {
			continue
		}
		for _, m := range pc.mergers {
			if s, ok := m.(staged); ok {
				s.start()
			}
		}
	}
	return nil
}

// measures are a merged cell's per-aggregate counts.
func (pc *planCell) measures() []float64 {
	m := make([]float64, len(pc.mergers))
	for i, g := range pc.mergers {
		m[i] = g.n()
	}
	return m
}

// complement is the coordinator's complementary suppression over the
// published cells: the total minus the visible groups must not isolate the
// withheld ones (see complement).
func (p *Planner) complement() {
	total := p.cells[Cell{Total: true}.key()]
	if len(p.q.GroupBy) == 0 || total == nil || total.withheld {
		return
	}
	var cells []*suppCell
	var plan []*planCell
	for _, k := range sortedKeys(p.cells) {
		pc := p.cells[k]
		if pc.cell.Total {
			continue
		}
		m := pc.measures()
		cells = append(cells, &suppCell{key: k, size: slices.Max(m), m: m, withheld: pc.withheld})
		plan = append(plan, pc)
	}
	union := func() []float64 {
		u := total.measures()
		for _, c := range cells {
			if !c.withheld {
				for j, x := range c.m {
					u[j] -= x
				}
			}
		}
		return u
	}
	total.withheld = complement(cells, union, float64(max(p.q.MinCount, 1)), true)
	for i, c := range cells {
		plan[i].withheld = c.withheld
	}
}

// nextRequest is the next stage's request, or nil when no quantile is
// pending.
func (p *Planner) nextRequest() *Request {
	p.sent = nil
	intervals := 0
	for _, pc := range p.cells {
		for _, m := range pc.mergers {
			if s, ok := m.(staged); ok && !pc.withheld {
				intervals += s.intervals()
			}
		}
	}
	if intervals == 0 {
		return nil
	}
	per := min(max(MaxThresholds/intervals, 1), maxThresholdsPerTarget)
	req := &Request{Query: p.q, Stage: p.req.Stage + 1}
	for _, k := range sortedKeys(p.cells) {
		pc := p.cells[k]
		if pc.withheld {
			continue
		}
		for i, m := range pc.mergers {
			s, ok := m.(staged)
			if !ok || s.pending() == 0 {
				continue
			}
			keys := s.thresholds(per)
			ts := ThresholdSet{Cell: pc.cell, Aggregate: p.q.Aggregates[i].Name, Thresholds: make([]float64, len(keys))}
			for j, key := range keys {
				ts.Thresholds[j] = fromKey(key)
			}
			req.Thresholds = append(req.Thresholds, ts)
			p.sent = append(p.sent, sentSet{cell: pc, agg: i, keys: keys})
		}
	}
	return req
}

// observe merges a later stage's counts into the quantile searches.
func (p *Planner) observe(answers []*Partials) error {
	index := map[string]int{}
	sums := make([][]float64, len(p.sent))
	for i, s := range p.sent {
		index[s.cell.cell.key()+"\x00"+p.q.Aggregates[s.agg].Name] = i
		sums[i] = make([]float64, len(s.keys))
	}
	for ai, a := range answers {
		for _, c := range a.Cells {
			if c.Suppressed {
				return fmt.Errorf("answer %d withheld cell %s, which it released at stage 1; did its data change?", ai, c.Cell)
			}
			for name, v := range c.Values {
				i := index[c.key()+"\x00"+name]
				for j, x := range v {
					sums[i][j] += x
				}
			}
		}
	}
	for i, s := range p.sent {
		if err := s.cell.mergers[s.agg].(staged).observe(s.keys, sums[i]); err != nil {
			return fmt.Errorf("cell %s, aggregate %s: %w", s.cell.cell, p.q.Aggregates[s.agg].Name, err)
		}
	}
	return nil
}

// build is the published result: every cell, groups in order and the
// total last; withheld cells without values.
func (p *Planner) build() *Result {
	cells := make([]*planCell, 0, len(p.cells))
	for _, pc := range p.cells {
		cells = append(cells, pc)
	}
	slices.SortFunc(cells, func(a, b *planCell) int { return compareCells(a.cell, b.cell) })
	res := &Result{Groups: []Group{}, Sites: []string{}}
	for _, pc := range cells {
		g := Group{Group: map[string]string{}, Suppressed: pc.withheld}
		for i, v := range pc.cell.Group {
			g.Group[p.q.GroupBy[i]] = v
		}
		if !pc.withheld {
			g.Values = map[string]any{}
			for i, a := range p.q.Aggregates {
				g.Values[a.Name] = pc.mergers[i].value()
			}
		}
		res.Groups = append(res.Groups, g)
	}
	return res
}
