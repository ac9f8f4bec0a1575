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
// X is always standardized (the job's scaler applied) and y holds class
// indices in [0, classes).
type Arch interface {
	// Name is the registered name, written to exported files as
	// federa.architecture.
	Name() string
	// Params are the architecture's parameters (hidden sizes, activation),
	// as the job spec gave them with defaults applied; exported files
	// carry them so the file alone rebuilds the Arch.
	Params() ArchParams
	// Init returns the weights a job starts from for this many features
	// and classes.
	Init(features, classes int) (Weights, error)
	// NumParams is how many values those weights hold: the most a site's
	// update may carry.
	NumParams(features, classes int) int64
	// Check says why w is not this architecture's weights for features and
	// classes, or nil.
	Check(w Weights, features, classes int) error
	// Train runs local training from w and returns new weights; w is not
	// modified.
	Train(ctx context.Context, w Weights, X *mat.Dense, y []int, cfg TrainConfig) (TrainResult, error)
	// Evaluate counts correct predictions and the mean loss on (X, y).
	Evaluate(w Weights, X *mat.Dense, y []int) (correct int, loss float64, err error)
	// Predict returns the class index per row of X.
	Predict(w Weights, X *mat.Dense) ([]int, error)
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
