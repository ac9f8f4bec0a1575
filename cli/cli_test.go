package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"gonum.org/v1/gonum/mat"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/dataset"
	"github.com/federa-dev/federa/models"
)

func execute(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Execute(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

// TestEveryCommandHasHelpWithExample walks the command tree.
func TestEveryCommandHasHelpWithExample(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Runnable() && c.Name() != "help" && c.Name() != "completion" && c.Parent() != nil && c.Parent().Name() != "completion" {
			if c.Example == "" {
				t.Errorf("%q has no example in --help", c.CommandPath())
			}
			if c.Short == "" {
				t.Errorf("%q has no short description", c.CommandPath())
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRoot(&bytes.Buffer{}, &bytes.Buffer{}))
	out, _, code := execute(t, "job", "submit", "--help")
	if code != 0 || !strings.Contains(out, "Examples:") || !strings.Contains(out, "--watch") {
		t.Fatalf("job submit --help: %d\n%s", code, out)
	}
}

// TestUnknownSubcommand: a mistyped subcommand is an error naming it and
// the nearest valid one, never help with exit 0 (a script would carry on).
func TestUnknownSubcommand(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"job", "lst"}, []string{`unknown command "lst" for "federa job"`, `did you mean "list"?`}},
		{[]string{"job", "sub", "job.yaml"}, []string{`unknown command "sub" for "federa job"`, `did you mean "submit"?`}},
		{[]string{"jb", "list"}, []string{`unknown command "jb" for "federa"`, `did you mean "job"?`}},
		{[]string{"site", "pendng"}, []string{`unknown command "pendng" for "federa site"`, `did you mean "pending"?`}},
		{[]string{"audit", "zzz"}, []string{`unknown command "zzz" for "federa audit"`, "valid: checkpoint, export, key, proof, show, verify"}},
		{[]string{"dev-ca", "isue"}, []string{`unknown command "isue" for "federa dev-ca"`, `did you mean "issue"?`}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, errs, code := execute(t, tt.args...)
			if code == 0 {
				t.Fatalf("exit 0 for an unknown command; stdout:\n%s", out)
			}
			for _, w := range tt.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr %q lacks %q", errs, w)
				}
			}
		})
	}
	// The group alone still shows its help, successfully.
	out, errs, code := execute(t, "job")
	if code != 0 || !strings.Contains(out, "Available Commands:") || !strings.Contains(out, "submit") {
		t.Fatalf("federa job: exit %d: %s%s", code, out, errs)
	}
}

func TestDemoJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo trains for real; skipped with -short")
	}
	state := t.TempDir()
	out, errs, code := execute(t, "demo", "--output", "json", "--state", state)
	if code != 0 {
		t.Fatalf("demo exit %d: %s\n%s", code, errs, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var res map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("last line is not JSON: %v\n%s", err, out)
	}
	for _, k := range []string{"job_id", "status", "rounds_completed", "sites", "test_accuracy", "centralized_accuracy", "model_path", "elapsed_seconds"} {
		if _, ok := res[k]; !ok {
			t.Errorf("demo JSON lacks %q", k)
		}
	}
	if res["status"] != "succeeded" || res["rounds_completed"].(float64) != 10 {
		t.Fatalf("demo result %v", res)
	}
	if acc := res["test_accuracy"].(float64); acc < 0.94 {
		t.Fatalf("test accuracy %.4f < 0.94", acc)
	}
	if c := res["centralized_accuracy"].(float64); c < 0.9 {
		t.Fatalf("centralized accuracy %.4f", c)
	}
	mp := res["model_path"].(string)
	if filepath.Dir(mp) != state {
		t.Errorf("model %s not under --state %s", mp, state)
	}
	for _, p := range []string{"coordinator/coordinator.db", "sites/eu-paris", "sites/us-boston", "sites/sg-singapore"} {
		if _, err := os.Stat(filepath.Join(state, p)); err != nil {
			t.Errorf("state layout: %v", err)
		}
	}
	// The exported file alone reproduces the reported accuracy.
	ev, err := evaluateModelFile(mp, filepath.Join(state, "data", "test.csv"), "")
	if err != nil || ev.Accuracy != res["test_accuracy"].(float64) {
		t.Fatalf("model eval of the exported file: %v, %v", ev, err)
	}
	// A row with a label no site had is scored (counted wrong), not refused.
	test, err := os.ReadFile(filepath.Join(state, "data", "test.csv"))
	if err != nil {
		t.Fatal(err)
	}
	testLines := strings.Split(strings.TrimSpace(string(test)), "\n")
	last := testLines[len(testLines)-1]
	extra := last[:strings.LastIndexByte(last, ',')] + ",unknown_class\n"
	withUnseen := filepath.Join(t.TempDir(), "test-unseen.csv")
	if err := os.WriteFile(withUnseen, append(test, extra...), 0o644); err != nil {
		t.Fatal(err)
	}
	if ev2, err := evaluateModelFile(mp, withUnseen, ""); err != nil || ev2.Unseen != 1 || ev2.Rows != ev.Rows+1 || ev2.Correct != ev.Correct {
		t.Fatalf("a label the model never saw: %+v, %v; want it scored as one wrong row", ev2, err)
	}
	t.Run("python reads the model with the numpy snippet in docs/models.md", func(t *testing.T) {
		numpyAgrees(t, mp, filepath.Join(state, "data", "test.csv"), ev.Accuracy)
	})
	t.Run("an mlp, in the same snippet", func(t *testing.T) {
		state := t.TempDir()
		out, errs, code := execute(t, "demo", "--output", "json", "--state", state, "--model", "mlp", "--hidden", "16,8", "--activation", "tanh", "--rounds", "3")
		if code != 0 {
			t.Fatalf("mlp demo exit %d: %s\n%s", code, errs, out)
		}
		mp := filepath.Join(state, "model.safetensors")
		ev, err := evaluateModelFile(mp, filepath.Join(state, "data", "test.csv"), "")
		if err != nil || ev.Accuracy < 0.9 {
			t.Fatalf("the federated mlp scores %v (%v)", ev, err)
		}
		numpyAgrees(t, mp, filepath.Join(state, "data", "test.csv"), ev.Accuracy)
	})
	t.Run("distributed DP noise", func(t *testing.T) {
		out, errs, code := execute(t, "demo", "--output", "json", "--state", t.TempDir(), "--dp-epsilon", "4", "--dp-noise", "distributed")
		if code != 0 {
			t.Fatalf("demo exit %d: %s\n%s", code, errs, out)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		var res struct {
			Status       string  `json:"status"`
			Rounds       int     `json:"rounds_completed"`
			TestAccuracy float64 `json:"test_accuracy"`
			Epsilon      float64 `json:"epsilon_spent"`
			SecAgg       bool    `json:"secure_aggregation"`
			PerRound     []struct {
				TrainLoss *float64 `json:"train_loss"`
			} `json:"rounds"`
		}
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
			t.Fatalf("last line: %v\n%s", err, out)
		}
		// One DP-SGD step a round, 30 rounds by default; no round reports
		// a training loss (a sampled batch's loss would leave un-noised).
		if res.Status != "succeeded" || res.Rounds != 30 || !res.SecAgg || res.Epsilon > 4 || res.Epsilon < 3.99 ||
			len(res.PerRound) != 30 || res.PerRound[0].TrainLoss != nil {
			t.Fatalf("demo result %s", lines[len(lines)-1])
		}
		if res.TestAccuracy < 0.85 {
			t.Fatalf("test accuracy %.4f under distributed DP noise at ε = 4", res.TestAccuracy)
		}
	})
	t.Run("secure aggregation, on the diabetes data", func(t *testing.T) {
		// Any --data: the coordinator learns only the sum of the linreg
		// updates, and the model is the clear run's (same seed) to the
		// encoding's precision.
		data := filepath.Join("..", "testdata", "diabetes")
		r2 := func(extra ...string) (float64, bool) {
			out, errs, code := execute(t, append([]string{"demo", "--output", "json", "--state", t.TempDir(), "--data", data, "--model", "linreg", "--rounds", "5"}, extra...)...)
			if code != 0 {
				t.Fatalf("demo %v exit %d: %s\n%s", extra, code, errs, out)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			var res struct {
				TestR2 *float64 `json:"test_r2"`
				SecAgg bool     `json:"secure_aggregation"`
			}
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil || res.TestR2 == nil {
				t.Fatalf("last line: %v\n%s", err, out)
			}
			return *res.TestR2, res.SecAgg
		}
		clear, on := r2()
		secure, onSec := r2("--secure-aggregation")
		if on || !onSec {
			t.Fatalf("secure_aggregation reported %v without the flag and %v with it", on, onSec)
		}
		if math.Abs(clear-secure) > 1e-4 {
			t.Fatalf("test R² %.6f under secure aggregation, %.6f in the clear", secure, clear)
		}
	})
	t.Run("a linreg on the diabetes data", func(t *testing.T) {
		state := t.TempDir()
		data := filepath.Join("..", "testdata", "diabetes")
		out, errs, code := execute(t, "demo", "--output", "json", "--state", state, "--data", data, "--model", "linreg")
		if code != 0 {
			t.Fatalf("linreg demo exit %d: %s\n%s", code, errs, out)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		var res struct {
			Status          string   `json:"status"`
			TestRMSE        *float64 `json:"test_rmse"`
			TestR2          *float64 `json:"test_r2"`
			CentralizedR2   *float64 `json:"centralized_r2"`
			CentralizedRMSE *float64 `json:"centralized_rmse"`
			Rounds          []struct {
				EvalRMSE *float64 `json:"eval_rmse"`
				EvalR2   *float64 `json:"eval_r2"`
			} `json:"rounds"`
		}
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
			t.Fatalf("last line is not JSON: %v\n%s", err, out)
		}
		if res.Status != "succeeded" || res.TestRMSE == nil || res.TestR2 == nil || res.CentralizedR2 == nil || len(res.Rounds) != 10 || res.Rounds[9].EvalRMSE == nil {
			t.Fatalf("linreg demo result: %s", lines[len(lines)-1])
		}
		// The exact least-squares fit on every site row is the best a
		// linear model can do with these files; federated SGD gets close.
		best := olsTestR2(t, data)
		t.Logf("test R² federated %.4f, central SGD %.4f, exact least squares on the union %.4f", *res.TestR2, *res.CentralizedR2, best)
		if *res.TestR2 < best-0.03 || *res.TestR2 > best+0.03 {
			t.Errorf("federated linreg test R² %.4f, exact least squares %.4f: want within 0.03", *res.TestR2, best)
		}
		mp := filepath.Join(state, "model.safetensors")
		ev, err := evaluateModelFile(mp, filepath.Join(data, "test.csv"), "")
		if err != nil || ev.Kind != "regression" || ev.RMSE != *res.TestRMSE || ev.R2 != *res.TestR2 {
			t.Fatalf("model eval of the exported linreg: %+v (%v), demo said RMSE %v R² %v", ev, err, *res.TestRMSE, *res.TestR2)
		}
		numpyAgrees(t, mp, filepath.Join(data, "test.csv"), ev.RMSE)
		// model eval -o json carries a regressor's figures, not accuracy.
		out, errs, code = execute(t, "model", "eval", "--model", mp, "--data", filepath.Join(data, "test.csv"), "-o", "json")
		var evj map[string]any
		if code != 0 || json.Unmarshal([]byte(out), &evj) != nil {
			t.Fatalf("model eval -o json: exit %d %s %s", code, out, errs)
		}
		if evj["kind"] != "regression" || evj["rmse"] != ev.RMSE || evj["r2"] != ev.R2 || evj["accuracy"] != nil || evj["correct"] != nil {
			t.Errorf("model eval -o json of a regressor: %s", out)
		}
	})
}

// olsTestR2 fits ordinary least squares exactly (gonum) on the rows of
// every site file in dir and returns its R² on dir/test.csv.
func olsTestR2(t *testing.T, dir string) float64 {
	t.Helper()
	load := func(name string) (*mat.Dense, []float64) {
		tab, err := dataset.LoadCSV(filepath.Join(dir, name), dataset.Options{Label: "label"})
		if err != nil {
			t.Fatal(err)
		}
		y, err := tab.LabelValues()
		if err != nil {
			t.Fatal(err)
		}
		r, c := tab.X.Dims()
		A := mat.NewDense(r, c+1, nil)
		for i := range r {
			A.Set(i, 0, 1)
			for j := range c {
				A.Set(i, j+1, tab.X.At(i, j))
			}
		}
		return A, y
	}
	var As []*mat.Dense
	var ys []float64
	for _, s := range []string{"eu-paris.csv", "us-boston.csv", "sg-singapore.csv"} {
		A, y := load(s)
		As, ys = append(As, A), append(ys, y...)
	}
	_, c := As[0].Dims()
	A := mat.NewDense(len(ys), c, nil)
	row := 0
	for _, a := range As {
		r, _ := a.Dims()
		for i := range r {
			A.SetRow(row, a.RawRowView(i))
			row++
		}
	}
	var beta mat.VecDense
	if err := beta.SolveVec(A, mat.NewVecDense(len(ys), ys)); err != nil {
		t.Fatal(err)
	}
	At, yt := load("test.csv")
	var pred mat.VecDense
	pred.MulVec(At, &beta)
	var sse float64
	for i, v := range yt {
		sse += (pred.AtVec(i) - v) * (pred.AtVec(i) - v)
	}
	return models.SpreadOf(yt).R2(sse)
}

// numpyAgrees runs the docs/models.md snippet on a model file and a CSV,
// and requires the accuracy (a regressor's RMSE) it prints to be federa's.
func numpyAgrees(t *testing.T, model, csv string, want float64) {
	t.Helper()
	py := pythonWithNumpy(t)
	doc, err := os.ReadFile("../docs/models.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(doc), "```python\n")
	snippet, _, _ := strings.Cut(rest, "```")
	cmd := exec.Command(py, "-c", snippet)
	cmd.Dir = t.TempDir()
	for _, f := range []string{model, csv} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cmd.Dir, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	got, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil || math.Abs(got-want) > 1e-9*max(1, math.Abs(want)) {
		t.Fatalf("python computed %q (accuracy, or a regressor's RMSE), federa %v", out, want)
	}
}

// pythonWithNumpy finds a python3 that has numpy (.ci/run installs Debian's
// python3-numpy); without one the check is skipped, saying so.
func pythonWithNumpy(t *testing.T) string {
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if err := exec.Command(py, "-c", "import numpy").Run(); err == nil {
			return py
		}
	}
	msg := "no python3 with numpy on this machine (apt-get install python3-numpy): the Python reader in docs/models.md cannot be checked"
	if os.Getenv("CI") != "" {
		// .ci/run installs numpy; its absence there is a broken setup.
		t.Fatal(msg)
	}
	// Outside CI (a developer's machine without numpy) there is nothing to
	// run the reader with; CI installs numpy and fails above if it is gone.
	t.Skipf("python3 with numpy is not installed here, so the docs/models.md reader cannot run (CI installs it and fails instead): %s", msg)
	return ""
}

func TestDemoBadData(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		args  []string
		want  string
	}{
		{"no test file", map[string]string{"eu-paris.csv": "a,label\n1,x\n"}, nil, "has no test.csv"},
		{"no site files", map[string]string{"test.csv": "a,label\n1,x\n", "notes.csv": "x"}, nil, "no site files named <jurisdiction>-<site>.csv"},
		{"bad output flag", map[string]string{"test.csv": "a\n"}, []string{"--output", "yaml"}, `flag --output: "yaml" is not valid`},
		{"distributed noise without a budget", map[string]string{"test.csv": "a\n"}, []string{"--dp-noise", "distributed"}, "flag --dp-noise distributed: set --dp-epsilon too"},
		{"unknown noise placement", map[string]string{"test.csv": "a\n"}, []string{"--dp-epsilon", "4", "--dp-noise", "central"}, `flag --dp-noise: "central" is not valid; want local or distributed`},
		{"sampling rate with local noise", map[string]string{"test.csv": "a\n"}, []string{"--dp-epsilon", "4", "--dp-sampling-rate", "0.2"}, "flag --dp-sampling-rate: only --dp-noise distributed uses it"},
		{"linreg on a text label", map[string]string{
			"test.csv":      "a,label\n1,2\n",
			"eu-paris.csv":  "a,label\n1,2\n2,4\n3,6\n4,8\n5,10\n6,12\n7,14\n8,16\n9,18\n10,20\n11,22\n12,24\n13,26\n14,28\n15,30\n16,32\n17,34\n18,36\n19,38\n20,40\n21,42\n22,44\n23,46\n24,48\n25,50\n26,52\n27,54\n28,56\n29,58\n",
			"us-boston.csv": "a,label\n1,2\n2,4\n3,6\n4,8\n5,10\n6,12\n7,14\n8,16\n9,18\n10,20\n11,22\n12,24\n13,26\n14,28\n15,30\n16,32\n17,34\n18,36\n19,38\n20,40\n21,42\n22,44\n23,46\n24,48\n25,50\n26,52\n27,54\n28,56\n29,58\n30,thirty\n",
		}, []string{"--model", "linreg", "--rounds", "1"}, `us-boston.csv:31: label: a regression model needs a number: the value (withheld; it stays at the site) is not a number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for n, d := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, n), []byte(d), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			args := append([]string{"demo", "--data", dir, "--state", t.TempDir()}, tt.args...)
			_, errs, code := execute(t, args...)
			if code == 0 || !strings.Contains(errs, tt.want) {
				t.Fatalf("exit %d, stderr %q; want %q", code, errs, tt.want)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"coordinator", "--config", write("c1.yaml", "listen: 1\nstate_dir: x\nsitez: []\n")},
			[]string{"c1.yaml", "line 3", "sitez"}},
		{[]string{"coordinator", "--config", write("c2.yaml", "state_dir: x\nidentity: {dir: /nonexistent}\nsites: [not-an-id]\n")},
			[]string{"c2.yaml", "field sites[0]", "not a SPIFFE ID", "field identity.dir", "svid.pem"}},
		{[]string{"coordinator", "--config", filepath.Join(dir, "missing.yaml")},
			[]string{"missing.yaml", "no such file"}},
		{[]string{"site", "--config", write("s1.yaml", "coordinator: {address: x:1, id: spiffe://example.org/coordinator}\ndatasets: [{name: d, path: nope.csv, format: parquet}]\nidentity: {dir: /nonexistent}\n")},
			[]string{"s1.yaml", "field identity.dir"}},
		{[]string{"job", "submit", write("j1.yaml", "name: x\ndataset: d\nrounds: 0\nlearning_rate: -1\nbogus: 2\n"), "--identity", "/nonexistent"},
			[]string{"j1.yaml", "line 5", "bogus"}},
		{[]string{"job", "submit", write("j2.yaml", "name: x\ndataset: d\nrounds: -1\nlearning_rate: -1\n"), "--identity", "/nonexistent"},
			[]string{"j2.yaml", "field rounds", "field learning_rate"}},
		{[]string{"job", "list", "--identity", dir},
			[]string{"flag --identity", "svid.pem"}},
		{[]string{"model", "eval", "--model", filepath.Join(dir, "nope.safetensors"), "--data", "x.csv"},
			[]string{"nope.safetensors"}},
		{[]string{"dev-ca", "issue", "--dir", dir, "--id", "not-spiffe", "--out", dir},
			[]string{"flag --id", "not a SPIFFE ID"}},
		{[]string{"--log-level", "loud", "coordinator", "--config", write("c3.yaml", "state_dir: x\n")},
			[]string{"flag --log-level", "valid: debug, info, warn, error"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[:2], " "), func(t *testing.T) {
			_, errs, code := execute(t, tt.args...)
			if code == 0 {
				t.Fatal("exit 0 for bad input")
			}
			if strings.Count(strings.TrimSpace(errs), "\n") > 3 {
				t.Errorf("error is not short: %s", errs)
			}
			for _, w := range tt.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr %q lacks %q", errs, w)
				}
			}
		})
	}
}

func TestDevCAAndModelEval(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca")
	if _, errs, code := execute(t, "dev-ca", "init", "--dir", ca, "--trust-domain", "example.org"); code != 0 {
		t.Fatal(errs)
	}
	if _, errs, code := execute(t, "dev-ca", "init", "--dir", ca); code == 0 || !strings.Contains(errs, "already exists") {
		t.Fatalf("second init: %d %s", code, errs)
	}
	out, errs, code := execute(t, "dev-ca", "issue", "--dir", ca, "--id", "spiffe://example.org/site/eu/paris", "--out", filepath.Join(dir, "paris"))
	if code != 0 || !strings.Contains(out, "issued spiffe://example.org/site/eu/paris") {
		t.Fatalf("%d %s %s", code, out, errs)
	}
	if _, errs, code := execute(t, "dev-ca", "issue", "--dir", ca, "--id", "spiffe://other.org/user/x", "--out", filepath.Join(dir, "x")); code == 0 || !strings.Contains(errs, "trust domain") {
		t.Fatalf("foreign trust domain: %d %s", code, errs)
	}
}

// TestJSONOutput: what scripts parse from version and dev-ca is one JSON
// object whose fields are true of what was made.
func TestJSONOutput(t *testing.T) {
	// decode requires stdout to be exactly one JSON object.
	decode := func(t *testing.T, out string, v any) {
		t.Helper()
		dec := json.NewDecoder(strings.NewReader(out))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			t.Fatalf("not one JSON object: %v\n%s", err, out)
		}
		if dec.More() {
			t.Fatalf("more than one JSON value:\n%s", out)
		}
	}
	t.Run("version", func(t *testing.T) {
		out, errs, code := execute(t, "version", "-o", "json")
		var v struct {
			Version   string `json:"version"`
			GoVersion string `json:"go_version"`
		}
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		decode(t, out, &v)
		if v.Version != Version || !strings.HasPrefix(v.GoVersion, "go") {
			t.Fatalf("version -o json: %+v", v)
		}
	})
	t.Run("dev-ca", func(t *testing.T) {
		dir := t.TempDir()
		ca, alice := filepath.Join(dir, "ca"), filepath.Join(dir, "alice")
		out, errs, code := execute(t, "dev-ca", "init", "--dir", ca, "--trust-domain", "example.org", "-o", "json")
		if code != 0 {
			t.Fatalf("init: exit %d: %s", code, errs)
		}
		var ini struct {
			TrustDomain string `json:"trust_domain"`
			Dir         string `json:"dir"`
			CACert      string `json:"ca_cert"`
			CAKey       string `json:"ca_key"`
			Bundle      string `json:"bundle"`
		}
		decode(t, out, &ini)
		if ini.TrustDomain != "example.org" || ini.Dir != ca {
			t.Errorf("init -o json: %+v", ini)
		}
		for _, p := range []string{ini.CACert, ini.CAKey, ini.Bundle} {
			if _, err := os.Stat(p); p == "" || err != nil {
				t.Errorf("init -o json names %q: %v", p, err)
			}
		}
		out, errs, code = execute(t, "dev-ca", "issue", "--dir", ca, "--id", "spiffe://example.org/user/alice", "--out", alice, "--ttl", "2h", "-o", "json")
		if code != 0 {
			t.Fatalf("issue: exit %d: %s", code, errs)
		}
		var iss struct {
			SPIFFEID  string    `json:"spiffe_id"`
			Dir       string    `json:"dir"`
			SVID      string    `json:"svid"`
			Key       string    `json:"key"`
			Bundle    string    `json:"bundle"`
			ExpiresAt time.Time `json:"expires_at"`
		}
		decode(t, out, &iss)
		id, err := attest.LoadIdentity(alice)
		if err != nil {
			t.Fatal(err)
		}
		if iss.SPIFFEID != "spiffe://example.org/user/alice" || iss.Dir != alice || !iss.ExpiresAt.Equal(id.Expiry()) {
			t.Errorf("issue -o json: %+v; the SVID expires %s", iss, id.Expiry())
		}
		if ttl := time.Until(iss.ExpiresAt); ttl < time.Hour || ttl > 2*time.Hour {
			t.Errorf("issue --ttl 2h -o json: expires in %s", ttl)
		}
		for _, p := range []string{iss.SVID, iss.Key, iss.Bundle} {
			if _, err := os.Stat(p); p == "" || err != nil {
				t.Errorf("issue -o json names %q: %v", p, err)
			}
		}
		if _, errs, code := execute(t, "dev-ca", "issue", "--dir", ca, "--id", "spiffe://example.org/user/bob", "--out", filepath.Join(dir, "bob"), "-o", "yaml"); code == 0 || !strings.Contains(errs, `flag --output: "yaml" is not valid; valid: text, json`) {
			t.Errorf("-o yaml: exit %d: %s", code, errs)
		}
	})
}

// TestDemoQuery runs a grouped query through the demo federation and
// checks the JSON result's shape and its counts against the site files.
func TestDemoQuery(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "q.yaml")
	if err := os.WriteFile(spec, []byte(`name: radius-by-label
where: [{column: mean_radius, op: ">=", value: 10}]
group_by: [label]
totals: true
aggregates:
  - {name: n, fn: count}
  - {name: mean_r, fn: mean, column: mean_radius}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, code := execute(t, "demo", "--query", spec, "--output", "json", "--state", t.TempDir())
	if code != 0 {
		t.Fatalf("demo --query exit %d: %s\n%s", code, errs, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var res struct {
		QueryID string   `json:"query_id"`
		Status  string   `json:"status"`
		Sites   []string `json:"sites"`
		Groups  []struct {
			Group      map[string]string  `json:"group"`
			Values     map[string]float64 `json:"values"`
			Suppressed bool               `json:"suppressed"`
		} `json:"groups"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("last line is not the result: %v\n%s", err, out)
	}
	// The counts a central analyst would get from the union of the files.
	want := map[string]float64{}
	for _, f := range []string{"eu-paris.csv", "sg-singapore.csv", "us-boston.csv"} {
		tab, err := dataset.LoadCSV(filepath.Join("..", "testdata", "breast-cancer", f), dataset.Options{Label: "label", Features: []string{"mean_radius"}})
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range tab.Labels {
			if tab.X.At(i, 0) >= 10 {
				want[l]++
				want[""]++
			}
		}
	}
	if res.Status != "succeeded" || !strings.HasPrefix(res.QueryID, "qry-") || len(res.Sites) != 3 || len(res.Groups) != 3 {
		t.Fatalf("result %s", lines[len(lines)-1])
	}
	for _, g := range res.Groups {
		if g.Suppressed || g.Values["n"] != want[g.Group["label"]] {
			t.Errorf("group %v: n %v, want %v", g.Group, g.Values["n"], want[g.Group["label"]])
		}
	}
}
