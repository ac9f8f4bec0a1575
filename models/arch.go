package models

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"gonum.org/v1/gonum/mat"
)

// Arch is one model architecture: everything the coordinator, a site, the
// job spec, the egress bound, the demo's central baseline and the exported
// file need to know about a kind of model. They ask the Arch and never
// switch on its name: a new model is a new file that registers itself
// (RegisterArch), and nothing else has to learn it.
//
// Weights are named tensors (Weights); an Arch owns their names and shapes.
// X is always standardized (the job's scaler applied). A classifier's
// targets are class indices in [0, classes); a regressor's are the label's
// numeric values, and it is built for classes = 0.
type Arch interface {
	// Name is the registered name, written to exported files as
	// federa.architecture.
	Name() string
	// Kind says whether the model predicts a class or a number: what its
	// targets, metrics and exported file hold.
	Kind() Kind
	// Params are the architecture's parameters (hidden sizes, activation),
	// as the job spec gave them with defaults applied; exported files
	// carry them so the file alone rebuilds the Arch.
	Params() ArchParams
	// Init returns the weights a job starts from for this many features
	// and classes (0 for a regressor).
	Init(features, classes int) (Weights, error)
	// NumParams is how many values those weights hold: the most a site's
	// update may carry.
	NumParams(features, classes int) int64
	// Check says why w is not this architecture's weights for features and
	// classes, or nil.
	Check(w Weights, features, classes int) error
	// Train runs local training from w and returns new weights; w is not
	// modified.
	Train(ctx context.Context, w Weights, X *mat.Dense, y Targets, cfg TrainConfig) (TrainResult, error)
	// Evaluate scores w on (X, y).
	Evaluate(w Weights, X *mat.Dense, y Targets) (Score, error)
	// Predict returns the prediction per row of X: class indices for a
	// classifier, values for a regressor.
	Predict(w Weights, X *mat.Dense) (Predictions, error)
}

// IntoTrainer is an Arch whose training can write its new weights into
// memory the caller no longer needs. A big model's update is as large as
// the model, and a site trains every round: fresh memory for it costs a
// page fault per 4 KiB, memory already in use does not. Optional; a site
// uses it when the architecture has it.
type IntoTrainer interface {
	// TrainInto is Train, free to put each new tensor into the memory of
	// dst's tensor of the same name and size. dst (nil: none) shares no
	// memory with w, and is the arch's to overwrite; what it does not use
	// is dropped.
	TrainInto(ctx context.Context, dst, w Weights, X *mat.Dense, y Targets, cfg TrainConfig) (TrainResult, error)
}

// Kind is what a model predicts.
type Kind int

const (
	// Classifier predicts one of the label's values (classes); metrics are
	// accuracy and mean cross-entropy.
	Classifier Kind = iota
	// Regressor predicts the label as a number; metrics are RMSE and R².
	Regressor
)

func (k Kind) String() string {
	if k == Regressor {
		return "regression"
	}
	return "classification"
}

// Targets are the labels of the rows of X, in the form the Arch's Kind
// takes: Classes for a classifier, Values for a regressor.
type Targets struct {
	Classes []int
	Values  []float64
}

// ClassTargets wraps class indices.
func ClassTargets(y []int) Targets { return Targets{Classes: y} }

// ValueTargets wraps numeric targets.
func ValueTargets(y []float64) Targets { return Targets{Values: y} }

// Score is an evaluation: Loss is the mean loss over Rows (cross-entropy
// for a classifier, squared error for a regressor, so a regressor's RMSE
// is √Loss); Correct counts a classifier's right answers.
type Score struct {
	Rows    int
	Correct int
	Loss    float64
}

// Predictions are an Arch's outputs per row: Classes for a classifier,
// Values for a regressor.
type Predictions struct {
	Classes []int
	Values  []float64
}

// ArchParams are an architecture's parameters from the job spec's model
// section. Each architecture takes what it needs and refuses the rest.
type ArchParams struct {
	Hidden     []int  // hidden layer sizes (mlp)
	Activation string // hidden activation (mlp): relu or tanh
}

func (p ArchParams) empty() bool { return len(p.Hidden) == 0 && p.Activation == "" }

var (
	archMu sync.RWMutex
	archs  = map[string]func(ArchParams) (Arch, error){}
)

// RegisterArch makes an architecture available under name, for job specs
// and exported files. Registering a name twice panics.
func RegisterArch(name string, f func(ArchParams) (Arch, error)) {
	archMu.Lock()
	defer archMu.Unlock()
	if _, dup := archs[name]; dup || name == "" {
		panic(fmt.Sprintf("models: architecture %q registered twice or unnamed", name))
	}
	archs[name] = f
}

// ArchNames lists the registered architectures, sorted.
func ArchNames() []string {
	archMu.RLock()
	defer archMu.RUnlock()
	return slices.Sorted(maps.Keys(archs))
}

// NewArch returns the architecture name with parameters p; an unknown name
// or a parameter the architecture does not take is an error saying what
// is valid.
func NewArch(name string, p ArchParams) (Arch, error) {
	archMu.RLock()
	f, ok := archs[name]
	archMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("unknown model type %q (valid: %s)", name, strings.Join(ArchNames(), ", "))
	}
	return f(p)
}
