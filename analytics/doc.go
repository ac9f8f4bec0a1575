// Package analytics is the pure core of federated analytics: a query spec,
// what a site computes from its rows (mergeable partials, never a row),
// and how the coordinator merges the sites' partials into a published
// result, in one or more stages. It does no I/O: the site agent feeds it
// rows through a RowSource (a BatchSource hands them over column by
// column, which the numeric aggregates sum in tight loops, with the same
// result) and carries Requests and Partials over the wire (both are JSON,
// decoded strictly by DecodeRequest and DecodePartials).
//
//	coordinator                              each site
//	p := NewPlanner(q)
//	req, done, _ := p.Next(nil)   ──req──►   part, _ := Compute(q, req, k, rows)
//	                                          AddNoise(part, z, rng)   // under privacy
//	req, done, _ = p.Next(parts)  ◄─part──
//	… until done; res, _ := p.Result()
//
// # Semantics
//
// Rows are filtered by where (every condition must hold), then put in a cell
// by their group_by values, and into the ungrouped (total) cell when the
// query has no group_by or asks for totals. Each aggregate is computed per
// cell as pandas or numpy would centrally over the union of the sites'
// rows:
//
//   - count: rows (with a column: rows where it is not missing).
//   - sum, mean; variance and stddev as sample statistics (n−1).
//   - histogram: numpy.histogram with the given edges: bins [e_i, e_i+1),
//     the last closed, values outside not counted.
//   - quantile: numpy.quantile(method="linear"), pandas' default.
//   - correlation: Pearson's, as numpy.corrcoef (clamped to [−1, 1]; null
//     for a constant column).
//   - linear_regression: ordinary least squares of label on columns with
//     an intercept.
//
// Without privacy, counts, histograms and quantiles are exact and the rest
// agree with a central computation to within 1e-9 relative (about 1e-15 on
// the test data): sites release compensated sums and Welford co-moments
// that the coordinator merges by Chan's exact formula, and the regression
// is solved from the merged centred XᵀX and Xᵀy (Cholesky, gonum). A
// regression whose centred XᵀX is singular or has condition number over
// 1e12 is null, as is one with no more rows than coefficients.
//
// Missing values: a cell is missing when its text, trimmed, is empty or one
// of pandas' NA markers (NA, NaN, null, None, N/A, …) or it is a NaN
// number. A missing cell fails every where condition (as SQL's NULL); a row
// missing a group_by value is dropped from the query, total included (as
// pandas' groupby(dropna=True)); an aggregate skips a row missing any of
// its columns (so correlation and regression use complete rows, pandas'
// dropna().corr()). Text that is not a number in a column an aggregate
// reads as a number, or an infinite value, is an error naming the column
// and the row (rows count from 1 in scan order; a CSV header is not a row).
//
// Where literals: a YAML number compares with a cell by numeric value;
// text compares with the cell's raw text; <, <=, > and >= need a number.
// Group values: a cell that parses as a number is grouped by its exact
// value, written canonically (strconv 'g', -1: "1.0" and "1" are group
// "1"); other text as written. Groups are published in order, numbers by
// value before text, and the total last with an empty group.
//
// # Quantiles
//
// Exact quantiles come from bisection over federated counts, never from a
// value a site sends: stage 1 merges each cell's n, which fixes the order
// statistics numpy's definition needs; every later stage sends, per cell,
// up to 1023 thresholds inside each unresolved interval, and sites answer
// how many of their values are ≤ each. Intervals are kept in the total
// order of float64 bit patterns, so each stage narrows them 1024-fold and
// at most 7 stages after the first pin every order statistic to a single
// float64 (more only when a stage would exceed MaxThresholds): the result
// equals numpy's bit for bit (its interpolation formula included). The price is stages: each re-scans the sites' data, and the
// coordinator learns the counts below its thresholds, i.e. the order
// statistics of every published cell (a curious coordinator could spend
// its thresholds on learning more of a cell's values; MaxStages and
// MaxThresholds bound how much). Under privacy quantiles are read from one
// noisy histogram instead (see below).
//
// # Disclosure control
//
// At the site, with k the larger of the query's min_count and the site
// policy's minimum (the caller passes it to Compute):
//
//  1. A cell (a group or the total) in which the site holds 1 to k−1 rows,
//     or 1 to k−1 contributing values for any aggregate, is withheld: it is
//     sent marked suppressed, with no values.
//  2. Complementary suppression, when totals are released beside groups:
//     the total minus the visible groups equals the union of the withheld
//     groups. While any count of that union (rows, or values of an
//     aggregate) is 1 to k−1, the site also withholds its smallest visible
//     group that adds to that count (ties: the lower key); with none left,
//     it withholds the total. So nothing derivable from one site's release
//     describes fewer than k records.
//
// At the coordinator a cell is suppressed when any site withheld it, and
// the same rule runs over the published cells with k = min_count, plus:
// when exactly one group is suppressed, the smallest visible group (or the
// total) is suppressed too, so that no suppressed cell's values can be
// recovered as total minus visible. Quantile stages ask only for visible
// cells. A suppressed cell's existence (its group value) is published.
// Individual histogram bins may hold fewer than k records.
//
// Group counts are capped at MaxGroups at each site and over all sites, so
// group_by on an identifier fails with the number seen.
//
// # Privacy
//
// With a privacy section each site clips every column an aggregate reads
// as a number to its bounds (the bounds are required; where and group_by
// columns are not clipped), releases sums of deviations from the bounds'
// centres, and, through AddNoise, adds N(0, (z·Δ)²) to every released
// value, Δ being Sensitivity(q): the L2 norm of one record's largest
// contribution to the site's whole release (its group cell and, with
// totals, the total cell). The caller calibrates z with its accountant and
// charges the budget; this package does no accounting. A private query has
// one stage, and its quantiles are read from a noisy histogram of
// PrivateQuantileBins bins over the bounds (order statistic r is the
// midpoint of the bin where the cumulative count passes r; without noise
// within half a bin of the exact quantile of the clipped values).
//
// Noisy counts used as denominators are clamped to at least 1 (mean) or 2
// (variance, correlation, regression, where n−1 divides); means are
// clamped into the bounds, variances into [0, (hi−lo)²/4·n/(n−1)],
// correlations into [−1, 1]; for quantiles the cumulative sums of the noisy
// bins (unbiased) are made non-decreasing and clamped into [0, n].
// Published counts, sums and histogram counts are the noisy values
// themselves (unbiased, possibly negative). Disclosure control
// still applies (the stricter wins), on exact counts: which cells exist
// and which are suppressed is not covered by the privacy guarantee.
package analytics
