package federav1

import (
	"fmt"
	"math"
	"strings"
)

// Name is the status as people read it: "running", "succeeded", ….
func (s JobStatus) Name() string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "JOB_STATUS_"))
}

// FormatAccuracy prints an accuracy, or "n/a" for a round nobody could
// score (NaN).
func FormatAccuracy(a float64) string {
	if math.IsNaN(a) {
		return "n/a"
	}
	return fmt.Sprintf("%.4f", a)
}

// Regression reports whether a scored round is a regressor's: it has
// RMSE in place of accuracy.
func (r *RoundSummary) Regression() bool {
	return r.GetEvalExamples() > 0 && math.IsNaN(r.GetEvalAccuracy()) && !math.IsNaN(r.GetEvalRmse())
}

// FormatEval prints a round's held-out figure: "eval accuracy 0.9512",
// "eval RMSE 53.1, R² 0.4812", or "eval accuracy n/a" when no site could
// score the round.
func FormatEval(r *RoundSummary) string {
	if r.Regression() {
		return fmt.Sprintf("eval RMSE %.4g, R² %s", r.GetEvalRmse(), FormatAccuracy(r.GetEvalR2()))
	}
	return "eval accuracy " + FormatAccuracy(r.GetEvalAccuracy())
}
