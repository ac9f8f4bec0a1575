package analytics

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sort"
)

// quantile is the q-quantiles of a numeric column, over the rows where it is
// not missing, by numpy.quantile's default (method="linear", Hyndman and
// Fan's type 7, which pandas' quantile uses too): with the n values sorted
// as x[0] ≤ … ≤ x[n−1], h = (n−1)·q, the result interpolates x[⌊h⌋] and
// x[⌊h⌋+1] by h−⌊h⌋ with numpy's formula.
//
// Without privacy the result is exact. No site sends a value: the
// coordinator finds each needed order statistic x[r] by bisection over
// federated counts. At stage 1 the sites release n; at each later stage the
// coordinator sends, per cell, thresholds splitting every unresolved
// interval into up to 1024 parts, and each site answers how many of its
// values are ≤ each threshold. Intervals live in the order of float64 bit
// patterns, so after at most ⌈64/10⌉ = 7 such stages every interval holds
// one float64 and x[r] is that exact value. (A query with so many cells
// and quantiles that 1023 thresholds per interval would exceed
// MaxThresholds in a stage gets fewer per interval, and more stages.)
//
// Under privacy there is one stage: each site releases a noisy histogram of
// the clipped column over its bounds in PrivateQuantileBins equal bins, and
// the coordinator reads each order statistic as the midpoint of the bin that
// holds it. Without noise that is within half a bin, (hi−lo)/(2·64), of the
// exact quantile of the clipped values; noise adds the error of the noisy
// cumulative counts.
type quantile struct{}

func init() { register("quantile", quantile{}) }

// maxThresholdsPerTarget is how many parts a stage splits one unresolved
// interval into, less one: 1023 thresholds resolve 10 bits a stage, so 7
// stages after the first resolve all 64. More would save a stage (a scan
// of every site's data) at the price of many more bytes per stage.
const maxThresholdsPerTarget = 1023

func (quantile) fields() []string { return []string{"column", "q"} }

func (quantile) check(a *Aggregate, path string, bad func(string, string, ...any)) {
	checkColumn(bad, path+".column", a.Column)
	if len(a.Q) == 0 {
		bad(path+".q", "required; a list of quantiles in [0, 1], e.g. [0.5]")
	}
	for i, q := range a.Q {
		if !(q >= 0 && q <= 1) {
			bad(fmt.Sprintf("%s.q[%d]", path, i), "%v is outside [0, 1]", q)
		}
	}
}

func (quantile) inputs(a *Aggregate) ([]string, bool) { return []string{a.Column}, true }

func (quantile) width(_ *Aggregate, private bool) int {
	if private {
		return PrivateQuantileBins
	}
	return 1
}

func (quantile) sens2(*Aggregate, []float64) float64 { return 1 }

func (quantile) newAcc(_ *Aggregate, e accEnv) acc {
	if e.private {
		return &fineAcc{lo: e.lo[0], hi: e.hi[0], bins: make([]int64, PrivateQuantileBins)}
	}
	return &quantAcc{keys: e.thresholds, buckets: make([]int64, len(e.thresholds))}
}

func (quantile) newMerger(a *Aggregate, e accEnv) merger {
	if e.private {
		return &fineMerger{q: a.Q, lo: e.lo[0], hi: e.hi[0], bins: make([]float64, PrivateQuantileBins)}
	}
	return &quantMerger{q: a.Q}
}

// orderKey maps a float64 to a uint64 in the same order (-0 below +0, NaN
// beyond ±Inf), so that bisection can split intervals of float64 values
// evenly in their bit patterns.
func orderKey(f float64) uint64 {
	b := math.Float64bits(f)
	if b>>63 == 1 {
		return ^b
	}
	return b | 1<<63
}

// fromKey inverts orderKey.
func fromKey(k uint64) float64 {
	if k>>63 == 1 {
		return math.Float64frombits(k &^ (1 << 63))
	}
	return math.Float64frombits(^k)
}

var (
	keyBelowAll = orderKey(math.Inf(-1))    // no finite value is ≤ it
	keyMax      = orderKey(math.MaxFloat64) // every finite value is ≤ it
)

// lerp is numpy's _lerp: exact at t = 0 and t = 1 and monotone. The
// conversions stop the compiler fusing a multiply and an add, which would
// round differently from numpy.
func lerp(a, b, t float64) float64 {
	d := b - a
	if t >= 0.5 {
		return b - float64(d*(1-t))
	}
	return a + float64(d*t)
}

// position is where quantile q of n sorted values lies, as numpy.quantile
// computes it: between ranks lo and lo+1 at fraction gamma; single means
// rank lo alone decides it.
func position(n int64, q float64) (lo int64, gamma float64, single bool) {
	h := float64(n-1) * q
	if h >= float64(n-1) {
		return n - 1, 0, true
	}
	f := math.Floor(h)
	gamma = h - f
	return int64(f), gamma, gamma == 0
}

// quantAcc is a site's exact-quantile accumulator for one cell: n, and the
// counts of values ≤ each threshold a later stage asks for.
type quantAcc struct {
	rows    int64
	keys    []uint64 // thresholds, ascending
	buckets []int64  // buckets[i]: values above keys[i-1] and ≤ keys[i]
}

func (a *quantAcc) add(xs []float64) {
	a.rows++
	if len(a.keys) == 0 {
		return
	}
	k := orderKey(xs[0])
	if i := sort.Search(len(a.keys), func(i int) bool { return a.keys[i] >= k }); i < len(a.keys) {
		a.buckets[i]++
	}
}

func (a *quantAcc) n() int64           { return a.rows }
func (a *quantAcc) release() []float64 { return []float64{float64(a.rows)} }

// counts are the numbers of values ≤ each threshold.
func (a *quantAcc) counts() []float64 {
	out := make([]float64, len(a.buckets))
	var c int64
	for i, b := range a.buckets {
		c += b
		out[i] = float64(c)
	}
	return out
}

// target is one order statistic being searched for: x[rank] is the value
// with key in (lo, hi]; cLo and cHi are the merged counts of values ≤ lo and
// ≤ hi.
type target struct {
	rank     int64
	lo, hi   uint64
	cLo, cHi float64
}

func (t *target) done() bool { return t.hi-t.lo <= 1 }

// quantMerger is the coordinator's exact-quantile state for one cell.
type quantMerger struct {
	q       []float64
	rows    float64
	targets []*target // by rank, unique
}

func (g *quantMerger) add(v []float64) error {
	if err := checkCount("n", v[0]); err != nil {
		return err
	}
	g.rows += v[0]
	return nil
}

func (g *quantMerger) n() float64 { return g.rows }

// start sets up the order statistics to find, once n is merged.
func (g *quantMerger) start() {
	n := int64(g.rows)
	if n == 0 {
		return
	}
	var ranks []int64
	for _, q := range g.q {
		lo, _, single := position(n, q)
		ranks = append(ranks, lo)
		if !single {
			ranks = append(ranks, lo+1)
		}
	}
	slices.Sort(ranks)
	for _, r := range slices.Compact(ranks) {
		g.targets = append(g.targets, &target{rank: r, lo: keyBelowAll, hi: keyMax, cHi: g.rows})
	}
}

// pending is the number of order statistics not yet found.
func (g *quantMerger) pending() int {
	n := 0
	for _, t := range g.targets {
		if !t.done() {
			n++
		}
	}
	return n
}

// intervals is the number of distinct unresolved intervals: targets whose
// searches have not yet parted share one, and one set of thresholds.
func (g *quantMerger) intervals() int {
	seen := map[[2]uint64]bool{}
	for _, t := range g.targets {
		if !t.done() {
			seen[[2]uint64{t.lo, t.hi}] = true
		}
	}
	return len(seen)
}

// thresholds are the next stage's thresholds: per of them inside each
// unresolved interval, evenly spaced in key order, ascending and unique.
func (g *quantMerger) thresholds(per int) []uint64 {
	var out []uint64
	seen := map[[2]uint64]bool{}
	for _, t := range g.targets {
		if iv := [2]uint64{t.lo, t.hi}; !t.done() && !seen[iv] {
			seen[iv] = true
			out = append(out, split(t.lo, t.hi, per)...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// split returns up to per keys strictly inside (lo, hi), evenly spaced; all
// of them when there are no more than per.
func split(lo, hi uint64, per int) []uint64 {
	gap := hi - lo
	if gap-1 <= uint64(per) {
		out := make([]uint64, 0, gap-1)
		for k := lo + 1; k < hi; k++ {
			out = append(out, k)
		}
		return out
	}
	out := make([]uint64, per)
	for i := range out {
		// lo + ⌊gap·(i+1)/(per+1)⌋, without overflowing 64 bits.
		h, l := bits.Mul64(gap, uint64(i+1))
		q, _ := bits.Div64(h, l, uint64(per+1))
		out[i] = lo + q
	}
	return out
}

// observe narrows every interval with the merged counts of values ≤ each
// key. Counts that contradict an earlier stage mean a site's data changed
// between stages (or a site misreports).
func (g *quantMerger) observe(keys []uint64, counts []float64) error {
	for i, c := range counts {
		if err := checkCount("count", c); err != nil {
			return err
		}
		if c > g.rows || (i > 0 && c < counts[i-1]) {
			return fmt.Errorf("%v values ≤ %v of %v is not consistent with the other counts; did the data change between stages?", c, fromKey(keys[i]), g.rows)
		}
	}
	for _, t := range g.targets {
		for i, k := range keys {
			c := counts[i]
			switch {
			case k <= t.lo && c > t.cLo, k >= t.hi && c < t.cHi:
				return fmt.Errorf("%v values ≤ %v contradicts an earlier stage; did the data change between stages?", c, fromKey(k))
			case k <= t.lo || k >= t.hi:
			case c < t.cLo || c > t.cHi:
				return fmt.Errorf("%v values ≤ %v contradicts an earlier stage; did the data change between stages?", c, fromKey(k))
			case c <= float64(t.rank):
				t.lo, t.cLo = k, c
			default:
				t.hi, t.cHi = k, c
			}
		}
	}
	return nil
}

func (g *quantMerger) value() any {
	out := make([]any, len(g.q))
	n := int64(g.rows)
	if n == 0 || g.pending() > 0 {
		return out
	}
	at := func(rank int64) float64 {
		i, _ := slices.BinarySearchFunc(g.targets, rank, func(t *target, r int64) int { return cmpInt(t.rank, r) })
		return fromKey(g.targets[i].hi)
	}
	for i, q := range g.q {
		lo, gamma, single := position(n, q)
		if single {
			out[i] = num(at(lo))
		} else {
			out[i] = num(lerp(at(lo), at(lo+1), gamma))
		}
	}
	return out
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// fineAcc is a site's private-quantile accumulator: counts of the clipped
// values in PrivateQuantileBins equal bins over the bounds, the last closed.
type fineAcc struct {
	lo, hi float64
	bins   []int64
	rows   int64
}

func (a *fineAcc) add(xs []float64) {
	b := int((xs[0] - a.lo) / (a.hi - a.lo) * float64(len(a.bins)))
	a.bins[min(max(b, 0), len(a.bins)-1)]++
	a.rows++
}

func (a *fineAcc) n() int64 { return a.rows }

func (a *fineAcc) release() []float64 {
	v := make([]float64, len(a.bins))
	for i, c := range a.bins {
		v[i] = float64(c)
	}
	return v
}

type fineMerger struct {
	q      []float64
	lo, hi float64
	bins   []float64
}

func (g *fineMerger) add(v []float64) error {
	for i, c := range v {
		g.bins[i] += c
	}
	return nil
}

func (g *fineMerger) n() float64 {
	var s float64
	for _, c := range g.bins {
		s += c
	}
	return s
}

// value reads the quantiles off the noisy histogram; see fineQuantiles.
func (g *fineMerger) value() any {
	return fineQuantiles(g.bins, g.lo, g.hi, g.q)
}

// fineQuantiles reads quantiles off a (noisy) histogram over [lo, hi]. The
// cumulative counts are the sums of the noisy bins, which are unbiased
// (clamping each bin at 0 first would not be: every empty bin would add
// positive mass), made non-decreasing by a running maximum and clamped
// into [0, n], n being the noisy total. Order statistic r is the midpoint
// of the first bin whose cumulative count exceeds r, and the quantile
// interpolates as numpy does with h = (n−1)·q. With n below 1 every
// quantile is null.
func fineQuantiles(bins []float64, lo, hi float64, qs []float64) []any {
	out := make([]any, len(qs))
	cum := make([]float64, len(bins)+1)
	for i, c := range bins {
		cum[i+1] = cum[i] + c
	}
	n := cum[len(bins)]
	if !(n >= 1) {
		return out
	}
	for i := 1; i < len(cum); i++ {
		cum[i] = min(max(cum[i], cum[i-1], 0), n)
	}
	w := (hi - lo) / float64(len(bins))
	at := func(r float64) float64 {
		r = min(r, n-1)
		b := sort.Search(len(bins), func(b int) bool { return cum[b+1] > r })
		b = min(b, len(bins)-1)
		return lo + (float64(b)+0.5)*w
	}
	for i, q := range qs {
		h := (n - 1) * q
		f := math.Floor(h)
		out[i] = num(lerp(at(f), at(f+1), h-f))
	}
	return out
}
