package coordinator

import (
	"fmt"
	"math"
	"testing"

	"github.com/federa-dev/federa/models"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// TestScoreRoundPoolsSites checks a round's held-out figures against the
// same figures computed over the union of the sites' rows by hand.
func TestScoreRoundPoolsSites(t *testing.T) {
	// Site a: labels 1, 2, 3 with squared errors 1, 0, 4; site b: labels
	// 10, 14 with squared errors 4, 1. Union: n 5, SSE 10, mean 6,
	// SST 25+16+9+16+64 = 130.
	ya, yb := []float64{1, 2, 3}, []float64{10, 14}
	sa, sb := models.SpreadOf(ya), models.SpreadOf(yb)
	answers := map[string]reply{
		"eu/a": {result: &federav1.TaskResult{EvalTotal: 3, EvalLoss: 5.0 / 3, EvalLabelMean: sa.Mean, EvalLabelM2: sa.M2}},
		"us/b": {result: &federav1.TaskResult{EvalTotal: 2, EvalLoss: 5.0 / 2, EvalLabelMean: sb.Mean, EvalLabelM2: sb.M2}},
	}
	sum := &federav1.RoundSummary{EvalAccuracy: math.NaN(), EvalLoss: math.NaN(), EvalRmse: math.NaN(), EvalR2: math.NaN()}
	scoreRound(sum, answers, models.Regressor)
	if math.Abs(sum.EvalLoss-2) > 1e-12 || math.Abs(sum.EvalRmse-math.Sqrt(2)) > 1e-12 || math.Abs(sum.EvalR2-(1-10.0/130)) > 1e-12 || sum.EvalExamples != 5 {
		t.Errorf("regression round: MSE %v RMSE %v R² %v n %d; want 2, √2, %v, 5", sum.EvalLoss, sum.EvalRmse, sum.EvalR2, sum.EvalExamples, 1-10.0/130)
	}
	if !math.IsNaN(sum.EvalAccuracy) || !sum.Regression() {
		t.Errorf("a regression round has accuracy %v (want NaN), Regression() %v", sum.EvalAccuracy, sum.Regression())
	}
	if got := federav1.FormatEval(sum); got != "eval RMSE 1.414, R² 0.9231" {
		t.Errorf("FormatEval = %q", got)
	}

	cls := map[string]reply{
		"eu/a": {result: &federav1.TaskResult{EvalTotal: 4, EvalCorrect: 3, EvalLoss: 0.5}},
		"us/b": {result: &federav1.TaskResult{EvalTotal: 6, EvalCorrect: 6, EvalLoss: 0.1}},
	}
	sum = &federav1.RoundSummary{EvalAccuracy: math.NaN(), EvalLoss: math.NaN(), EvalRmse: math.NaN(), EvalR2: math.NaN()}
	scoreRound(sum, cls, models.Classifier)
	if sum.EvalAccuracy != 0.9 || math.Abs(sum.EvalLoss-0.26) > 1e-12 || sum.Regression() {
		t.Errorf("classification round: accuracy %v loss %v", sum.EvalAccuracy, sum.EvalLoss)
	}
	if got := federav1.FormatEval(sum); got != "eval accuracy 0.9000" {
		t.Errorf("FormatEval = %q", got)
	}

	none := &federav1.RoundSummary{EvalAccuracy: math.NaN(), EvalLoss: math.NaN(), EvalRmse: math.NaN(), EvalR2: math.NaN()}
	scoreRound(none, map[string]reply{}, models.Regressor)
	if got := federav1.FormatEval(none); got != "eval accuracy n/a" || !math.IsNaN(none.EvalRmse) {
		t.Errorf("an unscored round: %q, RMSE %v", got, none.EvalRmse)
	}
}

func TestSiteRoundsKeepEachSitesFigures(t *testing.T) {
	train := map[string]reply{
		"us/b": {result: &federav1.TaskResult{TrainLoss: 0.5, Examples: 30}},
		"eu/a": {result: &federav1.TaskResult{TrainLoss: 0.25, Examples: 10}},
	}
	eval := map[string]reply{"eu/a": {result: &federav1.TaskResult{EvalTotal: 4, EvalCorrect: 3, EvalLoss: 0.4}}}
	got := siteRounds(train, eval, models.Classifier)
	if len(got) != 2 || got[0].GetSite() != "eu/a" || got[0].GetEvalAccuracy() != 0.75 || got[0].GetTrainLoss() != 0.25 || got[0].GetTrainExamples() != 10 {
		t.Fatalf("site rounds %v", got)
	}
	// us/b trained but sent no evaluation: its eval figures are NaN.
	if b := got[1]; b.GetEvalTotal() != 0 || !math.IsNaN(b.GetEvalAccuracy()) || b.GetTrainLoss() != 0.5 {
		t.Errorf("a site without an evaluation: %v", b)
	}
	reg := siteRounds(train, map[string]reply{"eu/a": {result: &federav1.TaskResult{EvalTotal: 4, EvalLoss: 9}}}, models.Regressor)
	if reg[0].GetEvalRmse() != 3 || !math.IsNaN(reg[0].GetEvalAccuracy()) {
		t.Errorf("a regressor's site round: %v", reg[0])
	}
	many := map[string]reply{}
	for i := range maxSiteRounds + 1 {
		many[fmt.Sprintf("eu/s%02d", i)] = reply{result: &federav1.TaskResult{}}
	}
	if got := siteRounds(many, nil, models.Classifier); got != nil {
		t.Errorf("a round of %d sites kept %d site rounds; the job record must stay bounded", len(many), len(got))
	}
}
