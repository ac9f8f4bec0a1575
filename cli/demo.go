package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"gonum.org/v1/gonum/mat"

	"github.com/federa-dev/federa"
	"github.com/federa-dev/federa/attest/auditlog"
	"github.com/federa-dev/federa/coordinator"
	"github.com/federa-dev/federa/dataset"
	"github.com/federa-dev/federa/internal/devnet"
	"github.com/federa-dev/federa/models"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/site"
	"github.com/federa-dev/federa/spec"
)

const demoDataset = "breast-cancer"

type demoFlags struct {
	data      string
	label     string
	features  string
	model     string
	rounds    int
	epochs    int
	batch     int
	lr        float64
	l2        float64
	minSites  int
	seed      int64
	timeout   time.Duration
	stateDir  string
	output    string
	policyDir string
	classify  []string
	logToFile bool
}

// demoResult is the last line of `federa demo --output json`.
type demoResult struct {
	JobID               string       `json:"job_id"`
	Status              string       `json:"status"`
	Message             string       `json:"message,omitempty"`
	RoundsCompleted     int          `json:"rounds_completed"`
	Sites               []string     `json:"sites"`
	TestAccuracy        float64      `json:"test_accuracy"`
	CentralizedAccuracy float64      `json:"centralized_accuracy"`
	ModelPath           string       `json:"model_path"`
	StateDir            string       `json:"state_dir"`
	ElapsedSeconds      float64      `json:"elapsed_seconds"`
	Rounds              []demoRound  `json:"rounds"`
	Bytes               []demoBytes  `json:"bytes"`
	TestRows            int          `json:"test_rows"`
	Features            []string     `json:"features"`
	Classes             []string     `json:"classes"`
	Timings             *demoTimings `json:"timings,omitempty"`
	ModelBundle         string       `json:"model_bundle"`
	ProvenanceBundle    string       `json:"provenance_bundle"`
	SigningKey          string       `json:"signing_key"`
	AuditEntries        int64        `json:"audit_entries"`
	AuditVerified       bool         `json:"audit_verified"`
	AuditKey            string       `json:"audit_key"`
}

type demoRound struct {
	Round        int      `json:"round"`
	Sites        []string `json:"sites"`
	TrainLoss    float64  `json:"train_loss"`
	EvalAccuracy *float64 `json:"eval_accuracy"`
}

type demoBytes struct {
	Site string `json:"site"`
	// RawBytes is the size of the site's data file: it never moved.
	RawBytes int64 `json:"raw_bytes"`
	// LeftBytes is every byte the site sent the coordinator for the job.
	LeftBytes int64 `json:"left_bytes"`
	// LeftShare is LeftBytes / RawBytes: what left, as a share of what a
	// central copy of the data would have moved.
	LeftShare float64 `json:"left_share"`
}

type demoTimings struct {
	FederatedSeconds   float64 `json:"federated_seconds"`
	CentralizedSeconds float64 `json:"centralized_seconds"`
}

var siteFileRE = regexp.MustCompile(`^([a-z0-9][a-z0-9]*)-([a-z0-9][a-z0-9-]*)\.csv$`)

func newDemoCmd(g *globals) *cobra.Command {
	var f demoFlags
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Train a model across three jurisdictions in one process, and compare with central training",
		Long: `demo starts a coordinator and one site agent per data file, in this process
but over real gRPC with real SPIFFE mTLS on loopback, each site with its own
identity, state directory and non-IID slice of the data. It submits a
federated training job, shows its progress, downloads the model, scores the
model file on a held-out test file that no site had, and prints that next to
the same model trained centrally on the union of the site files (same
hyper-parameters, same rows). It ends with what stayed at each site and what
left it. Exit status 0 only if the job succeeded.

The default data is the UCI Breast Cancer Wisconsin (Diagnostic) dataset,
split across eu/paris, us/boston and sg/singapore (testdata/README.md).`,
		Example: `  federa demo
  federa demo --rounds 5 --output json
  federa demo --data ./mydata --label outcome --features age,bmi,glucose
  federa demo --state ./demo-state      # keep identities, stores and model`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDemo(cmd.Context(), g, &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.data, "data", "", "directory with one <jurisdiction>-<site>.csv per site plus test.csv (default: the shipped breast-cancer data)")
	fl.StringVar(&f.label, "label", "label", "label column")
	fl.StringVar(&f.features, "features", "", "comma-separated feature columns (default: every column but the label)")
	fl.StringVar(&f.model, "model", "logreg", "model type: logreg")
	fl.IntVar(&f.rounds, "rounds", 10, "federated rounds")
	fl.IntVar(&f.epochs, "local-epochs", 2, "local epochs per round")
	fl.IntVar(&f.batch, "batch-size", 16, "minibatch size")
	fl.Float64Var(&f.lr, "learning-rate", 0.1, "SGD learning rate")
	fl.Float64Var(&f.l2, "l2", 1e-4, "L2 penalty")
	fl.IntVar(&f.minSites, "min-sites", 0, "quorum per round (default: all sites but one, at least 1)")
	fl.Int64Var(&f.seed, "seed", 42, "seed for splits and shuffling")
	fl.DurationVar(&f.timeout, "round-timeout", 60*time.Second, "how long a round waits for slow sites")
	fl.StringVar(&f.stateDir, "state", "", "keep all state here (coordinator in DIR/coordinator, sites in DIR/sites/<name>); default: a new temporary directory, kept")
	fl.StringVarP(&f.output, "output", "o", "text", "output format: text or json (json: the last line is one JSON object)")
	fl.StringVar(&f.policyDir, "policy", "", "every site's Rego policy folder (default: the built-in default policy; see docs/policy.md)")
	fl.StringSliceVar(&f.classify, "classify", []string{"*=internal"}, "column classifications every site declares to its policy, as COLUMN=CLASS (CLASS: public, internal, personal, special_category; COLUMN * sets the default)")
	return cmd
}

// demoData finds the site files and test.csv in dir, or extracts the
// embedded dataset into the state directory.
func demoData(dir, state string) (sites []devnet.SiteSpec, test string, err error) {
	var fsys fs.FS
	if dir == "" {
		fsys = federa.DemoData()
		dir = filepath.Join(state, "data")
	} else {
		fsys = os.DirFS(dir)
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, "", fmt.Errorf("flag --data: %w", err)
	}
	var ignored []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".csv") {
			continue
		}
		if name == "test.csv" {
			test = filepath.Join(dir, name)
			continue
		}
		m := siteFileRE.FindStringSubmatch(name)
		if m == nil {
			ignored = append(ignored, name)
			continue
		}
		sites = append(sites, devnet.SiteSpec{Name: m[1] + "/" + m[2], Dataset: demoDataset, Path: filepath.Join(dir, name)})
	}
	if test == "" {
		return nil, "", fmt.Errorf("flag --data: %s has no test.csv (the held-out file no site gets)", dir)
	}
	if len(sites) == 0 {
		return nil, "", fmt.Errorf("flag --data: %s has no site files named <jurisdiction>-<site>.csv, e.g. eu-paris.csv (ignored: %v)", dir, ignored)
	}
	sort.Slice(sites, func(i, k int) bool { return sites[i].Name < sites[k].Name })
	if fsys != nil && dir == filepath.Join(state, "data") {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, "", err
		}
		for _, name := range append([]string{"test.csv"}, baseNames(sites)...) {
			b, err := fs.ReadFile(fsys, name)
			if err != nil {
				return nil, "", err
			}
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				return nil, "", err
			}
		}
	}
	return sites, test, nil
}

// parseClassify reads --classify COLUMN=CLASS pairs.
func parseClassify(pairs []string) ([]site.Column, string, error) {
	valid := map[string]bool{"public": true, "internal": true, "personal": true, "special_category": true}
	var cols []site.Column
	def := "internal" // the demo data: de-identified measurements
	for _, p := range pairs {
		col, class, ok := strings.Cut(p, "=")
		col, class = strings.TrimSpace(col), strings.TrimSpace(class)
		if !ok || col == "" || !valid[class] {
			return nil, "", fmt.Errorf("flag --classify: %q: want COLUMN=CLASS with CLASS one of public, internal, personal, special_category", p)
		}
		if col == "*" {
			def = class
			continue
		}
		cols = append(cols, site.Column{Name: col, Classification: class})
	}
	return cols, def, nil
}

func baseNames(sites []devnet.SiteSpec) []string {
	var out []string
	for _, s := range sites {
		out = append(out, filepath.Base(s.Path))
	}
	return out
}

func runDemo(ctx context.Context, g *globals, f *demoFlags) error {
	start := time.Now()
	if err := checkOutput(f.output); err != nil {
		return err
	}
	var features []string
	if f.features != "" {
		for _, c := range strings.Split(f.features, ",") {
			features = append(features, strings.TrimSpace(c))
		}
	}
	state := f.stateDir
	if state == "" {
		var err error
		if state, err = os.MkdirTemp("", "federa-demo-"); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(state, 0o755); err != nil {
		return fmt.Errorf("flag --state: %w", err)
	}
	state, _ = filepath.Abs(state)
	sites, testPath, err := demoData(f.data, state)
	if err != nil {
		return err
	}
	cols, def, err := parseClassify(f.classify)
	if err != nil {
		return err
	}
	for i := range sites {
		sites[i].Columns, sites[i].DefaultClassification = cols, def
	}
	minSites := f.minSites
	if minSites == 0 {
		minSites = max(1, len(sites)-1)
	}
	var names []string
	for _, s := range sites {
		names = append(names, s.Name)
	}
	j := &spec.Job{
		Name: "demo-" + f.model, Dataset: demoDataset, Label: f.label, Features: features,
		Model: spec.Model{Type: f.model}, Rounds: f.rounds, LocalEpochs: f.epochs, BatchSize: f.batch,
		LearningRate: f.lr, L2: f.l2, MinSites: minSites, RoundTimeout: spec.Duration(f.timeout),
		Sites: names, Seed: f.seed,
	}
	j.ApplyDefaults()
	if err := j.Validate(); err != nil {
		return fmt.Errorf("demo job: %w", err)
	}
	// Daemon logs go to a file: the terminal is for the story.
	logFile, err := os.OpenFile(filepath.Join(state, "demo.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	log, err := g.logger(logFile)
	if err != nil {
		return err
	}
	text := f.output == "text"
	out := g.stdout
	say := func(format string, args ...any) {
		if text {
			fmt.Fprintf(out, format+"\n", args...)
		}
	}
	say("federa demo: %d sites, dataset %s, state in %s", len(sites), demoDataset, state)
	if f.policyDir != "" {
		if f.policyDir, err = filepath.Abs(f.policyDir); err != nil {
			return err
		}
		if st, err := os.Stat(f.policyDir); err != nil || !st.IsDir() {
			return fmt.Errorf("flag --policy: %s is not a directory of Rego files", f.policyDir)
		}
	}
	net, err := devnet.Start(devnet.Options{Dir: state, Sites: sites, Log: log, PolicyDir: f.policyDir})
	if err != nil {
		return fmt.Errorf("start federation: %w", err)
	}
	defer net.Close()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := net.WaitConnected(wctx); err != nil {
		return err
	}
	say("coordinator %s up; sites connected over SPIFFE mTLS: %s", net.Addr(), strings.Join(names, ", "))

	client, closeFn, err := net.Dial("alice")
	if err != nil {
		return err
	}
	defer closeFn()
	fedStart := time.Now()
	job, err := client.SubmitJob(ctx, &federav1.SubmitJobRequest{Spec: j.Proto()})
	if err != nil {
		err = rpcErr("submit job", err)
		if !text {
			_ = json.NewEncoder(out).Encode(demoResult{Status: "refused", Message: err.Error(), Sites: names, StateDir: state, ElapsedSeconds: time.Since(start).Seconds()})
		}
		return &exitError{code: 2, err: err}
	}
	say("submitted job %s as spiffe://%s/user/alice: %s, %d rounds, min_sites %d", job.GetId(), devnet.DefaultTrustDomain, f.model, f.rounds, minSites)
	final, err := watchJob(ctx, client, job.GetId(), progressWriter(out, text), "text")
	if err != nil {
		return err
	}
	fedSecs := time.Since(fedStart).Seconds()
	res := &demoResult{
		JobID: final.GetId(), Status: final.GetStatus().Name(), Message: final.GetMessage(),
		RoundsCompleted: int(final.GetRoundsCompleted()), Sites: names, StateDir: state,
		Features: final.GetFeatures(), Classes: final.GetClasses(),
	}
	for _, r := range final.GetRounds() {
		dr := demoRound{Round: int(r.GetRound()), Sites: r.GetParticipants(), TrainLoss: r.GetTrainLoss()}
		if a := r.GetEvalAccuracy(); a == a {
			dr.EvalAccuracy = &a
		}
		res.Rounds = append(res.Rounds, dr)
	}
	for _, s := range final.GetSites() {
		b := demoBytes{Site: s.GetSite(), RawBytes: s.GetRawBytes(), LeftBytes: s.GetBytesSent()}
		if b.RawBytes > 0 {
			b.LeftShare = float64(b.LeftBytes) / float64(b.RawBytes)
		}
		res.Bytes = append(res.Bytes, b)
	}
	if final.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		res.ElapsedSeconds = time.Since(start).Seconds()
		if !text {
			_ = json.NewEncoder(out).Encode(res)
		}
		return finalErr(final)
	}
	res.ModelPath = filepath.Join(state, "model.safetensors")
	cmd := &cobra.Command{}
	cmd.SetContext(ctx)
	sum, size, err := downloadModel(cmd, client, job.GetId(), res.ModelPath)
	if err != nil {
		return err
	}
	paths := releasePaths(res.ModelPath)
	res.ModelBundle, res.ProvenanceBundle, res.SigningKey = paths.Bundle, paths.Provenance, paths.SigningKey
	say("model: %s (%d bytes, sha256:%s), signed: %s", res.ModelPath, size, sum[:16], filepath.Base(paths.Bundle))
	ev, err := evaluateModelFile(res.ModelPath, testPath, f.label)
	if err != nil {
		return fmt.Errorf("evaluate exported model: %w", err)
	}
	res.TestAccuracy, res.TestRows = ev.Accuracy, ev.Rows
	cStart := time.Now()
	central, err := centralAccuracy(ctx, sites, testPath, j, final.GetFeatures())
	if err != nil {
		return fmt.Errorf("centralized baseline: %w", err)
	}
	res.CentralizedAccuracy = central
	res.Timings = &demoTimings{FederatedSeconds: fedSecs, CentralizedSeconds: time.Since(cStart).Seconds()}
	// End by checking the audit trail of all this, as an auditor would.
	res.AuditKey = net.Coordinator().AuditKey()
	rep, err := auditlog.Verify(filepath.Join(net.CoordinatorDir(), coordinator.AuditDir), res.AuditKey)
	if err != nil {
		return fmt.Errorf("the demo's own audit log does not verify: %w", err)
	}
	res.AuditEntries, res.AuditVerified = rep.Size, true
	res.ElapsedSeconds = time.Since(start).Seconds()
	if text {
		fmt.Fprintf(out, "\naccuracy on %s (%d rows no site had):\n", filepath.Base(testPath), ev.Rows)
		fmt.Fprintf(out, "  federated model (exported file)   %.4f\n", res.TestAccuracy)
		fmt.Fprintf(out, "  same model trained centrally      %.4f   (union of the site files: what federa avoids)\n\n", central)
		printSites(out, final)
		var raw, left int64
		for _, b := range res.Bytes {
			raw += b.RawBytes
			left += b.LeftBytes
		}
		fmt.Fprintf(out, "\nNo row left any site: %s of raw data stayed put; %s of aggregates left (%s of what a central copy would have moved).\n",
			humanBytes(raw), humanBytes(left), share(left, raw))
		fmt.Fprintf(out, "Audit log verified: %d signed, tamper-evident entries (federa audit verify --state %s).\n", res.AuditEntries, state)
		fmt.Fprintf(out, "job %s succeeded in %.1fs; state kept in %s\n", res.JobID, res.ElapsedSeconds, state)
		return nil
	}
	return json.NewEncoder(out).Encode(res)
}

// progressWriter indents job events under the demo's own lines, or drops
// them in JSON mode (the last line must be the result object).
func progressWriter(w io.Writer, text bool) io.Writer {
	if !text {
		return io.Discard
	}
	return w
}

// centralAccuracy trains the same model on the union of exactly the rows
// the sites trained on — each site file split with the same seed and eval
// fraction the sites used — for rounds × local_epochs epochs with the same
// hyper-parameters, and scores it on the test file. It is what a central
// copy of the data would have bought.
func centralAccuracy(ctx context.Context, sites []devnet.SiteSpec, testPath string, j *spec.Job, features []string) (float64, error) {
	var parts []*dataset.Table
	classSet := map[string]bool{}
	for _, s := range sites {
		tab, err := dataset.LoadCSV(s.Path, dataset.Options{Label: j.Label, Features: features})
		if err != nil {
			return 0, err
		}
		train, eval := tab.Split(*j.EvalFraction, site.SplitSeed(j.Seed))
		parts = append(parts, train)
		for _, t := range []*dataset.Table{train, eval} {
			for _, c := range t.Classes() {
				classSet[c] = true
			}
		}
	}
	var classes []string
	for c := range classSet {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	rows := 0
	for _, p := range parts {
		rows += p.Rows()
	}
	X := mat.NewDense(rows, len(features), nil)
	var y []int
	r := 0
	for _, p := range parts {
		idx, err := p.ClassIndex(classes)
		if err != nil {
			return 0, err
		}
		for i := 0; i < p.Rows(); i++ {
			X.SetRow(r, p.X.RawRowView(i))
			r++
		}
		y = append(y, idx...)
	}
	scaler := models.ComputeMoments(X).Scaler()
	res, err := models.TrainLogReg(ctx, models.NewLogReg(len(features), len(classes)), scaler.Apply(X), y, models.TrainConfig{
		Epochs: j.Rounds * j.LocalEpochs, BatchSize: j.BatchSize, LearningRate: j.LearningRate, L2: j.L2, Seed: j.Seed,
	})
	if err != nil {
		return 0, err
	}
	test, err := dataset.LoadCSV(testPath, dataset.Options{Label: j.Label, Features: features})
	if err != nil {
		return 0, err
	}
	ty, err := test.ClassIndex(classes)
	if err != nil {
		return 0, err
	}
	correct, _, err := models.EvaluateLogReg(res.Weights, scaler.Apply(test.X), ty)
	if err != nil {
		return 0, err
	}
	if test.Rows() == 0 {
		return 0, errors.New("test file has no rows")
	}
	return float64(correct) / float64(test.Rows()), nil
}
