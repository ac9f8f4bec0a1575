// Package privacy is a Rényi-DP accountant for the sampled Gaussian
// mechanism, the mechanism behind record-level DP-SGD: each step samples
// every record independently with probability q (Poisson sampling), clips
// each record's contribution to L2 norm C, sums, and adds Gaussian noise of
// standard deviation σ·C, where σ is the noise multiplier.
//
// # What it guarantees
//
// SampledGaussian returns an RDP curve: for each order α, an upper bound
// ε_α on the Rényi divergence of order α between the mechanism's output
// distributions on any two datasets that differ by adding or removing one
// record (Mironov, Talwar, Zhang 2019, "Rényi Differential Privacy of the
// Sampled Gaussian Mechanism", arXiv:1908.10530). Curves compose by
// addition (RDP composition), so a dataset's ledger is the sum of the
// curves of every job that touched it — across jobs, rounds and restarts —
// and can be stored as JSON between them. RDP.Epsilon turns a curve into an
// (ε, δ)-DP guarantee for the whole history.
//
// The guarantee covers all intermediate releases (every noisy step), not
// just the final model. It assumes Poisson sampling; shuffled fixed-size
// batches are commonly accounted this way but are not strictly covered.
// q = 1 is the plain Gaussian mechanism.
//
// # Orders
//
// The curve is evaluated at a fixed list of orders; DefaultOrders (1.1 to
// 10.9 in steps of 0.1, then 12 to 63) are Opacus's defaults. Only curves on
// identical orders compose. A smaller ε may be available at orders outside
// the list; Epsilon reports which order was optimal so a caller can notice
// one at the edge.
//
// Integer orders use the exact finite binomial sum; fractional orders use
// Mironov et al.'s series. Both are computed in log space, so tiny q, large
// or small σ and millions of steps neither overflow nor leak NaN or Inf.
// Where the fractional series cannot be trusted to a relative 1e-6 (in
// practice only for σ ≳ 30, where each step's RDP is around 1e-13), a
// provable upper bound from the neighbouring integer orders is used
// instead, so a ledger never under-counts.
//
// # Conversion to (ε, δ)
//
// Epsilon uses the conversion of Balle et al. (2020), "Hypothesis testing
// interpretations and Rényi differential privacy" (Theorem 21 of
// arXiv:1905.09982; Proposition 12 of Canonne, Kamath, Steinke,
// arXiv:2004.00010):
//
//	ε = min over α of  ε_α + log((α−1)/α) − (log δ + log α)/(α−1)
//
// which Opacus, TF Privacy (since Dec 2020) and Google's dp_accounting use,
// and which is never larger than the classic ε_α + log(1/δ)/(α−1) (Mironov
// 2017, Proposition 3) that older tools and papers report.
//
// CalibrateNoise and CalibrateNoiseAfter search for the smallest noise
// multiplier that keeps a planned job — on its own or on top of a dataset's
// ledger — within an (ε, δ) budget; the answer is always verified to meet
// the budget.
//
// # Sources
//
// The RDP computation is a port of Opacus's
// opacus/accountants/analysis/rdp.py (Apache License 2.0), itself from TF
// Privacy's rdp_accountant.py; sgm.go lists where the port departs from it
// and why. The tests pin reference values from the test suites of Opacus,
// TF Privacy and dp_accounting and from TF Privacy's published MNIST
// tutorial figures.
//
// The package does no I/O and has no mutable global state.
package privacy
