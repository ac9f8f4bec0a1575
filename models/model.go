package models

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/nlpodyssey/safetensors"
	"gonum.org/v1/gonum/mat"
)

// Model is an exported, self-describing model: everything needed to turn a
// raw feature row into a class label.
//
// On disk it is a safetensors file with F32 tensors linear.weight [K,F],
// linear.bias [K], scaler.mean [F] and scaler.scale [F], and string
// metadata federa.architecture, federa.features (JSON list),
// federa.classes (JSON list) and federa.label, plus any extra Metadata.
// The scaler is stored as F32, so it comes back rounded to float32.
type Model struct {
	Architecture string     // a registered Arch name, e.g. ArchLogReg
	Params       ArchParams // the architecture's parameters (hidden sizes, activation)
	Features     []string   // column names, in order
	Classes      []string   // label values, in output order
	Label        string     // name of the label column
	Scaler       Scaler
	Weights      Weights
	// Metadata is extra string metadata, e.g. "federa.job_id". It must not
	// use the reserved keys above. Reading yields nil when there is none.
	Metadata map[string]string
}

// Safetensors tensor names and metadata keys of the model file.
const (
	scalerMeanName  = "scaler.mean"
	scalerScaleName = "scaler.scale"

	metaArchitecture = "federa.architecture"
	metaFeatures     = "federa.features"
	metaClasses      = "federa.classes"
	metaLabel        = "federa.label"
	metaHidden       = "federa.hidden"
	metaActivation   = "federa.activation"
)

func reservedMetadataKey(k string) bool {
	switch k {
	case metaArchitecture, metaFeatures, metaClasses, metaLabel, metaHidden, metaActivation:
		return true
	}
	return false
}

// Validate checks that the model is complete and self-consistent: a known
// architecture, unique feature and class names, weight and scaler shapes
// matching them, finite values, and no reserved keys in Metadata.
func (m *Model) Validate() error {
	if m == nil {
		return fmt.Errorf("model is nil")
	}
	arch, err := NewArch(m.Architecture, m.Params)
	if err != nil {
		return err
	}
	if m.Label == "" {
		return fmt.Errorf("label name is empty")
	}
	if len(m.Features) == 0 {
		return fmt.Errorf("no features")
	}
	if err := uniqueNames("feature", m.Features, false); err != nil {
		return err
	}
	switch arch.Kind() {
	case Regressor:
		if len(m.Classes) != 0 {
			return fmt.Errorf("a %s model predicts a number and has no classes, have %d", m.Architecture, len(m.Classes))
		}
	default:
		if len(m.Classes) < 2 {
			return fmt.Errorf("need at least 2 classes, have %d", len(m.Classes))
		}
	}
	if err := uniqueNames("class", m.Classes, true); err != nil {
		return err
	}
	if err := arch.Check(m.Weights, len(m.Features), len(m.Classes)); err != nil {
		return fmt.Errorf("weights: %w", err)
	}
	if err := m.Scaler.check(len(m.Features)); err != nil {
		return err
	}
	for k := range m.Metadata {
		if reservedMetadataKey(k) {
			return fmt.Errorf("metadata key %q is reserved", k)
		}
	}
	return nil
}

// uniqueNames rejects duplicates (and empty names unless allowEmpty), since
// a repeated column or class name makes the file ambiguous.
func uniqueNames(kind string, names []string, allowEmpty bool) error {
	seen := make(map[string]bool, len(names))
	for i, n := range names {
		if n == "" && !allowEmpty {
			return fmt.Errorf("%s %d has an empty name", kind, i)
		}
		if seen[n] {
			return fmt.Errorf("duplicate %s %q", kind, n)
		}
		seen[n] = true
	}
	return nil
}

// Kind is what the model predicts; an unknown architecture counts as a
// classifier (Validate refuses it).
func (m *Model) Kind() Kind {
	if arch, err := NewArch(m.Architecture, m.Params); err == nil {
		return arch.Kind()
	}
	return Classifier
}

// Predict standardizes raw (rows in Features order, unscaled) with the
// model's scaler and returns the prediction per row: a classifier's argmax
// class index (index into Classes for the label value), or a regressor's
// value.
func (m *Model) Predict(raw *mat.Dense) (Predictions, error) {
	if err := m.Validate(); err != nil {
		return Predictions{}, fmt.Errorf("predicting: invalid model: %w", err)
	}
	if raw == nil {
		return Predictions{}, fmt.Errorf("predicting: nil feature matrix")
	}
	if _, c := raw.Dims(); c != len(m.Features) {
		return Predictions{}, fmt.Errorf("predicting: feature matrix has %d columns, model has %d features", c, len(m.Features))
	}
	arch, err := NewArch(m.Architecture, m.Params)
	if err != nil {
		return Predictions{}, fmt.Errorf("predicting: %w", err)
	}
	out, err := arch.Predict(m.Weights, m.Scaler.Apply(raw))
	if err != nil {
		return Predictions{}, fmt.Errorf("predicting: %w", err)
	}
	return out, nil
}

// WriteSafetensors writes m to w in the safetensors layout described on
// Model. The model is validated first so no unreadable file is produced.
func WriteSafetensors(w io.Writer, m *Model) error {
	if err := m.Validate(); err != nil {
		return fmt.Errorf("writing model: invalid model: %w", err)
	}
	// The architecture's tensors (Validate checked them) and the scaler.
	tensors := Weights{
		scalerMeanName:  {Name: scalerMeanName, Shape: []int{len(m.Features)}, Data: toFloat32s(m.Scaler.Mean)},
		scalerScaleName: {Name: scalerScaleName, Shape: []int{len(m.Features)}, Data: toFloat32s(m.Scaler.Scale)},
	}
	for name, t := range m.Weights {
		if _, clash := tensors[name]; clash {
			return fmt.Errorf("writing model: weight tensor %q clashes with the scaler's", name)
		}
		tensors[name] = t
	}
	views, err := tensorViews(tensors)
	if err != nil {
		return fmt.Errorf("writing model: %w", err)
	}
	meta := make(map[string]string, len(m.Metadata)+4)
	for k, v := range m.Metadata {
		meta[k] = v
	}
	features, err := json.Marshal(m.Features)
	if err != nil {
		return fmt.Errorf("writing model: encoding features: %w", err)
	}
	// A regressor has no classes: "[]", never "null".
	classes, err := json.Marshal(append([]string{}, m.Classes...))
	if err != nil {
		return fmt.Errorf("writing model: encoding classes: %w", err)
	}
	meta[metaArchitecture] = m.Architecture
	if len(m.Params.Hidden) > 0 {
		b, _ := json.Marshal(m.Params.Hidden)
		meta[metaHidden] = string(b)
	}
	if m.Params.Activation != "" {
		meta[metaActivation] = m.Params.Activation
	}
	meta[metaFeatures] = string(features)
	meta[metaClasses] = string(classes)
	meta[metaLabel] = m.Label
	if err := safetensors.SerializeToWriter(views, meta, w); err != nil {
		return fmt.Errorf("writing model: %w", err)
	}
	return nil
}

func toFloat32s(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

func toFloat64s(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// ReadSafetensors reads a model written by WriteSafetensors (or by any tool
// producing the same layout) and validates it. Malformed input yields an
// error, never a panic.
func ReadSafetensors(r io.Reader) (*Model, error) {
	b, err := readAllLimited(r, maxModelBytes)
	if err != nil {
		return nil, fmt.Errorf("reading model: %w", err)
	}
	m, err := decodeModel(b)
	if err != nil {
		return nil, fmt.Errorf("reading model: %w", err)
	}
	return m, nil
}

func decodeModel(b []byte) (*Model, error) {
	tensors, meta, err := decodeSafetensors(b)
	if err != nil {
		return nil, err
	}
	m := &Model{Architecture: meta[metaArchitecture], Label: meta[metaLabel]}
	for _, k := range []string{metaArchitecture, metaFeatures, metaClasses, metaLabel} {
		if _, ok := meta[k]; !ok {
			return nil, fmt.Errorf("missing metadata %q", k)
		}
	}
	if h, ok := meta[metaHidden]; ok {
		if err := json.Unmarshal([]byte(h), &m.Params.Hidden); err != nil || m.Params.Hidden == nil {
			return nil, fmt.Errorf("metadata %q: want a JSON list of layer sizes, got %q", metaHidden, h)
		}
	}
	m.Params.Activation = meta[metaActivation]
	if _, err := NewArch(m.Architecture, m.Params); err != nil {
		return nil, err
	}
	if err := strictJSONList(meta[metaFeatures], &m.Features); err != nil {
		return nil, fmt.Errorf("metadata %q: %w", metaFeatures, err)
	}
	if err := strictJSONList(meta[metaClasses], &m.Classes); err != nil {
		return nil, fmt.Errorf("metadata %q: %w", metaClasses, err)
	}
	for k, v := range meta {
		if !reservedMetadataKey(k) {
			if m.Metadata == nil {
				m.Metadata = make(map[string]string)
			}
			m.Metadata[k] = v
		}
	}

	// The scaler's tensors are the file's; every other tensor is a weight,
	// and Validate has the architecture check them (names and shapes).
	f := len(m.Features)
	want := map[string][]int{scalerMeanName: {f}, scalerScaleName: {f}}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		t, ok := tensors[name]
		if !ok {
			return nil, fmt.Errorf("missing tensor %q", name)
		}
		if !slices.Equal(t.Shape, want[name]) {
			return nil, fmt.Errorf("tensor %q has shape %v, metadata implies %v", name, t.Shape, want[name])
		}
	}
	m.Weights = Weights{}
	for _, name := range tensors.Names() {
		if _, ok := want[name]; !ok {
			m.Weights[name] = tensors[name]
		}
	}
	m.Scaler = Scaler{Mean: toFloat64s(tensors[scalerMeanName].Data), Scale: toFloat64s(tensors[scalerScaleName].Data)}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// strictJSONList decodes a JSON list of strings, rejecting anything else,
// including null, so a corrupt header cannot pass as an empty list.
func strictJSONList(s string, into *[]string) error {
	var list []string
	if err := json.Unmarshal([]byte(s), &list); err != nil {
		return fmt.Errorf("invalid JSON list of strings: %w", err)
	}
	if list == nil {
		return fmt.Errorf("invalid JSON list of strings: got null")
	}
	*into = list
	return nil
}
