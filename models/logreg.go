package models

import (
	"context"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// ArchLogReg names multinomial logistic regression (softmax over K classes;
// K=2 for binary problems).
const ArchLogReg = "logreg"

// Tensor names follow PyTorch's nn.Linear so exported files load into a
// torch.nn.Linear(F, K) with load_state_dict after stripping the prefix.
const (
	WeightName = "linear.weight" // shape [K, F]
	BiasName   = "linear.bias"   // shape [K]
)

// NewLogReg returns zero-initialised logistic regression weights for the
// given feature and class counts. Zero is a fine start for a convex problem
// and keeps every site's starting point identical without sharing a seed.
// It panics if features < 1 or classes < 2, like make with a bad length:
// callers are expected to have validated their configuration.
func NewLogReg(features, classes int) Weights {
	if features < 1 || classes < 2 {
		panic(fmt.Sprintf("models.NewLogReg: need features >= 1 and classes >= 2, got %d and %d", features, classes))
	}
	return Weights{
		WeightName: {Name: WeightName, Shape: []int{classes, features}, Data: MakeValues(classes * features)},
		BiasName:   {Name: BiasName, Shape: []int{classes}, Data: make([]float32, classes)},
	}
}

// logReg is a validated view of logistic regression weights.
type logReg struct {
	w, b     []float32 // [K*F] row-major, [K]
	classes  int
	features int
}

// asLogReg checks that w holds exactly a logistic regression's tensors with
// consistent, finite values.
func asLogReg(w Weights) (logReg, error) {
	wt, ok := w[WeightName]
	if !ok || wt == nil {
		return logReg{}, fmt.Errorf("missing tensor %q", WeightName)
	}
	if len(wt.Shape) != 2 || wt.Shape[0] < 2 || wt.Shape[1] < 1 {
		return logReg{}, fmt.Errorf("tensor %q has shape %v, want [classes>=2, features>=1]", WeightName, wt.Shape)
	}
	k, f := wt.Shape[0], wt.Shape[1]
	spec := Weights{
		WeightName: {Shape: []int{k, f}},
		BiasName:   {Shape: []int{k}},
	}
	if err := w.Validate(spec); err != nil {
		return logReg{}, err
	}
	return logReg{w: wt.Data, b: w[BiasName].Data, classes: k, features: f}, nil
}

// logits writes the K class scores for row x into z.
func (m logReg) logits(x []float64, z []float64) {
	for k := range m.classes {
		s := float64(m.b[k])
		row := m.w[k*m.features : (k+1)*m.features]
		for j, v := range row {
			s += float64(v) * x[j]
		}
		z[k] = s
	}
}

// checkRows verifies X has the model's feature count.
func (m logReg) checkRows(X *mat.Dense) (int, error) {
	if X == nil {
		return 0, fmt.Errorf("nil feature matrix")
	}
	r, c := X.Dims()
	if c != m.features {
		return 0, fmt.Errorf("feature matrix has %d columns, model has %d features", c, m.features)
	}
	return r, nil
}

// argmax returns the index of the largest value; ties go to the lowest index
// so predictions are deterministic.
func argmax(z []float64) int {
	best := 0
	for k := 1; k < len(z); k++ {
		if z[k] > z[best] {
			best = k
		}
	}
	return best
}

// PredictLogReg returns the argmax class index for each row of the
// standardized matrix X.
func PredictLogReg(w Weights, X *mat.Dense) ([]int, error) {
	m, err := asLogReg(w)
	if err != nil {
		return nil, fmt.Errorf("predicting with logreg: %w", err)
	}
	n, err := m.checkRows(X)
	if err != nil {
		return nil, fmt.Errorf("predicting with logreg: %w", err)
	}
	z := make([]float64, m.classes)
	out := make([]int, n)
	for i := range n {
		m.logits(X.RawRowView(i), z)
		out[i] = argmax(z)
	}
	return out, nil
}

// EvaluateLogReg returns the number of rows of the standardized matrix X
// whose argmax prediction equals y, and the mean cross-entropy (natural log,
// no L2 term) over all rows. It uses plain float64 math so evaluation needs
// no graph and is cheap to run on every round.
func EvaluateLogReg(w Weights, X *mat.Dense, y []int) (correct int, loss float64, err error) {
	m, err := asLogReg(w)
	if err != nil {
		return 0, 0, fmt.Errorf("evaluating logreg: %w", err)
	}
	n, err := m.checkRows(X)
	if err != nil {
		return 0, 0, fmt.Errorf("evaluating logreg: %w", err)
	}
	if err := checkLabels(y, n, m.classes); err != nil {
		return 0, 0, fmt.Errorf("evaluating logreg: %w", err)
	}
	if n == 0 {
		return 0, 0, fmt.Errorf("evaluating logreg: no rows")
	}
	z := make([]float64, m.classes)
	var total float64
	for i := range n {
		m.logits(X.RawRowView(i), z)
		if argmax(z) == y[i] {
			correct++
		}
		total += logSumExp(z) - z[y[i]]
	}
	return correct, total / float64(n), nil
}

// logSumExp computes log(sum(exp(z))) stably by factoring out the maximum.
func logSumExp(z []float64) float64 {
	mx := z[0]
	for _, v := range z[1:] {
		mx = math.Max(mx, v)
	}
	var s float64
	for _, v := range z {
		s += math.Exp(v - mx)
	}
	return mx + math.Log(s)
}

// checkLabels verifies there is one label per row and each is a valid class.
func checkLabels(y []int, rows, classes int) error {
	if len(y) != rows {
		return fmt.Errorf("have %d labels for %d rows", len(y), rows)
	}
	for i, c := range y {
		if c < 0 || c >= classes {
			return fmt.Errorf("label %d at row %d is outside [0,%d)", c, i, classes)
		}
	}
	return nil
}

func init() {
	RegisterArch(ArchLogReg, func(p ArchParams) (Arch, error) {
		if !p.empty() {
			return nil, fmt.Errorf("model type logreg takes no hidden layers or activation")
		}
		return logRegArch{}, nil
	})
}

// logRegArch is multinomial logistic regression behind the Arch interface.
type logRegArch struct{}

func (logRegArch) Name() string       { return ArchLogReg }
func (logRegArch) Params() ArchParams { return ArchParams{} }

func (logRegArch) Init(features, classes int) (Weights, error) {
	if features < 1 || classes < 2 {
		return nil, fmt.Errorf("logreg needs at least 1 feature and 2 classes, got %d and %d", features, classes)
	}
	return NewLogReg(features, classes), nil
}

func (logRegArch) NumParams(features, classes int) int64 {
	return int64(classes) * int64(features+1)
}

func (logRegArch) Check(w Weights, features, classes int) error {
	m, err := asLogReg(w)
	if err != nil {
		return err
	}
	if m.classes != classes || m.features != features {
		return fmt.Errorf("weights are for %d classes × %d features, want %d × %d", m.classes, m.features, classes, features)
	}
	return nil
}

func (logRegArch) Kind() Kind { return Classifier }

func (logRegArch) Train(ctx context.Context, w Weights, X *mat.Dense, y Targets, cfg TrainConfig) (TrainResult, error) {
	return TrainLogReg(ctx, w, X, y.Classes, cfg)
}

func (logRegArch) Evaluate(w Weights, X *mat.Dense, y Targets) (Score, error) {
	correct, loss, err := EvaluateLogReg(w, X, y.Classes)
	return Score{Rows: len(y.Classes), Correct: correct, Loss: loss}, err
}

func (logRegArch) Predict(w Weights, X *mat.Dense) (Predictions, error) {
	p, err := PredictLogReg(w, X)
	return Predictions{Classes: p}, err
}
