package models

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// testModel returns a valid 3-feature, 3-class model whose values are all
// exact in float32, so a round trip can be compared with DeepEqual.
func testModel() *Model {
	w := NewLogReg(3, 3)
	copy(w[WeightName].Data, []float32{1, 0, 0, 0, 1, 0, 0, 0, 1})
	copy(w[BiasName].Data, []float32{0, 0, 0.25})
	return &Model{
		Architecture: ArchLogReg,
		Features:     []string{"radius", "texture", "smoothness"},
		Classes:      []string{"benign", "malignant", "unknown"},
		Label:        "diagnosis",
		Scaler:       Scaler{Mean: []float64{10, 20, 0.5}, Scale: []float64{2, 4, 0.125}},
		Weights:      w,
		Metadata:     map[string]string{"federa.job_id": "job-1", "note": "ünïcode ✓"},
	}
}

func encodeModel(t *testing.T, m *Model) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteSafetensors(&buf, m); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestModelRoundTrip(t *testing.T) {
	m := testModel()
	b := encodeModel(t, m)
	got, err := ReadSafetensors(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Errorf("round trip changed the model:\n got %+v\nwant %+v", got, m)
	}

	t.Run("scaler is rounded to float32", func(t *testing.T) {
		m := testModel()
		m.Scaler.Mean[0] = 0.1
		got, err := ReadSafetensors(bytes.NewReader(encodeModel(t, m)))
		if err != nil {
			t.Fatal(err)
		}
		if got.Scaler.Mean[0] != float64(float32(0.1)) {
			t.Errorf("mean %v, want float32(0.1)", got.Scaler.Mean[0])
		}
	})
	t.Run("no extra metadata reads as nil", func(t *testing.T) {
		m := testModel()
		m.Metadata = nil
		got, err := ReadSafetensors(bytes.NewReader(encodeModel(t, m)))
		if err != nil {
			t.Fatal(err)
		}
		if got.Metadata != nil {
			t.Errorf("metadata = %v, want nil", got.Metadata)
		}
	})
}

func TestModelFileReadableWithoutLibrary(t *testing.T) {
	m := testModel()
	tensors, meta := parseIndependently(t, encodeModel(t, m))
	want := map[string]struct {
		shape []int
		data  []float32
	}{
		"linear.weight": {[]int{3, 3}, m.Weights[WeightName].Data},
		"linear.bias":   {[]int{3}, m.Weights[BiasName].Data},
		"scaler.mean":   {[]int{3}, []float32{10, 20, 0.5}},
		"scaler.scale":  {[]int{3}, []float32{2, 4, 0.125}},
	}
	if len(tensors) != len(want) {
		t.Errorf("file has %d tensors, want %d", len(tensors), len(want))
	}
	for name, w := range want {
		got, ok := tensors[name]
		if !ok {
			t.Errorf("missing tensor %q", name)
			continue
		}
		if got.dtype != "F32" || !reflect.DeepEqual(got.shape, w.shape) || !slices.Equal(got.data, w.data) {
			t.Errorf("tensor %q = %+v, want F32 %v %v", name, got, w.shape, w.data)
		}
	}
	var features, classes []string
	if err := json.Unmarshal([]byte(meta["federa.features"]), &features); err != nil || !slices.Equal(features, m.Features) {
		t.Errorf("federa.features = %q (%v)", meta["federa.features"], err)
	}
	if err := json.Unmarshal([]byte(meta["federa.classes"]), &classes); err != nil || !slices.Equal(classes, m.Classes) {
		t.Errorf("federa.classes = %q (%v)", meta["federa.classes"], err)
	}
	for k, v := range map[string]string{"federa.architecture": "logreg", "federa.label": "diagnosis", "federa.job_id": "job-1"} {
		if meta[k] != v {
			t.Errorf("metadata %q = %q, want %q", k, meta[k], v)
		}
	}
}

func TestModelValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Model)
		want   string
	}{
		{"valid", func(*Model) {}, ""},
		{"architecture", func(m *Model) { m.Architecture = "cnn" }, `unknown model type "cnn"`},
		{"empty label", func(m *Model) { m.Label = "" }, "label name is empty"},
		{"no features", func(m *Model) { m.Features = nil }, "no features"},
		{"duplicate feature", func(m *Model) { m.Features[2] = "radius" }, `duplicate feature "radius"`},
		{"empty feature", func(m *Model) { m.Features[1] = "" }, "feature 1 has an empty name"},
		{"one class", func(m *Model) { m.Classes = m.Classes[:1] }, "at least 2 classes"},
		{"duplicate class", func(m *Model) { m.Classes[1] = "benign" }, `duplicate class "benign"`},
		{"class count vs weights", func(m *Model) { m.Classes = m.Classes[:2] }, "weights are for 3 classes × 3 features, want 2 × 3"},
		{"missing weight", func(m *Model) { delete(m.Weights, BiasName) }, `missing tensor "linear.bias"`},
		{"nan weight", func(m *Model) { m.Weights[WeightName].Data[3] = float32(math.NaN()) }, "non-finite"},
		{"scaler length", func(m *Model) { m.Scaler.Mean = m.Scaler.Mean[:2] }, "scaler has 2 means and 3 scales, want 3"},
		{"zero scale", func(m *Model) { m.Scaler.Scale[1] = 0 }, "scaler scale of column 1 is 0"},
		{"inf mean", func(m *Model) { m.Scaler.Mean[0] = math.Inf(1) }, "scaler mean of column 0 is +Inf"},
		{"reserved metadata", func(m *Model) { m.Metadata["federa.label"] = "x" }, `metadata key "federa.label" is reserved`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := testModel()
			tc.mutate(m)
			err := m.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if err := WriteSafetensors(&bytes.Buffer{}, m); err == nil {
				t.Error("WriteSafetensors accepted an invalid model")
			}
		})
	}
	if err := (*Model)(nil).Validate(); err == nil {
		t.Error("nil model validated")
	}
}

func TestReadSafetensorsRejects(t *testing.T) {
	m := testModel()
	tensors := func() Weights {
		return Weights{
			WeightName:      m.Weights[WeightName].clone(),
			BiasName:        m.Weights[BiasName].clone(),
			scalerMeanName:  {Shape: []int{3}, Data: []float32{10, 20, 0.5}},
			scalerScaleName: {Shape: []int{3}, Data: []float32{2, 4, 0.125}},
		}
	}
	meta := func() map[string]string {
		return map[string]string{
			"federa.architecture": "logreg",
			"federa.features":     `["radius","texture","smoothness"]`,
			"federa.classes":      `["benign","malignant","unknown"]`,
			"federa.label":        "diagnosis",
		}
	}
	if _, err := ReadSafetensors(bytes.NewReader(buildFile(t, tensors(), meta()))); err != nil {
		t.Fatalf("baseline file rejected: %v", err)
	}
	good := encodeModel(t, m)
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "truncated file"},
		{"truncated header", good[:20], "exceeds"},
		{"truncated data", good[:len(good)-4], "invalid safetensors layout"},
		{"missing tensor", buildFile(t, func() Weights { w := tensors(); delete(w, scalerScaleName); return w }(), meta()), `missing tensor "scaler.scale"`},
		{"extra tensor", buildFile(t, func() Weights { w := tensors(); w["extra"] = &Tensor{Shape: []int{1}, Data: []float32{1}}; return w }(), meta()), `unexpected tensor "extra"`},
		{"shape vs metadata", buildFile(t, tensors(), func() map[string]string {
			m := meta()
			m["federa.features"] = `["radius","texture"]`
			return m
		}()), `tensor "scaler.mean" has shape [3], metadata implies [2]`},
		{"wrong dtype", rawFile(t, map[string]any{
			"linear.bias": map[string]any{"dtype": "I32", "shape": []int{3}, "data_offsets": []int{0, 12}},
		}, make([]byte, 12)), `tensor "linear.bias" has dtype I32, want F32`},
		{"bad features json", buildFile(t, tensors(), func() map[string]string { m := meta(); m["federa.features"] = `["radius",`; return m }()), `metadata "federa.features": invalid JSON list of strings`},
		{"features not strings", buildFile(t, tensors(), func() map[string]string { m := meta(); m["federa.features"] = `[1,2,3]`; return m }()), `metadata "federa.features"`},
		{"null classes", buildFile(t, tensors(), func() map[string]string { m := meta(); m["federa.classes"] = `null`; return m }()), `metadata "federa.classes": invalid JSON list of strings: got null`},
		{"missing label", buildFile(t, tensors(), func() map[string]string { m := meta(); delete(m, "federa.label"); return m }()), `missing metadata "federa.label"`},
		{"no metadata", buildFile(t, tensors(), nil), `missing metadata "federa.architecture"`},
		{"architecture", buildFile(t, tensors(), func() map[string]string { m := meta(); m["federa.architecture"] = "cnn"; return m }()), `unknown model type "cnn"`},
		{"zero scale", buildFile(t, func() Weights { w := tensors(); w[scalerScaleName].Data[2] = 0; return w }(), meta()), "scaler scale of column 2 is 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadSafetensors(bytes.NewReader(tc.b))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestModelPredict(t *testing.T) {
	m := testModel()
	// Standardized rows are (x-mean)/scale; the weights are the identity
	// plus bias 0.25 on class 2, so the largest standardized value wins.
	raw := mat.NewDense(3, 3, []float64{
		14, 20, 0.5, // (2, 0, 0) -> 0
		10, 28, 0.5, // (0, 2, 0) -> 1
		10, 20, 0.5, // (0, 0, 0) -> bias -> 2
	})
	got, err := m.Predict(raw)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{0, 1, 2}; !slices.Equal(got.Classes, want) {
		t.Errorf("Predict = %v, want %v", got, want)
	}
	if _, err := m.Predict(mat.NewDense(1, 2, nil)); err == nil || !strings.Contains(err.Error(), "2 columns, model has 3 features") {
		t.Errorf("err = %v, want column mismatch", err)
	}
	if _, err := m.Predict(nil); err == nil {
		t.Error("nil matrix accepted")
	}
}

func TestSaveLoadModel(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	m := testModel()
	if err := SaveModel(path, m); err != nil {
		t.Fatal(err)
	}
	// Overwriting an existing file is the normal case for a new round.
	m.Metadata["federa.round"] = "2"
	if err := SaveModel(path, m); err != nil {
		t.Fatal(err)
	}
	got, err := LoadModel(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Errorf("loaded model differs:\n got %+v\nwant %+v", got, m)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}

	t.Run("invalid model leaves nothing behind", func(t *testing.T) {
		bad := testModel()
		bad.Label = ""
		badPath := filepath.Join(dir, "bad.safetensors")
		if err := SaveModel(badPath, bad); err == nil || !strings.Contains(err.Error(), badPath) {
			t.Fatalf("err = %v, want error naming %s", err, badPath)
		}
	})
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "model.safetensors" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want only model.safetensors (no temp files)", names)
	}

	t.Run("load errors name the path", func(t *testing.T) {
		missing := filepath.Join(dir, "missing.safetensors")
		if _, err := LoadModel(missing); err == nil || !strings.Contains(err.Error(), missing) {
			t.Errorf("err = %v, want it to name %s", err, missing)
		}
		garbage := filepath.Join(t.TempDir(), "garbage.safetensors")
		if err := os.WriteFile(garbage, []byte("not a model"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadModel(garbage); err == nil || !strings.Contains(err.Error(), garbage) {
			t.Errorf("err = %v, want it to name %s", err, garbage)
		}
	})
	t.Run("save into missing directory", func(t *testing.T) {
		p := filepath.Join(dir, "nope", "model.safetensors")
		if err := SaveModel(p, testModel()); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("err = %v, want it to name %s", err, p)
		}
	})
}
