package spec

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/proto"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/models"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// fullSpec sets every field to a non-default value.
const fullSpec = `name: churn
dataset: customers
label: churned
features: [age, tenure]
model:
  type: logreg
rounds: 5
local_epochs: 2
batch_size: 64
learning_rate: 0.05
l2: 0.001
min_sites: 2
round_timeout: 90s
sites: [eu/paris, us/boston]
eval_fraction: 0.25
seed: 7
aggregator: fedavg
`

// minimal is the least a user must write; lines appended to it land on
// line 3 onwards.
const minimal = "name: churn\ndataset: customers\n"

func ptr[T any](v T) *T { return &v }

func fullJob() *Job {
	return &Job{
		Name:         "churn",
		Dataset:      "customers",
		Label:        "churned",
		Features:     []string{"age", "tenure"},
		Model:        Model{Type: "logreg"},
		Rounds:       5,
		LocalEpochs:  2,
		BatchSize:    64,
		LearningRate: 0.05,
		L2:           0.001,
		MinSites:     2,
		RoundTimeout: Duration(90 * time.Second),
		Sites:        []string{"eu/paris", "us/boston"},
		EvalFraction: ptr(0.25),
		Seed:         7,
		Aggregator:   Aggregator{Name: "fedavg"},
	}
}

func TestParseFullSpec(t *testing.T) {
	got, err := Parse("job.yaml", []byte(fullSpec))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if want := fullJob(); !reflect.DeepEqual(got, want) {
		t.Errorf("Parse:\n got %+v\nwant %+v", got, want)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []parseErrorCase{
		{"malformed YAML", "name: [churn\n", []string{"job spec job.yaml", "line 1"}},
		{"unknown field names field and line", minimal + "nmae: typo\n", []string{"job spec job.yaml", "line 3", "nmae", "docs/jobs.md"}},
		{"unknown model field", minimal + "model:\n  kind: cnn\n", []string{"line 4", "kind", "valid: type"}},
		{"wrong type", minimal + "rounds: ten\n", []string{"line 3", "ten", "int"}},
		{"several wrong types", minimal + "rounds: ten\nbatch_size: big\n", []string{"line 3", "ten", "line 4", "big"}},
		{"top level is a list", "[1, 2]\n", []string{"job spec job.yaml", "line 1"}},
		{"rounds negative", minimal + "rounds: -1\n", []string{"field rounds", "-1", "1..10000"}},
		{"rounds too many", minimal + "rounds: 10001\n", []string{"field rounds", "10001"}},
		{"local_epochs negative", minimal + "local_epochs: -2\n", []string{"field local_epochs", "-2"}},
		{"batch_size negative", minimal + "batch_size: -32\n", []string{"field batch_size", "-32", "1..1048576"}},
		{"learning_rate negative", minimal + "learning_rate: -0.1\n", []string{"field learning_rate", "-0.1", "(0, 100]"}},
		{"learning_rate NaN", minimal + "learning_rate: .nan\n", []string{"field learning_rate", "NaN"}},
		{"learning_rate infinite", minimal + "learning_rate: .inf\n", []string{"field learning_rate"}},
		{"l2 negative", minimal + "l2: -1\n", []string{"field l2", "-1"}},
		{"eval_fraction one", minimal + "eval_fraction: 1.0\n", []string{"field eval_fraction", "0 ≤ eval_fraction < 1"}},
		{"eval_fraction negative", minimal + "eval_fraction: -0.1\n", []string{"field eval_fraction"}},
		{"round_timeout not a duration", minimal + "round_timeout: soon\n", []string{"line 3", `"soon" is not a duration`, "2m"}},
		{"round_timeout a number without unit", minimal + "round_timeout: 90\n", []string{"line 3", `"90" is not a duration`}},
		{"round_timeout a list", minimal + "round_timeout: [1]\n", []string{"line 3", "want a duration"}},
		{"round_timeout too short", minimal + "round_timeout: 500ms\n", []string{"field round_timeout", "500ms", "at least 1s"}},
		{"round_timeout negative", minimal + "round_timeout: -5s\n", []string{"field round_timeout", "-5s"}},
		{"min_sites negative", minimal + "min_sites: -1\n", []string{"field min_sites", "-1"}},
		{"min_sites more than sites", minimal + "min_sites: 3\nsites: [eu/paris, us/boston]\n", []string{"field min_sites", "3 is more than the 2 sites"}},
		{"min_sites beyond the wire", minimal + "min_sites: 2147483648\n", []string{"field min_sites", "2147483648"}},
		{"site without jurisdiction", minimal + "sites: [paris]\n", []string{"field sites[0]", `"paris" is not a site name`, "eu/paris"}},
		{"site upper case", minimal + "sites: [eu/paris, EU/Berlin]\n", []string{"field sites[1]", "EU/Berlin"}},
		{"site too deep", minimal + "sites: [eu/fr/paris]\n", []string{"field sites[0]", "eu/fr/paris"}},
		{"site empty jurisdiction", minimal + "sites: [/paris]\n", []string{"field sites[0]"}},
		{"site empty name", minimal + "sites: [eu/]\n", []string{"field sites[0]"}},
		{"site with space", minimal + "sites: [eu/new york]\n", []string{"field sites[0]"}},
		{"site jurisdiction starts with a dash", minimal + "sites: [-eu/paris]\n", []string{"field sites[0]", "-eu/paris"}},
		{"site name starts with a dash", minimal + "sites: [eu/-paris]\n", []string{"field sites[0]", "eu/-paris"}},
		{"site listed twice", minimal + "sites: [eu/paris, eu/paris]\n", []string{"field sites[1]", `site "eu/paris" listed twice`}},
		{"duplicate feature", minimal + "features: [age, tenure, age]\n", []string{"field features[2]", `"age" listed twice`}},
		{"empty feature", minimal + "features: [age, \" \"]\n", []string{"field features[1]", "empty column name"}},
		{"feature is the label", minimal + "label: churned\nfeatures: [age, churned]\n", []string{"field features[1]", `"churned" is the label`}},
		{"feature is the default label", minimal + "features: [label]\n", []string{"field features[0]", "is the label"}},
		{"dp epsilon zero", minimal + "privacy: {dp: {epsilon: 0, delta: 1e-5, clip_norm: 1}}\n", []string{"field privacy.dp.epsilon", "want 0 < epsilon ≤ 100"}},
		{"dp delta one", minimal + "privacy: {dp: {epsilon: 1, delta: 1, clip_norm: 1}}\n", []string{"field privacy.dp.delta", "want 0 < delta < 0.01"}},
		{"dp clip zero", minimal + "privacy: {dp: {epsilon: 1, delta: 1e-5, clip_norm: 0}}\n", []string{"field privacy.dp.clip_norm", "want a number > 0"}},
		{"dp with per-round evaluation", minimal + "eval_fraction: 0.2\nprivacy: {dp: {epsilon: 1, delta: 1e-5, clip_norm: 1}}\n", []string{"field eval_fraction", "0.2 with privacy.dp", "without noise"}},
		{"unsupported model", minimal + "model:\n  type: cnn\n", []string{"field model.type", `"cnn" is not supported`, "valid: linreg, logreg"}},
		{"unsupported aggregator", minimal + "aggregator: fedsgd\n", []string{"field aggregator", `"fedsgd" is not supported`, "valid: fedadagrad, fedadam, fedavg"}},
		{"missing name", "dataset: customers\n", []string{"field name", "required"}},
		{"missing dataset", "name: churn\n", []string{"field dataset", "required"}},
		{"empty file", "", []string{"job spec job.yaml", "file is empty"}},
		{"whitespace only", "  \n\n\t\n", []string{"job spec job.yaml", "file is empty"}},
		{"comments only", "# a job spec\n# to be written\n", []string{"job spec job.yaml", "file is empty"}},
		{"two documents", minimal + "---\n" + minimal, []string{"job spec job.yaml", "more than one YAML document"}},
		{"trailing document separator", minimal + "---\n", []string{"more than one YAML document"}},
	}
	checkParseErrors(t, tests)
}

func TestParseAggregator(t *testing.T) {
	five := "sites: [eu/a, eu/b, eu/c, eu/d, eu/e]\nmin_sites: 5\n"
	tests := []struct {
		name string
		yaml string
		want Aggregator
	}{
		{"left out", minimal, Aggregator{Name: "fedavg"}},
		{"name form", minimal + "aggregator: median\n", Aggregator{Name: "median"}},
		{"mapping with name only", minimal + "aggregator: {name: median}\n", Aggregator{Name: "median"}},
		{"trimmed-mean default beta", minimal + "aggregator: trimmed-mean\n", Aggregator{Name: "trimmed-mean"}},
		{"trimmed-mean beta", minimal + "aggregator: {name: trimmed-mean, beta: 0.2}\n", Aggregator{Name: "trimmed-mean", Beta: ptr(0.2)}},
		{"trimmed-mean beta zero is kept", minimal + "aggregator: {name: trimmed-mean, beta: 0}\n", Aggregator{Name: "trimmed-mean", Beta: ptr(0.0)}},
		{"block mapping", minimal + "aggregator:\n  name: multi-krum\n  f: 1\n" + five, Aggregator{Name: "multi-krum", F: ptr(1)}},
		{"krum f zero on three sites", minimal + "aggregator: {name: krum, f: 0}\nsites: [eu/a, eu/b, eu/c]\nmin_sites: 3\n", Aggregator{Name: "krum", F: ptr(0)}},
		// Without a site list the count is checked in the round.
		{"krum without sites", minimal + "aggregator: krum\n", Aggregator{Name: "krum"}},
		{"krum default f on five sites", minimal + "aggregator: krum\n" + five, Aggregator{Name: "krum"}},
		{"fedadam defaults", minimal + "aggregator: fedadam\n", Aggregator{Name: "fedadam"}},
		{"fedadam all params", minimal + "aggregator: {name: fedadam, server_lr: 0.1, beta1: 0.8, beta2: 0.999, tau: 0.01}\n",
			Aggregator{Name: "fedadam", ServerLR: ptr(0.1), Beta1: ptr(0.8), Beta2: ptr(0.999), Tau: ptr(0.01)}},
		{"fedyogi beta1 zero is kept", minimal + "aggregator: {name: fedyogi, beta1: 0}\n", Aggregator{Name: "fedyogi", Beta1: ptr(0.0)}},
		{"fedadagrad lr and tau", minimal + "aggregator:\n  name: fedadagrad\n  server_lr: 0.5\n  tau: 1e-6\n", Aggregator{Name: "fedadagrad", ServerLR: ptr(0.5), Tau: ptr(1e-6)}},
		{"fedprox default mu", minimal + "aggregator: fedprox\n", Aggregator{Name: "fedprox"}},
		{"fedprox mu zero is kept", minimal + "aggregator: {name: fedprox, mu: 0}\n", Aggregator{Name: "fedprox", Mu: ptr(0.0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, err := Parse("job.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(j.Aggregator, tt.want) {
				t.Errorf("aggregator = %+v, want %+v", j.Aggregator, tt.want)
			}
			// The wire carries exactly the parameters given, and back.
			if back := FromProto(j.Proto()); !reflect.DeepEqual(back.Aggregator, tt.want) {
				t.Errorf("through the wire: %+v, want %+v", back.Aggregator, tt.want)
			}
			// A spec written back out parses to the same job.
			out, err := yaml.Marshal(j)
			if err != nil {
				t.Fatal(err)
			}
			again, err := Parse("out.yaml", out)
			if err != nil {
				t.Fatalf("Parse(Marshal): %v\n%s", err, out)
			}
			if !reflect.DeepEqual(again.Aggregator, tt.want) {
				t.Errorf("round trip: %+v, want %+v\n%s", again.Aggregator, tt.want, out)
			}
		})
	}
	t.Run("name form marshals as a name", func(t *testing.T) {
		out, err := yaml.Marshal(Aggregator{Name: "median"})
		if err != nil || string(out) != "median\n" {
			t.Errorf("Marshal = %q, %v; want the plain name", out, err)
		}
	})
}

func TestParseAggregatorErrors(t *testing.T) {
	tests := []parseErrorCase{
		{"unknown name", minimal + "aggregator: fedsgd\n", []string{"field aggregator:", `"fedsgd" is not supported`, "valid: fedadagrad, fedadam, fedavg, fedprox, fedyogi, krum, median, multi-krum, trimmed-mean"}},
		{"unknown name in mapping", minimal + "aggregator: {name: bulyan}\n", []string{"field aggregator:", `"bulyan" is not supported`}},
		{"unknown key", minimal + "aggregator: {name: trimmed-mean, gamma: 0.2}\n", []string{"line 3", "field aggregator", `unknown key "gamma"`, "valid: name, beta, f"}},
		{"unknown key in block", minimal + "aggregator:\n  name: krum\n  byzantine: 1\n", []string{"line 5", `unknown key "byzantine"`}},
		{"key twice", minimal + "aggregator: {name: krum, f: 1, f: 2}\n", []string{"line 3", `key "f" given twice`}},
		{"mapping without name", minimal + "aggregator: {beta: 0.2}\n", []string{"line 3", "field aggregator", "needs a name"}},
		{"a list", minimal + "aggregator: [median]\n", []string{"line 3", "field aggregator", "want a strategy name"}},
		{"beta not a number", minimal + "aggregator: {name: trimmed-mean, beta: lots}\n", []string{"line 3", "lots", "float64"}},
		{"f not an integer", minimal + "aggregator: {name: krum, f: 1.5}\n", []string{"line 3", "field aggregator: f:", `"1.5" is not a whole number`}},
		{"other errors still reported", minimal + "aggregator: {name: krum, x: 1}\nrounds: ten\n", []string{`unknown key "x"`, "line 4", "ten"}},
		{"beta one half", minimal + "aggregator: {name: trimmed-mean, beta: 0.5}\n", []string{"field aggregator.beta:", "0.5 is out of range", "0 ≤ beta < 0.5"}},
		{"beta negative", minimal + "aggregator: {name: trimmed-mean, beta: -0.1}\n", []string{"field aggregator.beta:", "-0.1 is out of range"}},
		{"beta NaN", minimal + "aggregator: {name: trimmed-mean, beta: .nan}\n", []string{"field aggregator.beta:", "NaN is out of range"}},
		{"f negative", minimal + "aggregator: {name: multi-krum, f: -3}\n", []string{"field aggregator.f:", "-3 is out of range", "f ≥ 0"}},
		{"f beyond the wire", minimal + "aggregator: {name: krum, f: 4294967296}\n", []string{"field aggregator.f:", "4294967296 is out of range", "at most 10000 sites"}},
		{"beta to median", minimal + "aggregator: {name: median, beta: 0.2}\n", []string{"field aggregator.beta:", "median does not take beta; it takes no parameters"}},
		{"f to trimmed-mean", minimal + "aggregator: {name: trimmed-mean, f: 1}\n", []string{"field aggregator.f:", "trimmed-mean does not take f; it takes beta"}},
		{"beta to krum", minimal + "aggregator: {name: krum, beta: 0.1}\n", []string{"field aggregator.beta:", "krum does not take beta; it takes f"}},
		{"both to fedavg", minimal + "aggregator: {name: fedavg, beta: 0.1, f: 1}\n", []string{"field aggregator.beta:", "field aggregator.f:", "fedavg does not take f"}},
		{"server_lr negative", minimal + "aggregator: {name: fedadam, server_lr: -0.1}\n", []string{"field aggregator.server_lr:", "-0.1 is out of range", "server_lr > 0"}},
		{"server_lr zero", minimal + "aggregator: {name: fedyogi, server_lr: 0}\n", []string{"field aggregator.server_lr:", "0 is out of range"}},
		{"beta1 one", minimal + "aggregator: {name: fedadam, beta1: 1}\n", []string{"field aggregator.beta1:", "1 is out of range", "0 ≤ beta1 < 1"}},
		{"beta1 negative", minimal + "aggregator: {name: fedadagrad, beta1: -0.5}\n", []string{"field aggregator.beta1:", "-0.5 is out of range"}},
		{"beta2 one", minimal + "aggregator: {name: fedyogi, beta2: 1}\n", []string{"field aggregator.beta2:", "0 ≤ beta2 < 1"}},
		{"tau zero", minimal + "aggregator: {name: fedadam, tau: 0}\n", []string{"field aggregator.tau:", "0 is out of range", "tau > 0"}},
		{"tau infinite", minimal + "aggregator: {name: fedadam, tau: .inf}\n", []string{"field aggregator.tau:", "+Inf is out of range"}},
		{"several bad at once", minimal + "aggregator: {name: fedadam, server_lr: -1, tau: -1}\n", []string{"field aggregator.server_lr:", "field aggregator.tau:"}},
		{"mu negative", minimal + "aggregator: {name: fedprox, mu: -0.01}\n", []string{"field aggregator.mu:", "-0.01 is out of range", "mu ≥ 0"}},
		{"mu NaN", minimal + "aggregator: {name: fedprox, mu: .nan}\n", []string{"field aggregator.mu:", "NaN is out of range"}},
		{"beta2 to fedadagrad", minimal + "aggregator: {name: fedadagrad, beta2: 0.9}\n", []string{"field aggregator.beta2:", "fedadagrad does not take beta2; it takes server_lr, beta1, tau"}},
		{"mu to fedadam", minimal + "aggregator: {name: fedadam, mu: 0.1}\n", []string{"field aggregator.mu:", "fedadam does not take mu; it takes server_lr, beta1, beta2, tau"}},
		{"server_lr to fedprox", minimal + "aggregator: {name: fedprox, server_lr: 0.1}\n", []string{"field aggregator.server_lr:", "fedprox does not take server_lr; it takes mu"}},
		{"tau to fedavg", minimal + "aggregator: {name: fedavg, tau: 0.1}\n", []string{"field aggregator.tau:", "fedavg does not take tau; it takes no parameters"}},
		{"mu to median", minimal + "aggregator: {name: median, mu: 0.1}\n", []string{"field aggregator.mu:", "median does not take mu"}},
		{"mu not a number", minimal + "aggregator: {name: fedprox, mu: some}\n", []string{"line 3", "some", "float64"}},
		{"krum on too few listed sites", minimal + "aggregator: {name: krum, f: 1}\nsites: [eu/a, eu/b, eu/c, eu/d]\nmin_sites: 4\n",
			[]string{"field aggregator:", "krum needs at least 5 updates a round (n ≥ 2f+3 with f=1)", "sites lists only 4"}},
		{"multi-krum default f on three sites", minimal + "aggregator: multi-krum\nsites: [eu/a, eu/b, eu/c]\n", []string{"field aggregator:", "at least 5", "f=1"}},
		{"krum quorum below 2f+3", minimal + "aggregator: {name: krum, f: 1}\nsites: [eu/a, eu/b, eu/c, eu/d, eu/e]\nmin_sites: 4\n",
			[]string{"field min_sites:", "4 is less than the 5 updates aggregator krum needs", "min_sites: 5"}},
	}
	checkParseErrors(t, tests)
}

func TestParseReportsEveryProblem(t *testing.T) {
	in := "rounds: -1\nbatch_size: -1\neval_fraction: 1.5\nmodel:\n  type: cnn\nsites: [Paris]\n"
	_, err := Parse("job.yaml", []byte(in))
	if err == nil {
		t.Fatal("Parse accepted an invalid spec")
	}
	fields := []string{"name", "dataset", "rounds", "batch_size", "eval_fraction", "model.type", "sites[0]"}
	for _, f := range fields {
		if !strings.Contains(err.Error(), "field "+f+":") {
			t.Errorf("error does not report field %s:\n%v", f, err)
		}
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		t.Fatalf("error %T is not a joined error", err)
	}
	if got := len(joined.Unwrap()); got != len(fields) {
		t.Errorf("joined error holds %d problems, want %d:\n%v", got, len(fields), err)
	}
	// One problem per line, so a terminal shows them as a list.
	if got := strings.Count(err.Error(), "\n") + 1; got != len(fields) {
		t.Errorf("error has %d lines, want %d:\n%v", got, len(fields), err)
	}
}

func TestParseAppliesDefaults(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want func(j *Job)
	}{
		{"nothing set", minimal, func(*Job) {}},
		{"empty strings mean default", minimal + "label: \"\"\naggregator: \"\"\nmodel:\n  type: \"\"\n", func(*Job) {}},
		{"explicit eval_fraction zero is kept", minimal + "eval_fraction: 0\n", func(j *Job) { j.EvalFraction = ptr(0.0) }},
		{"set values are kept", minimal + "rounds: 3\nbatch_size: 8\nround_timeout: 1m30s\n", func(j *Job) {
			j.Rounds, j.BatchSize, j.RoundTimeout = 3, 8, Duration(90*time.Second)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse("job.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := &Job{
				Name:         "churn",
				Dataset:      "customers",
				Label:        DefaultLabel,
				Model:        Model{Type: DefaultModel},
				Rounds:       DefaultRounds,
				LocalEpochs:  DefaultLocalEpochs,
				BatchSize:    DefaultBatchSize,
				LearningRate: DefaultLearningRate,
				MinSites:     DefaultMinSites,
				RoundTimeout: Duration(DefaultRoundTimeout),
				EvalFraction: ptr(DefaultEvalFraction),
				Aggregator:   Aggregator{Name: DefaultAggregator},
			}
			tt.want(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Parse:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestApplyDefaultsKeepsSetFields(t *testing.T) {
	j := fullJob()
	j.ApplyDefaults()
	if want := fullJob(); !reflect.DeepEqual(j, want) {
		t.Errorf("ApplyDefaults changed a fully set job:\n got %+v\nwant %+v", j, want)
	}
	var zero Job
	zero.ApplyDefaults()
	zero.ApplyDefaults() // idempotent
	if zero.Rounds != DefaultRounds || zero.EvalFraction == nil || *zero.EvalFraction != DefaultEvalFraction ||
		time.Duration(zero.RoundTimeout) != DefaultRoundTimeout || zero.Aggregator.Name != DefaultAggregator {
		t.Errorf("ApplyDefaults on a zero job gave %+v", zero)
	}
}

func TestParseFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(good, []byte(fullSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(minimal+"rounds: -1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("valid", func(t *testing.T) {
		j, err := ParseFile(good)
		if err != nil {
			t.Fatalf("ParseFile: %v", err)
		}
		if !reflect.DeepEqual(j, fullJob()) {
			t.Errorf("ParseFile gave %+v", j)
		}
	})
	t.Run("invalid names the path", func(t *testing.T) {
		_, err := ParseFile(bad)
		if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "field rounds") {
			t.Errorf("ParseFile(%s) error = %v, want it to name the file and the field", bad, err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		missing := filepath.Join(dir, "nope.yaml")
		_, err := ParseFile(missing)
		if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
			t.Errorf("ParseFile(missing) error = %v, want a not-exist error naming the file", err)
		}
	})
}

func TestMarshalledJobParsesBack(t *testing.T) {
	want := fullJob()
	out, err := yaml.Marshal(want)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	if !strings.Contains(string(out), "round_timeout: 1m30s") {
		t.Errorf("round_timeout not written as a duration string:\n%s", out)
	}
	got, err := Parse("marshalled", out)
	if err != nil {
		t.Fatalf("Parse of marshalled job: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip through YAML:\n got %+v\nwant %+v", got, want)
	}
}

func TestProtoRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		job  *Job
	}{
		{"full", fullJob()},
		{"defaults", func() *Job { j := &Job{Name: "n", Dataset: "d"}; j.ApplyDefaults(); return j }()},
		{"eval fraction zero", func() *Job { j := fullJob(); j.EvalFraction = ptr(0.0); return j }()},
		{"no sites or features", func() *Job { j := fullJob(); j.Sites, j.Features = nil, nil; return j }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.job.Proto()
			// Through the wire bytes, as the coordinator receives it.
			data, err := proto.Marshal(p)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			var wire federav1.JobSpec
			if err := proto.Unmarshal(data, &wire); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			got := FromProto(&wire)
			if !reflect.DeepEqual(got, tt.job) {
				t.Errorf("FromProto(Proto()):\n got %+v\nwant %+v", got, tt.job)
			}
			checked, err := CheckProto(&wire)
			if err != nil {
				t.Fatalf("CheckProto of a valid spec: %v", err)
			}
			if !proto.Equal(checked, p) {
				t.Errorf("CheckProto changed a valid spec:\n got %v\nwant %v", checked, p)
			}
		})
	}
}

func TestProtoDoesNotShareSlices(t *testing.T) {
	j := fullJob()
	p := j.Proto()
	p.Features[0], p.Sites[0] = "changed", "changed"
	if j.Features[0] != "age" || j.Sites[0] != "eu/paris" {
		t.Errorf("editing the wire spec changed the job: %v %v", j.Features, j.Sites)
	}
	back := FromProto(p)
	back.Features[1] = "changed"
	if p.Features[1] != "tenure" {
		t.Errorf("editing the job changed the wire spec: %v", p.Features)
	}
}

func TestFromProtoNil(t *testing.T) {
	j := FromProto(nil)
	if j == nil || j.Name != "" || j.EvalFraction == nil || *j.EvalFraction != 0 {
		t.Errorf("FromProto(nil) = %+v", j)
	}
}

func TestCheckProtoAppliesDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   *federav1.JobSpec
		want *federav1.JobSpec
	}{
		{
			name: "bare wire spec gets every default",
			in:   &federav1.JobSpec{Name: "n", Dataset: "d"},
			want: &federav1.JobSpec{
				Name: "n", Dataset: "d", Label: DefaultLabel,
				Model:  &federav1.ModelSpec{Type: DefaultModel},
				Rounds: DefaultRounds, LocalEpochs: DefaultLocalEpochs, BatchSize: DefaultBatchSize,
				LearningRate: DefaultLearningRate, MinSites: DefaultMinSites,
				RoundTimeoutMs: DefaultRoundTimeout.Milliseconds(),
				EvalFraction:   DefaultEvalFraction, Aggregator: DefaultAggregator,
			},
		},
		{
			// With round_timeout set the client applied defaults, so an
			// eval fraction of 0 was meant.
			name: "eval fraction zero kept when defaults were applied",
			in:   &federav1.JobSpec{Name: "n", Dataset: "d", RoundTimeoutMs: 5000},
			want: &federav1.JobSpec{
				Name: "n", Dataset: "d", Label: DefaultLabel,
				Model:  &federav1.ModelSpec{Type: DefaultModel},
				Rounds: DefaultRounds, LocalEpochs: DefaultLocalEpochs, BatchSize: DefaultBatchSize,
				LearningRate: DefaultLearningRate, MinSites: DefaultMinSites,
				RoundTimeoutMs: 5000, EvalFraction: 0, Aggregator: DefaultAggregator,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := proto.Clone(tt.in).(*federav1.JobSpec)
			got, err := CheckProto(in)
			if err != nil {
				t.Fatalf("CheckProto: %v", err)
			}
			if !proto.Equal(got, tt.want) {
				t.Errorf("CheckProto:\n got %v\nwant %v", got, tt.want)
			}
			if !proto.Equal(in, tt.in) {
				t.Errorf("CheckProto modified its argument: %v", in)
			}
		})
	}
}

func TestCheckProtoRejects(t *testing.T) {
	valid := func(edit func(p *federav1.JobSpec)) *federav1.JobSpec {
		p := fullJob().Proto()
		edit(p)
		return p
	}
	tests := []struct {
		name string
		in   *federav1.JobSpec
		want string
	}{
		{"nil", nil, "field name"},
		{"zero", &federav1.JobSpec{}, "field dataset"},
		{"negative rounds", valid(func(p *federav1.JobSpec) { p.Rounds = -1 }), "field rounds"},
		{"eval fraction one", valid(func(p *federav1.JobSpec) { p.EvalFraction = 1 }), "field eval_fraction"},
		{"short timeout", valid(func(p *federav1.JobSpec) { p.RoundTimeoutMs = 10 }), "field round_timeout"},
		{"negative timeout", valid(func(p *federav1.JobSpec) { p.RoundTimeoutMs = -1000 }), "field round_timeout"},
		{"bad model", valid(func(p *federav1.JobSpec) { p.Model = &federav1.ModelSpec{Type: "cnn"} }), "field model.type"},
		{"bad aggregator", valid(func(p *federav1.JobSpec) { p.Aggregator = "fedsgd" }), "field aggregator"},
		{"beta out of range", valid(func(p *federav1.JobSpec) { p.Aggregator, p.AggregatorBeta = "trimmed-mean", ptr(0.5) }), "field aggregator.beta"},
		{"beta NaN", valid(func(p *federav1.JobSpec) { p.Aggregator, p.AggregatorBeta = "trimmed-mean", ptr(math.NaN()) }), "field aggregator.beta"},
		{"beta for fedavg", valid(func(p *federav1.JobSpec) { p.AggregatorBeta = ptr(0.0) }), "field aggregator.beta: fedavg does not take beta"},
		{"negative server_lr", valid(func(p *federav1.JobSpec) { p.Aggregator, p.AggregatorServerLr = "fedadam", ptr(-1.0) }), "field aggregator.server_lr"},
		{"tau zero", valid(func(p *federav1.JobSpec) { p.Aggregator, p.AggregatorTau = "fedyogi", ptr(0.0) }), "field aggregator.tau"},
		{"negative mu", valid(func(p *federav1.JobSpec) { p.Aggregator, p.AggregatorMu = "fedprox", ptr(-1.0) }), "field aggregator.mu"},
		{"mu for fedavg", valid(func(p *federav1.JobSpec) { p.AggregatorMu = ptr(0.0) }), "field aggregator.mu: fedavg does not take mu"},
		{"negative f", valid(func(p *federav1.JobSpec) { p.Aggregator, p.AggregatorF = "krum", ptr[int32](-1) }), "field aggregator.f"},
		{"krum with two sites", valid(func(p *federav1.JobSpec) { p.Aggregator, p.AggregatorF = "krum", ptr[int32](0) }), "field aggregator: krum needs at least 3"},
		{"bad site", valid(func(p *federav1.JobSpec) { p.Sites = []string{"paris"} }), "field sites[0]"},
		{"too few sites", valid(func(p *federav1.JobSpec) { p.MinSites = 3 }), "field min_sites"},
		{"feature is label", valid(func(p *federav1.JobSpec) { p.Features = []string{"churned"} }), "field features[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CheckProto(tt.in)
			if err == nil {
				t.Fatalf("CheckProto accepted %v as %v", tt.in, got)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestSiteNamesAgreeWithAttest(t *testing.T) {
	// A site the spec accepts must be one that can connect, and the other
	// way round.
	for _, name := range []string{
		"eu/paris", "us/new-york", "a/b", "0/9", "eu/paris-", "eu-west/x",
		"", "paris", "eu/", "/paris", "eu/fr/paris", "EU/paris", "-eu/paris",
		"eu/-paris", "eu/par_is", "eu/par is", "eu/paris\n", "eu/pärís", "eu/.",
	} {
		t.Run(name, func(t *testing.T) {
			want := attest.ValidateSiteName(name) == nil
			if got := validSite(name); got != want {
				t.Errorf("spec accepts %q: %v; attest accepts it: %v", name, got, want)
			}
		})
	}
}

// TestColumnNamesAreCanonical: a column (or dataset, project) name with
// whitespace at either end, or any invisible or control character, is
// refused at submit naming the field: the site matches names exactly, and
// " mean_radius" once walked past a policy that classified "mean_radius".
func TestColumnNamesAreCanonical(t *testing.T) {
	good := &Job{Name: "n", Dataset: "bc", Label: "label", Features: []string{"mean radius", "área"}}
	good.ApplyDefaults()
	if err := good.Validate(); err != nil {
		t.Fatalf("names with inner spaces and accents: %v", err)
	}
	for _, bad := range []string{" mean_radius", "mean_radius ", "\tmean_radius", "mean_radius\n", "mean\u00a0radius",
		"\u200bmean_radius", "\ufeffmean_radius", "mean_radius\u2028", "mean\x00radius", "\xffmean", strings.Repeat("a", MaxColumnNameBytes+1)} {
		for _, field := range []string{"features[1]", "label", "dataset", "project"} {
			j := &Job{Name: "n", Dataset: "bc", Label: "label", Features: []string{"a", "b"}}
			switch field {
			case "features[1]":
				j.Features[1] = bad
			case "label":
				j.Label = bad
			case "dataset":
				j.Dataset = bad
			case "project":
				j.Project = bad
			}
			j.ApplyDefaults()
			err := j.Validate()
			if err == nil || !strings.Contains(err.Error(), "field "+field+":") {
				t.Errorf("%s = %q: %v", field, bad, err)
			}
		}
	}
	j := &Job{Name: strings.Repeat("n", MaxNameBytes+1), Dataset: "bc", Label: "label", Features: make([]string, MaxFeatures+1)}
	for i := range j.Features {
		j.Features[i] = fmt.Sprintf("c%d", i)
	}
	j.ApplyDefaults()
	err := j.Validate()
	for _, want := range []string{"field name: 201 bytes; at most 200", "field features: 10001 columns listed; at most 10000"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

// TestExplicitZerosAreErrors: `rounds: 0` is a choice, not "the default";
// it is an error naming the line and the field, while leaving the field
// out still gets the default.
func TestExplicitZerosAreErrors(t *testing.T) {
	for _, f := range []string{"rounds: 0", "local_epochs: 0", "batch_size: 0", "learning_rate: 0", "learning_rate: 0.0", "min_sites: 0", "round_timeout: 0s"} {
		_, err := Parse("job.yaml", []byte(minimal+f+"\n"))
		field, _, _ := strings.Cut(f, ":")
		if err == nil || !strings.Contains(err.Error(), "line 3: field "+field+": ") || !strings.Contains(err.Error(), "leave the field out for the default") {
			t.Errorf("%s: %v", f, err)
		}
	}
	j, err := Parse("job.yaml", []byte(minimal))
	if err != nil || j.Rounds != DefaultRounds || j.BatchSize != DefaultBatchSize {
		t.Fatalf("defaults: %+v %v", j, err)
	}
	if _, err := Parse("job.yaml", []byte(minimal+"seed: 0\nl2: 0\n")); err != nil {
		t.Fatalf("fields whose zero is meaningful: %v", err)
	}
}

func TestParseOptimizer(t *testing.T) {
	tests := []struct {
		name   string
		yaml   string
		want   Optimizer
		config models.OptimizerConfig // with defaults applied
	}{
		{"left out is sgd", minimal, Optimizer{}, models.OptimizerConfig{Name: "sgd"}},
		{"name form sgd", minimal + "optimizer: sgd\n", Optimizer{Name: "sgd"}, models.OptimizerConfig{Name: "sgd"}},
		{"sgd momentum", minimal + "optimizer: {name: sgd, momentum: 0.9}\n", Optimizer{Name: "sgd", Momentum: ptr(0.9)}, models.OptimizerConfig{Name: "sgd", Momentum: 0.9}},
		{"sgd momentum zero is kept", minimal + "optimizer: {name: sgd, momentum: 0}\n", Optimizer{Name: "sgd", Momentum: ptr(0.0)}, models.OptimizerConfig{Name: "sgd"}},
		{"name form adam gets torch defaults", minimal + "optimizer: adam\n", Optimizer{Name: "adam"}, models.AdamConfig()},
		{"adam all params", minimal + "optimizer: {name: adam, beta1: 0.9, beta2: 0.999, eps: 1e-8}\n",
			Optimizer{Name: "adam", Beta1: ptr(0.9), Beta2: ptr(0.999), Eps: ptr(1e-8)}, models.AdamConfig()},
		{"adam block mapping, some params", minimal + "optimizer:\n  name: adam\n  beta1: 0\n  eps: 1e-6\n",
			Optimizer{Name: "adam", Beta1: ptr(0.0), Eps: ptr(1e-6)}, models.OptimizerConfig{Name: "adam", Beta1: 0, Beta2: 0.999, Eps: 1e-6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, err := Parse("job.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(j.Optimizer, tt.want) {
				t.Errorf("optimizer = %+v, want %+v", j.Optimizer, tt.want)
			}
			if got := j.Optimizer.Config(); got != tt.config {
				t.Errorf("Config() = %+v, want %+v", got, tt.config)
			}
			// The wire carries exactly the parameters given, and back; a
			// site reads the same configuration off it.
			if back := FromProto(j.Proto()); !reflect.DeepEqual(back.Optimizer, tt.want) {
				t.Errorf("through the wire: %+v, want %+v", back.Optimizer, tt.want)
			}
			checked, err := CheckProto(j.Proto())
			if err != nil {
				t.Fatalf("CheckProto: %v", err)
			}
			if got := OptimizerOf(checked); got != tt.config {
				t.Errorf("OptimizerOf(CheckProto) = %+v, want %+v", got, tt.config)
			}
			out, err := yaml.Marshal(j)
			if err != nil {
				t.Fatal(err)
			}
			again, err := Parse("out.yaml", out)
			if err != nil {
				t.Fatalf("Parse(Marshal): %v\n%s", err, out)
			}
			if !reflect.DeepEqual(again.Optimizer, tt.want) {
				t.Errorf("round trip: %+v, want %+v\n%s", again.Optimizer, tt.want, out)
			}
		})
	}
}

func TestParseOptimizerErrors(t *testing.T) {
	tests := []parseErrorCase{
		{"unknown name", minimal + "optimizer: rmsprop\n", []string{"field optimizer:", `"rmsprop" is not supported`, "valid: sgd, adam"}},
		{"unknown name in mapping", minimal + "optimizer: {name: lbfgs}\n", []string{"field optimizer:", `"lbfgs" is not supported`}},
		{"unknown key", minimal + "optimizer: {name: sgd, nesterov: true}\n", []string{"line 3", "field optimizer", `unknown key "nesterov"`, "valid: name, momentum, beta1, beta2, eps"}},
		{"unknown key in block", minimal + "optimizer:\n  name: adam\n  amsgrad: true\n", []string{"line 5", `unknown key "amsgrad"`}},
		{"key twice", minimal + "optimizer: {name: sgd, momentum: 0.5, momentum: 0.9}\n", []string{"line 3", `key "momentum" given twice`}},
		{"mapping without name", minimal + "optimizer: {momentum: 0.9}\n", []string{"line 3", "field optimizer", "needs a name"}},
		{"a list", minimal + "optimizer: [adam]\n", []string{"line 3", "field optimizer", "want an optimizer name"}},
		{"momentum not a number", minimal + "optimizer: {name: sgd, momentum: high}\n", []string{"line 3", "high", "float64"}},
		{"momentum one", minimal + "optimizer: {name: sgd, momentum: 1}\n", []string{"field optimizer.momentum:", "1 is out of range", "0 ≤ momentum < 1"}},
		{"momentum negative", minimal + "optimizer: {name: sgd, momentum: -0.1}\n", []string{"field optimizer.momentum:", "-0.1 is out of range"}},
		{"momentum NaN", minimal + "optimizer: {name: sgd, momentum: .nan}\n", []string{"field optimizer.momentum:", "NaN is out of range"}},
		{"beta1 one", minimal + "optimizer: {name: adam, beta1: 1}\n", []string{"field optimizer.beta1:", "1 is out of range", "0 ≤ beta1 < 1"}},
		{"beta1 negative", minimal + "optimizer: {name: adam, beta1: -0.5}\n", []string{"field optimizer.beta1:", "-0.5 is out of range"}},
		{"beta2 one", minimal + "optimizer: {name: adam, beta2: 1}\n", []string{"field optimizer.beta2:", "0 ≤ beta2 < 1"}},
		{"eps zero", minimal + "optimizer: {name: adam, eps: 0}\n", []string{"field optimizer.eps:", "0 is out of range", "> 0"}},
		{"eps negative", minimal + "optimizer: {name: adam, eps: -1e-8}\n", []string{"field optimizer.eps:", "-1e-08 is out of range"}},
		{"eps infinite", minimal + "optimizer: {name: adam, eps: .inf}\n", []string{"field optimizer.eps:", "+Inf is out of range"}},
		{"several bad at once", minimal + "optimizer: {name: adam, beta1: 2, eps: 0}\n", []string{"field optimizer.beta1:", "field optimizer.eps:"}},
		{"momentum to adam", minimal + "optimizer: {name: adam, momentum: 0.9}\n", []string{"field optimizer.momentum:", "adam does not take momentum; it takes beta1, beta2, eps"}},
		{"beta1 to sgd, even zero", minimal + "optimizer: {name: sgd, beta1: 0}\n", []string{"field optimizer.beta1:", "sgd does not take beta1; it takes momentum"}},
		{"eps to sgd", minimal + "optimizer: {name: sgd, eps: 1e-8}\n", []string{"field optimizer.eps:", "sgd does not take eps"}},
	}
	checkParseErrors(t, tests)
	// A wire spec gets the same checks as a file.
	bad := fullJob().Proto()
	bad.Optimizer, bad.OptimizerEps = "adam", ptr(0.0)
	if _, err := CheckProto(bad); err == nil || !strings.Contains(err.Error(), "field optimizer.eps:") {
		t.Errorf("CheckProto(adam, eps 0) = %v, want a field optimizer.eps error", err)
	}
}

// parseErrorCase is a spec Parse must refuse, and what its error must say.
type parseErrorCase struct {
	name string
	yaml string
	want []string // every substring must appear in the error
}

// checkParseErrors runs Parse on each case: it must fail, return no job,
// and mention every wanted substring.
func checkParseErrors(t *testing.T, tests []parseErrorCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, err := Parse("job.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse accepted %q as %+v", tt.yaml, j)
			}
			if j != nil {
				t.Errorf("Parse returned a job alongside error %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestDPJobsHoldNoRowsOut: per-round evaluation would release figures
// about held-out rows without noise, so a DP job's default is none, on the
// wire too.
func TestDPJobsHoldNoRowsOut(t *testing.T) {
	j, err := Parse("job.yaml", []byte(minimal+"privacy: {dp: {epsilon: 2, delta: 1e-5, clip_norm: 1}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if *j.EvalFraction != 0 || j.Proto().GetEvalFraction() != 0 {
		t.Errorf("a DP job's eval_fraction is %v (wire %v), want 0", *j.EvalFraction, j.Proto().GetEvalFraction())
	}
	plain, err := Parse("job.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if *plain.EvalFraction != DefaultEvalFraction {
		t.Errorf("a job without DP holds out %v, want the default %v", *plain.EvalFraction, DefaultEvalFraction)
	}
}
