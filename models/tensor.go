package models

import (
	"fmt"
	"maps"
	"math"
	"slices"
)

// Tensor is a named dense float32 tensor, row-major.
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// Weights is a model's parameters, by tensor name. The map key is
// authoritative; a tensor's Name is informational and, when set, must equal
// its key.
type Weights map[string]*Tensor

// numElements returns the element count implied by shape, or an error when a
// dimension is negative or the product overflows int.
func numElements(shape []int) (int, error) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		if d != 0 && n > math.MaxInt/d {
			return 0, fmt.Errorf("shape %v overflows", shape)
		}
		n *= d
	}
	return n, nil
}

// check reports whether t is internally consistent under key name: the name
// matches, the data length matches the shape, and every value is finite.
func (t *Tensor) check(name string) error {
	if t == nil {
		return fmt.Errorf("tensor %q is nil", name)
	}
	if t.Name != "" && t.Name != name {
		return fmt.Errorf("tensor %q has mismatched name %q", name, t.Name)
	}
	n, err := numElements(t.Shape)
	if err != nil {
		return fmt.Errorf("tensor %q: %w", name, err)
	}
	if len(t.Data) != n {
		return fmt.Errorf("tensor %q has %d values, shape %v needs %d", name, len(t.Data), t.Shape, n)
	}
	for i, v := range t.Data {
		if v-v != 0 { // NaN or ±Inf: one subtraction, not two tests
			return fmt.Errorf("tensor %q has non-finite value %v at index %d", name, v, i)
		}
	}
	return nil
}

// clone deep-copies t so that neither shape nor data is shared.
func (t *Tensor) clone() *Tensor {
	if t == nil {
		return nil
	}
	return &Tensor{Name: t.Name, Shape: slices.Clone(t.Shape), Data: slices.Clone(t.Data)}
}

// Clone returns a deep copy of w; the copy shares no memory with w.
func (w Weights) Clone() Weights {
	if w == nil {
		return nil
	}
	out := make(Weights, len(w))
	for name, t := range w {
		out[name] = t.clone()
	}
	return out
}

// Names returns the tensor names in sorted order, so callers iterating over
// weights get a deterministic order.
func (w Weights) Names() []string {
	return slices.Sorted(maps.Keys(w))
}

// NumParams returns the total number of scalar parameters.
func (w Weights) NumParams() int {
	n := 0
	for _, t := range w {
		if t != nil {
			n += len(t.Data)
		}
	}
	return n
}

// Validate checks that w has exactly the tensor names and shapes of spec and
// that every value is finite. Errors name the offending tensor, so a bad site
// update can be diagnosed from the message alone.
func (w Weights) Validate(spec Weights) error {
	for _, name := range spec.Names() {
		t, ok := w[name]
		if !ok {
			return fmt.Errorf("missing tensor %q", name)
		}
		if t == nil || spec[name] == nil {
			return fmt.Errorf("tensor %q is nil", name)
		}
		if !slices.Equal(t.Shape, spec[name].Shape) {
			return fmt.Errorf("tensor %q has shape %v, want %v", name, t.Shape, spec[name].Shape)
		}
		if err := t.check(name); err != nil {
			return err
		}
	}
	for _, name := range w.Names() {
		if _, ok := spec[name]; !ok {
			return fmt.Errorf("unexpected tensor %q", name)
		}
	}
	return nil
}
