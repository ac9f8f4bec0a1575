// Command bench-learning measures what federated training costs in
// accuracy and wall time: a federated MLP (784-100-10) over the ten
// label-skewed Fashion-MNIST sites of `make data`, round by round, beside
// the same MLP trained centrally by federa on the union of the sites'
// training rows in the same run, and, when /usr/bin/python3 has it,
// scikit-learn's MLPClassifier on the same rows (`make bench-learning`).
//
// Two accuracies appear and they are not the same thing: the per-round
// "eval accuracy" is the job's RoundSummary, pooled over the sites'
// held-out rows (eval_fraction of each site's own skewed data); "test
// accuracy" is on the untouched 10 000-image Fashion-MNIST test set, scored
// with the exported model file at the end.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/federa-dev/federa/dataset"
	"github.com/federa-dev/federa/models"
	"github.com/federa-dev/federa/policy"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
	"github.com/federa-dev/federa/site"
	"github.com/federa-dev/federa/spec"
)

const datasetName = "fmnist"

// target is the test-set-free milestone reported as "time to first round
// ≥ target" (pooled site eval accuracy).
const target = 0.85

type round struct {
	Round        int      `json:"round"`
	EvalAccuracy *float64 `json:"eval_accuracy"` // pooled site held-out rows
	TrainLoss    float64  `json:"train_loss"`
	Elapsed      float64  `json:"elapsed_seconds"` // since the job was submitted
}

type baseline struct {
	TestAccuracy float64 `json:"test_accuracy"`
	Seconds      float64 `json:"seconds"`
	Epochs       int     `json:"epochs"`
	TrainRows    int     `json:"train_rows"`
	Skipped      string  `json:"skipped,omitempty"`
}

type result struct {
	Date               string    `json:"date"`
	Sites              []string  `json:"sites"`
	Model              string    `json:"model"`
	Optimizer          string    `json:"optimizer"`
	LearningRate       float64   `json:"learning_rate"`
	Seed               int64     `json:"seed"`
	DPEpsilon          float64   `json:"dp_epsilon,omitempty"` // DP-SGD at each site; 0: none
	Rounds             []round   `json:"rounds"`
	TestRows           int       `json:"test_rows"`
	FederatedTest      float64   `json:"federated_test_accuracy"`
	FederatedSeconds   float64   `json:"federated_seconds"`
	SecondsToTarget    *float64  `json:"seconds_to_eval_0_85,omitempty"`
	RoundToTarget      int       `json:"round_to_eval_0_85,omitempty"`
	Central            baseline  `json:"central"`
	Sklearn            *baseline `json:"sklearn"`
	MinRecordsOverride int       `json:"policy_min_records"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-learning:", err)
		os.Exit(1)
	}
}

func run() error {
	data := flag.String("data", "data/fashion-mnist", "the split of `make data`: one <jurisdiction>-<site>/ folder per site and test/")
	rounds := flag.Int("rounds", 20, "federated rounds (the central baselines train rounds × local epochs epochs)")
	optimizer := flag.String("optimizer", "adam", "local optimizer: sgd or adam")
	lr := flag.Float64("lr", 0.001, "learning rate")
	output := flag.String("o", "text", "output: text or json")
	seed := flag.Int64("seed", 42, "the job's seed (splits and shuffling)")
	dpEpsilon := flag.Float64("dp-epsilon", 0, "train with DP-SGD at this epsilon at each site (delta 1e-5; 0: no DP)")
	dpClip := flag.Float64("dp-clip", 1, "the per-row gradient clip norm under -dp-epsilon")
	baselines := flag.Bool("baselines", true, "also train the central and scikit-learn baselines")
	flag.Parse()
	if *output != "text" && *output != "json" {
		return fmt.Errorf("flag -o: %q; want text or json", *output)
	}
	text := *output == "text"
	say := func(format string, args ...any) {
		if text {
			fmt.Printf(format+"\n", args...)
		}
	}

	sites, err := findSites(*data)
	if err != nil {
		return err
	}
	testSrc := dataset.Source{Format: "idx", Path: filepath.Join(*data, "test", "t10k-images-idx3-ubyte.gz"),
		Labels: filepath.Join(*data, "test", "t10k-labels-idx1-ubyte.gz"), Classes: dataset.FashionMNISTClasses}
	if _, err := os.Stat(testSrc.Path); err != nil {
		return fmt.Errorf("%s is missing; run make data first", testSrc.Path)
	}
	dir, err := os.MkdirTemp("", "federa-bench-learning-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	policyDir, err := permissivePolicy(filepath.Join(dir, "policy"))
	if err != nil {
		return err
	}

	var names []string
	for _, s := range sites {
		names = append(names, s.Name)
	}
	res := &result{}
	j := &spec.Job{
		Name: "bench-learning", Dataset: datasetName, Label: dataset.IDXLabel,
		Model:  spec.Model{Type: "mlp", Hidden: []int{100}, Activation: "relu"},
		Rounds: *rounds, LocalEpochs: 1, BatchSize: 64, LearningRate: *lr,
		MinSites: len(sites), Sites: names, Seed: *seed, RoundTimeout: spec.Duration(30 * time.Minute),
		Optimizer: spec.Optimizer{Name: *optimizer},
	}
	if *dpEpsilon > 0 {
		j.Privacy.DP = &spec.DP{Epsilon: *dpEpsilon, Delta: 1e-5, ClipNorm: *dpClip}
		res.DPEpsilon = *dpEpsilon
	}
	j.ApplyDefaults()
	if err := j.Validate(); err != nil {
		return fmt.Errorf("job: %w", err)
	}
	res.Date, res.Sites, res.Model, res.Optimizer, res.LearningRate, res.Seed = time.Now().UTC().Format("2006-01-02"), names, "mlp 784-100-10 relu", *optimizer, *lr, *seed
	say("bench-learning: %d sites from %s, mlp 784-100-10 relu, %s lr %g, %d rounds × 1 local epoch, batch 64, min_sites %d",
		len(sites), *data, *optimizer, *lr, *rounds, len(sites))
	say("policy: the default, with data.federa.limits.min_records = 0 (several skewed sites hold a class with 0–6 rows)")

	ctx := context.Background()
	final, err := federate(ctx, dir, policyDir, sites, j, res, say)
	if err != nil {
		return err
	}
	test, err := testSrc.Load(dataset.Options{Label: dataset.IDXLabel})
	if err != nil {
		return err
	}
	res.TestRows = test.Rows()
	m, err := models.LoadModel(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		return err
	}
	if res.FederatedTest, err = accuracy(test, m.Classes, func(X *mat.Dense) ([]int, error) { p, err := m.Predict(X); return p.Classes, err }); err != nil {
		return fmt.Errorf("score the federated model: %w", err)
	}
	say("federated model: test accuracy %.4f on %d test images", res.FederatedTest, res.TestRows)

	if !*baselines {
		if !text {
			return json.NewEncoder(os.Stdout).Encode(res)
		}
		printReport(os.Stdout, res)
		return nil
	}
	// The baselines run after the federation is closed, so they have the
	// machine to themselves as the federation had.
	say("training the same MLP centrally (%d epochs) …", j.Rounds*j.LocalEpochs)
	X, y, err := union(sites, j, final.GetClasses())
	if err != nil {
		return fmt.Errorf("central baseline: %w", err)
	}
	if res.Central, err = central(ctx, j, X, y, test, final.GetClasses()); err != nil {
		return fmt.Errorf("central baseline: %w", err)
	}
	say("central model: test accuracy %.4f in %.1fs", res.Central.TestAccuracy, res.Central.Seconds)
	res.Sklearn = sklearn(dir, X, y, test, final.GetClasses(), j, say)

	if !text {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	printReport(os.Stdout, res)
	return nil
}

// findSites lists data's <jurisdiction>-<site>/ folders.
func findSites(data string) ([]sim.SiteSpec, error) {
	entries, err := os.ReadDir(data)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w; run make data first", data, err)
	}
	var sites []sim.SiteSpec
	for _, e := range entries {
		jur, name, ok := strings.Cut(e.Name(), "-")
		if !e.IsDir() || !ok {
			continue
		}
		images := filepath.Join(data, e.Name(), "train-images-idx3-ubyte.gz")
		labels := filepath.Join(data, e.Name(), "train-labels-idx1-ubyte.gz")
		if _, err := os.Stat(images); err != nil {
			return nil, fmt.Errorf("%s is missing; run make data first", images)
		}
		sites = append(sites, sim.SiteSpec{Name: jur + "/" + name, Dataset: datasetName, Format: "idx",
			Path: images, Labels: labels, Classes: dataset.FashionMNISTClasses})
	}
	if len(sites) == 0 {
		return nil, fmt.Errorf("%s has no <jurisdiction>-<site>/ folders; run make data first", data)
	}
	return sites, nil
}

// permissivePolicy is the default policy with no floor on the records
// behind a contribution: with Dirichlet(0.5) skew, several sites hold a
// class with only a handful of rows.
func permissivePolicy(dir string) (string, error) {
	if err := policy.CopyTo(policy.Default(), dir); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "data.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	fed, _ := doc["federa"].(map[string]any)
	limits, _ := fed["limits"].(map[string]any)
	if limits == nil {
		return "", fmt.Errorf("%s has no federa.limits object", path)
	}
	limits["min_records"] = 0
	if b, err = json.MarshalIndent(doc, "", "  "); err != nil {
		return "", err
	}
	return dir, os.WriteFile(path, b, 0o644)
}

// federate runs the job on a sim, records its rounds as they close and
// downloads the model to dir/model.safetensors.
func federate(ctx context.Context, dir, policyDir string, sites []sim.SiteSpec, j *spec.Job, res *result, say func(string, ...any)) (*federav1.Job, error) {
	// Ten sites decoding and training on two busy cores can miss the demo's
	// 1s heartbeat (a site is dropped after three silent beats), and
	// min_sites is every site, so one late beat would fail the job.
	net, err := sim.Start(sim.Options{Dir: filepath.Join(dir, "net"), Sites: sites, PolicyDir: policyDir,
		Log: slog.New(slog.DiscardHandler), Heartbeat: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("start federation: %w", err)
	}
	defer net.Close()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := net.WaitConnected(wctx); err != nil {
		return nil, err
	}
	client, closeFn, err := net.Dial("alice")
	if err != nil {
		return nil, err
	}
	defer closeFn()
	start := time.Now()
	job, err := client.SubmitJob(ctx, &federav1.SubmitJobRequest{Spec: j.Proto()})
	if err != nil {
		return nil, fmt.Errorf("submit job: %w", err)
	}
	stream, err := client.WatchJob(ctx, &federav1.WatchJobRequest{Id: job.GetId()})
	if err != nil {
		return nil, fmt.Errorf("watch job: %w", err)
	}
	var final *federav1.Job
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("watch job: %w", err)
		}
		final = ev.GetJob()
		for _, r := range final.GetRounds()[len(res.Rounds):] {
			rr := round{Round: int(r.GetRound()), TrainLoss: r.GetTrainLoss(), Elapsed: time.Since(start).Seconds()}
			if a := r.GetEvalAccuracy(); a == a {
				rr.EvalAccuracy = &a
				if a >= target && res.SecondsToTarget == nil {
					res.SecondsToTarget, res.RoundToTarget = &rr.Elapsed, rr.Round
				}
			}
			res.Rounds = append(res.Rounds, rr)
			say("  round %3d  eval accuracy %s  train loss %.4f  %6.1fs", rr.Round, fmtAcc(rr.EvalAccuracy), rr.TrainLoss, rr.Elapsed)
		}
	}
	res.FederatedSeconds = time.Since(start).Seconds()
	if final == nil {
		return nil, errors.New("watch job: the stream ended with no news")
	}
	if final.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		return nil, fmt.Errorf("job %s ended %s: %s", final.GetId(), final.GetStatus(), final.GetMessage())
	}
	model, err := fetch(ctx, client, job.GetId())
	if err != nil {
		return nil, err
	}
	return final, os.WriteFile(filepath.Join(dir, "model.safetensors"), model, 0o644)
}

func fetch(ctx context.Context, c federav1.JobServiceClient, id string) ([]byte, error) {
	stream, err := c.GetModel(ctx, &federav1.GetModelRequest{JobId: id, Artifact: "model"})
	if err != nil {
		return nil, fmt.Errorf("get model: %w", err)
	}
	var b []byte
	for {
		ch, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return b, nil
		}
		if err != nil {
			return nil, fmt.Errorf("get model: %w", err)
		}
		b = append(b, ch.GetData()...)
	}
}

// union stacks the rows the sites trained on — each site's data split with
// the job's seed and eval fraction, as the sites split it — with labels as
// indices into classes.
func union(sites []sim.SiteSpec, j *spec.Job, classes []string) (*mat.Dense, []int, error) {
	var parts []*dataset.Table
	rows := 0
	for _, s := range sites {
		tab, err := dataset.Source{Format: s.Format, Path: s.Path, Labels: s.Labels, Classes: s.Classes}.Load(dataset.Options{Label: j.Label})
		if err != nil {
			return nil, nil, err
		}
		train, _ := tab.Split(*j.EvalFraction, site.SplitSeed(j.Seed))
		parts = append(parts, train)
		rows += train.Rows()
	}
	_, cols := parts[0].X.Dims()
	X := mat.NewDense(rows, cols, nil)
	var y []int
	r := 0
	for _, p := range parts {
		idx, err := p.ClassIndex(classes)
		if err != nil {
			return nil, nil, err
		}
		for i := 0; i < p.Rows(); i++ {
			X.SetRow(r, p.X.RawRowView(i))
			r++
		}
		y = append(y, idx...)
	}
	return X, y, nil
}

// central trains the job's architecture on X with the job's
// hyper-parameters for rounds × local_epochs epochs.
func central(ctx context.Context, j *spec.Job, X *mat.Dense, y []int, test *dataset.Table, classes []string) (baseline, error) {
	start := time.Now()
	rows, cols := X.Dims()
	scaler := models.ComputeMoments(X).Scaler()
	arch, err := j.Model.Arch()
	if err != nil {
		return baseline{}, err
	}
	w0, err := arch.Init(cols, len(classes))
	if err != nil {
		return baseline{}, err
	}
	epochs := j.Rounds * j.LocalEpochs
	tr, err := arch.Train(ctx, w0, scaler.Apply(X), models.ClassTargets(y), models.TrainConfig{
		Epochs: epochs, BatchSize: j.BatchSize, LearningRate: j.LearningRate, L2: j.L2, Seed: j.Seed,
		Optimizer: j.Optimizer.Config(),
	})
	if err != nil {
		return baseline{}, err
	}
	secs := time.Since(start).Seconds()
	acc, err := accuracy(test, classes, func(X *mat.Dense) ([]int, error) {
		p, err := arch.Predict(tr.Weights, scaler.Apply(X))
		return p.Classes, err
	})
	return baseline{TestAccuracy: acc, Seconds: secs, Epochs: epochs, TrainRows: rows}, err
}

// accuracy scores predict on test; a row whose class is not in classes
// counts as wrong.
func accuracy(test *dataset.Table, classes []string, predict func(*mat.Dense) ([]int, error)) (float64, error) {
	y, _, err := test.ClassIndexOrUnseen(classes)
	if err != nil {
		return 0, err
	}
	pred, err := predict(test.X)
	if err != nil {
		return 0, err
	}
	correct := 0
	for i := range pred {
		if pred[i] == y[i] {
			correct++
		}
	}
	return float64(correct) / float64(len(y)), nil
}

// sklearnScript trains MLPClassifier on the raw uint8 files sklearn writes
// and prints {"test_accuracy", "seconds"}.
const sklearnScript = `
import json, sys, time, warnings
import numpy as np
from sklearn.neural_network import MLPClassifier
d, cols, epochs, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
X = np.fromfile(d + "/train-x", dtype=np.uint8).reshape(-1, cols) / 255.0
y = np.fromfile(d + "/train-y", dtype=np.uint8)
Xt = np.fromfile(d + "/test-x", dtype=np.uint8).reshape(-1, cols) / 255.0
yt = np.fromfile(d + "/test-y", dtype=np.uint8)
warnings.filterwarnings("ignore")
t = time.perf_counter()
clf = MLPClassifier(hidden_layer_sizes=(100,), max_iter=epochs, random_state=seed).fit(X, y)
secs = time.perf_counter() - t
print(json.dumps({"test_accuracy": float((clf.predict(Xt) == yt).mean()), "seconds": secs}))
`

// sklearn times scikit-learn's MLPClassifier (defaults: adam, lr 0.001,
// batch 200) on the same rows, pixels / 255, when /usr/bin/python3 has it.
func sklearn(dir string, X *mat.Dense, y []int, test *dataset.Table, classes []string, j *spec.Job, say func(string, ...any)) *baseline {
	const py = "/usr/bin/python3"
	rows, cols := X.Dims()
	b := &baseline{Epochs: j.Rounds * j.LocalEpochs, TrainRows: rows}
	if err := exec.Command(py, "-c", "import sklearn").Run(); err != nil {
		b.Skipped = py + " has no sklearn (apt-get install python3-sklearn)"
		say("sklearn: skipped: %s", b.Skipped)
		return b
	}
	ty, _, err := test.ClassIndexOrUnseen(classes)
	if err != nil {
		b.Skipped = err.Error()
		return b
	}
	write := func(name string, M *mat.Dense, labels []int) error {
		var buf []byte
		if M != nil {
			r, c := M.Dims()
			buf = make([]byte, 0, r*c)
			for i := 0; i < r; i++ {
				for _, v := range M.RawRowView(i) {
					buf = append(buf, byte(v))
				}
			}
		}
		for _, l := range labels {
			buf = append(buf, byte(l))
		}
		return os.WriteFile(filepath.Join(dir, name), buf, 0o600)
	}
	for _, err := range []error{write("train-x", X, nil), write("train-y", nil, y), write("test-x", test.X, nil), write("test-y", nil, ty)} {
		if err != nil {
			b.Skipped = err.Error()
			return b
		}
	}
	say("training sklearn MLPClassifier (max_iter %d) …", b.Epochs)
	out, err := exec.Command(py, "-c", sklearnScript, dir, fmt.Sprint(cols), fmt.Sprint(b.Epochs), fmt.Sprint(j.Seed)).Output()
	if err != nil {
		b.Skipped = fmt.Sprintf("python failed: %v", err)
		say("sklearn: %s", b.Skipped)
		return b
	}
	if err := json.Unmarshal(out, b); err != nil {
		b.Skipped = fmt.Sprintf("python printed %q: %v", out, err)
	}
	return b
}

func fmtAcc(a *float64) string {
	if a == nil {
		return "  -   "
	}
	return fmt.Sprintf("%.4f", *a)
}

func printReport(w io.Writer, r *result) {
	fmt.Fprintf(w, "\nper round (eval accuracy: pooled over the sites' held-out rows, from the job's round summaries):\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "round\teval accuracy\telapsed\t\n")
	for _, rr := range r.Rounds {
		fmt.Fprintf(tw, "%d\t%s\t%.1fs\t\n", rr.Round, fmtAcc(rr.EvalAccuracy), rr.Elapsed)
	}
	tw.Flush()
	fmt.Fprintf(w, "\ntest accuracy on the %d Fashion-MNIST test images no site had:\n", r.TestRows)
	fmt.Fprintf(w, "  federated (exported model, %d rounds)      %.4f   wall %.1fs", len(r.Rounds), r.FederatedTest, r.FederatedSeconds)
	if r.SecondsToTarget != nil {
		fmt.Fprintf(w, "   (eval ≥ %.2f first at round %d, %.1fs)", target, r.RoundToTarget, *r.SecondsToTarget)
	} else {
		fmt.Fprintf(w, "   (eval never reached %.2f)", target)
	}
	if r.DPEpsilon > 0 {
		fmt.Fprintf(w, "   DP-SGD, epsilon %g at each site", r.DPEpsilon)
	}
	fmt.Fprintln(w)
	if r.Central.Epochs > 0 {
		fmt.Fprintf(w, "  central, federa (%d epochs, %d rows)    %.4f   wall %.1fs\n", r.Central.Epochs, r.Central.TrainRows, r.Central.TestAccuracy, r.Central.Seconds)
	}
	switch {
	case r.Sklearn == nil:
	case r.Sklearn.Skipped != "":
		fmt.Fprintf(w, "  sklearn MLPClassifier: skipped: %s\n", r.Sklearn.Skipped)
	default:
		fmt.Fprintf(w, "  sklearn MLPClassifier (max_iter %d)       %.4f   wall %.1fs\n", r.Sklearn.Epochs, r.Sklearn.TestAccuracy, r.Sklearn.Seconds)
	}
	fmt.Fprintf(w, "policy: default, data.federa.limits.min_records = 0 (several skewed sites hold a class with 0–6 rows)\n")
}
