package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
	"gonum.org/v1/gonum/mat"

	"github.com/federa-dev/federa"
	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/attest/auditlog"
	"github.com/federa-dev/federa/coordinator"
	"github.com/federa-dev/federa/dataset"
	"github.com/federa-dev/federa/internal/config"
	"github.com/federa-dev/federa/internal/fsutil"
	"github.com/federa-dev/federa/internal/httpserve"
	"github.com/federa-dev/federa/models"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
	"github.com/federa-dev/federa/site"
	"github.com/federa-dev/federa/spec"
)

const demoDataset = "breast-cancer"

type demoFlags struct {
	data       string
	label      string
	features   string
	model      string
	strategy   string
	optimizer  string
	hidden     []int
	activation string
	rounds     int
	epochs     int
	batch      int
	lr         float64
	l2         float64
	minSites   int
	seed       int64
	timeout    time.Duration
	stateDir   string
	output     string
	policyDir  string
	classify   []string
	logToFile  bool
	serve      bool
	listen     string
	http       string
	svidTTL    time.Duration
	dpEpsilon  float64
	dpDelta    float64
	dpClip     float64
	dpNoise    string
	dpRate     float64
	secAgg     bool
	changed    func(flag string) bool
	query      string
}

// demoResult is the last line of `federa demo --output json`.
type demoResult struct {
	JobID               string   `json:"job_id"`
	Status              string   `json:"status"`
	Message             string   `json:"message,omitempty"`
	RoundsCompleted     int      `json:"rounds_completed"`
	Sites               []string `json:"sites"`
	TestAccuracy        float64  `json:"test_accuracy"`
	CentralizedAccuracy float64  `json:"centralized_accuracy"`
	// EpsilonSpent is, under --dp-epsilon, the most any site spent on the
	// job (each site's guarantee is about its own rows).
	EpsilonSpent *float64 `json:"epsilon_spent,omitempty"`
	// SecureAggregation is true when the coordinator learned only the sum
	// of the sites' updates (--secure-aggregation).
	SecureAggregation bool `json:"secure_aggregation,omitempty"`
	// A regressor's figures (linreg): accuracy is 0 for it. R² is null
	// when the test file's label does not vary.
	TestRMSE        *float64 `json:"test_rmse,omitempty"`
	TestR2          *float64 `json:"test_r2,omitempty"`
	CentralizedRMSE *float64 `json:"centralized_rmse,omitempty"`
	CentralizedR2   *float64 `json:"centralized_r2,omitempty"`
	ModelPath       string   `json:"model_path"`
	StateDir        string   `json:"state_dir"`
	// StateRemoved is true when the demo ran without --state: state_dir,
	// and model_path and the other files in it, were removed at exit.
	StateRemoved     bool         `json:"state_removed"`
	ElapsedSeconds   float64      `json:"elapsed_seconds"`
	Rounds           []demoRound  `json:"rounds"`
	Bytes            []demoBytes  `json:"bytes"`
	TestRows         int          `json:"test_rows"`
	TestUnseen       int          `json:"test_unseen_label_rows"`
	Features         []string     `json:"features"`
	Classes          []string     `json:"classes"`
	Timings          *demoTimings `json:"timings,omitempty"`
	ModelBundle      string       `json:"model_bundle"`
	ProvenanceBundle string       `json:"provenance_bundle"`
	SigningKey       string       `json:"signing_key"`
	AuditEntries     int64        `json:"audit_entries"`
	AuditVerified    bool         `json:"audit_verified"`
	AuditKey         string       `json:"audit_key"`
}

type demoRound struct {
	Round        int      `json:"round"`
	Sites        []string `json:"sites"`
	TrainLoss    *float64 `json:"train_loss"` // null when no loss is released (distributed DP noise)
	EvalAccuracy *float64 `json:"eval_accuracy"`
	EvalRMSE     *float64 `json:"eval_rmse,omitempty"`
	EvalR2       *float64 `json:"eval_r2,omitempty"`
}

// jsonFloat is v for a JSON field, or nil (null) when v is NaN.
func jsonFloat(v float64) *float64 {
	if math.IsNaN(v) {
		return nil
	}
	return &v
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

var (
	siteFileRE = regexp.MustCompile(`^([a-z0-9][a-z0-9]*)-([a-z0-9][a-z0-9-]*)\.csv$`)
	shellSafe  = regexp.MustCompile(`^[A-Za-z0-9_./:@%+=,-]+$`)
)

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
split across eu/paris, us/boston and sg/singapore (testdata/README.md).

With --serve, demo submits nothing: it starts the coordinator and the same
sites and keeps them running until interrupted (Ctrl-C, SIGTERM), so you can
drive them with the ordinary commands over real mTLS. It writes, under
--state DIR (default: a new temporary directory, removed when it stops):
  DIR/coordinator.addr            the coordinator's host:port
  DIR/identities/<user>/          svid.pem, key.pem, bundle.pem for each user:
                                    alice (data-scientist), auditor (auditor),
                                    admin-<jurisdiction>-<site> (site-admin of
                                    that site), mallory (valid SVID, no role)
  DIR/job.yaml                    the job the demo would run
  DIR/http.addr                   with --http: the host:port of the
                                    coordinator's page and /metrics
and prints the commands to try. User SVIDs live 24h; the daemons' SVIDs
live --svid-ttl and are re-issued at half of it, as SPIRE would. Running the
same command again reuses DIR: the same CA, and the coordinator resumes
its jobs and audit log.

--state without --serve keeps today's meaning: the one-shot demo keeps
everything it made in DIR. Without --state the demo works in a new
temporary directory and removes it at the end, unless the run fails: then it
keeps it and names it in the error.

--http ADDR (with --serve) also serves the coordinator's read-only page
(jobs, rounds, per-site participation, learning curves, audit log) and its
Prometheus /metrics on plain HTTP at ADDR. This is dev mode: any loopback
client may read them without a client certificate or token (the page's
footer says so) and other clients are refused. See docs/operations.md for
the production setting, http.listen with http.token_file.`,
		Example: `  federa demo
  federa demo --rounds 5 --output json
  federa demo --data ./mydata --label outcome --features age,bmi,glucose
  federa demo --dp-epsilon 4            # record-level DP-SGD, ε = 4 at each site
  federa demo --secure-aggregation      # the coordinator learns only the sum of the updates
  federa demo --dp-epsilon 4 --dp-noise distributed   # DP noise shared out among the sites, whole only in the secure sum
  federa demo --data testdata/diabetes --model linreg
  federa demo --state ./demo-state      # keep identities, stores and model

  # keep a federation running and use it from another terminal
  federa demo --serve --state ./demo
  export FEDERA_COORDINATOR=$(cat ./demo/coordinator.addr) FEDERA_IDENTITY=./demo/identities/alice
  federa job submit ./demo/job.yaml --watch
  federa demo --serve --state ./demo --listen 127.0.0.1:7443 --svid-ttl 2m

  # the same, with the jobs page and /metrics on a free loopback port
  federa demo --serve --state ./demo --http 127.0.0.1:0
  curl -s http://$(cat ./demo/http.addr)/metrics | grep federa_coordinator_rounds_total`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.changed = cmd.Flags().Changed
			return runDemo(cmd.Context(), g, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.data, "data", "", "directory with one <jurisdiction>-<site>.csv per site plus test.csv (default: the shipped breast-cancer data)")
	fl.StringVar(&f.label, "label", "label", "label column")
	fl.StringVar(&f.features, "features", "", "comma-separated feature columns (default: every column but the label)")
	fl.StringVar(&f.model, "model", "logreg", "model type: "+strings.Join(models.ArchNames(), ", "))
	fl.IntSliceVar(&f.hidden, "hidden", nil, "hidden layer sizes of an mlp, e.g. 32 or 64,32")
	fl.StringVar(&f.activation, "activation", "", "activation between an mlp's layers: relu (default) or tanh")
	fl.StringVar(&f.strategy, "strategy", "fedavg", "how the coordinator combines updates: "+strings.Join(models.AggregatorNames(), ", ")+", with its default parameters (see docs/jobs.md)")
	fl.StringVar(&f.optimizer, "optimizer", "sgd", "the sites' local optimizer: "+strings.Join(models.OptimizerNames(), ", ")+", with its default parameters (see docs/jobs.md)")
	fl.IntVar(&f.rounds, "rounds", 10, "federated rounds")
	fl.IntVar(&f.epochs, "local-epochs", 2, "local epochs per round")
	fl.IntVar(&f.batch, "batch-size", 16, "minibatch size")
	fl.Float64Var(&f.lr, "learning-rate", 0.1, "SGD learning rate")
	fl.Float64Var(&f.l2, "l2", 1e-4, "L2 penalty")
	fl.IntVar(&f.minSites, "min-sites", 0, "quorum per round (default: all sites but one, at least 1)")
	fl.Int64Var(&f.seed, "seed", 42, "seed for splits and shuffling")
	fl.DurationVar(&f.timeout, "round-timeout", 60*time.Second, "how long a round waits for slow sites")
	fl.StringVar(&f.stateDir, "state", "", "keep all state in `DIR` (coordinator in DIR/coordinator, sites in DIR/sites/<name>); default: a new temporary directory, removed at the end unless the run fails")
	fl.StringVarP(&f.output, "output", "o", "text", "output format: text or json (json: the last line is one JSON object)")
	fl.StringVar(&f.policyDir, "policy", "", "every site's Rego policy folder (default: the built-in default policy; see docs/policy.md)")
	fl.StringSliceVar(&f.classify, "classify", []string{"*=internal"}, "column classifications every site declares to its policy, as COLUMN=CLASS (CLASS: public, internal, personal, special_category; COLUMN * sets the default)")
	fl.BoolVar(&f.serve, "serve", false, "submit nothing; keep the coordinator and sites running until interrupted, and print the commands to use them")
	fl.StringVar(&f.listen, "listen", "127.0.0.1:0", "the coordinator's address (port 0: a free port; --serve writes it to DIR/coordinator.addr)")
	fl.StringVar(&f.http, "http", "", "with --serve: serve the coordinator's read-only page and /metrics on plain HTTP at `ADDR` (loopback readers only, no token: dev mode; port 0: a free port, written to DIR/http.addr)")
	fl.DurationVar(&f.svidTTL, "svid-ttl", 10*time.Minute, "how long the coordinator's and sites' SVIDs live; they are re-issued at half of it")
	fl.Float64Var(&f.dpEpsilon, "dp-epsilon", 0, "train with record-level differential privacy (DP-SGD) spending at most this epsilon at each site (default: no DP; see docs/privacy.md)")
	fl.Float64Var(&f.dpDelta, "dp-delta", 1e-5, "the delta of --dp-epsilon")
	fl.Float64Var(&f.dpClip, "dp-clip", 1.0, "the L2 bound on each row's gradient under --dp-epsilon")
	fl.StringVar(&f.dpNoise, "dp-noise", spec.NoiseLocal, "where --dp-epsilon's noise is added: local (each site noises its own update) or distributed (each round one DP-SGD step over all sites' rows; each site adds a share and only the secure sum carries all of it; turns on --secure-aggregation and, unless set, --local-epochs 1, --l2 0, --rounds 30, --learning-rate 1)")
	fl.Float64Var(&f.dpRate, "dp-sampling-rate", 0.3, "under --dp-noise distributed: the chance each row takes part in a round's step")
	fl.BoolVar(&f.secAgg, "secure-aggregation", false, "aggregate securely: the sites mask their updates so the coordinator learns only their sum (SecAgg; a third of the sites may drop out; see docs/privacy.md)")
	fl.StringVar(&f.query, "query", "", "run this analytics query (YAML, docs/queries.md; dataset may be left out) across the sites instead of training; with --output json the last line is the result object")
	return cmd
}

// demoData finds the site files and test.csv in dir, or extracts the
// embedded dataset into the state directory.
func demoData(dir, state string) (sites []sim.SiteSpec, test string, err error) {
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
		sites = append(sites, sim.SiteSpec{Name: m[1] + "/" + m[2], Dataset: demoDataset, Path: filepath.Join(dir, name)})
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

func baseNames(sites []sim.SiteSpec) []string {
	var out []string
	for _, s := range sites {
		out = append(out, filepath.Base(s.Path))
	}
	return out
}

func runDemo(ctx context.Context, g *globals, f *demoFlags) (err error) {
	start := time.Now()
	if err := checkOutput(f.output); err != nil {
		return err
	}
	if f.serve && f.query != "" {
		return errors.New("flag --query: not with --serve; run it against the served federation with federa query run")
	}
	var querySpec []byte
	if f.query != "" {
		var err error
		if querySpec, err = demoQuerySpec(f.query, demoDataset); err != nil {
			return err
		}
	}
	if f.http != "" && !f.serve {
		return errors.New("flag --http: only with --serve (the one-shot demo stops when its job ends)")
	}
	if f.http != "" {
		if err := config.CheckHostPort(f.http, "127.0.0.1:8080"); err != nil {
			return fmt.Errorf("flag --http: %w", err)
		}
	}
	if f.serve && f.output != "text" {
		return errors.New("flag --output: --serve prints commands to try, as text; scripts read DIR/coordinator.addr")
	}
	switch {
	case f.dpNoise != spec.NoiseLocal && f.dpNoise != spec.NoiseDistributed:
		return fmt.Errorf("flag --dp-noise: %q is not valid; want local or distributed", f.dpNoise)
	case f.dpNoise == spec.NoiseDistributed && f.dpEpsilon == 0:
		return errors.New("flag --dp-noise distributed: set --dp-epsilon too (the budget the noise is calibrated for)")
	case f.dpNoise != spec.NoiseDistributed && f.changed != nil && f.changed("dp-sampling-rate"):
		return errors.New("flag --dp-sampling-rate: only --dp-noise distributed uses it")
	}
	if f.svidTTL < 2*time.Second {
		return fmt.Errorf("flag --svid-ttl: %s is too short; want at least 2s (SVIDs are re-issued at half their TTL)", f.svidTTL)
	}
	var features []string
	if f.features != "" {
		for _, c := range strings.Split(f.features, ",") {
			features = append(features, strings.TrimSpace(c))
		}
	}
	state, temp := f.stateDir, f.stateDir == ""
	if temp {
		if state, err = os.MkdirTemp("", "federa-demo-"); err != nil {
			return fmt.Errorf("create the demo's temporary state directory: %w", err)
		}
		// Registered first, so it runs after the federation and the log
		// file below are closed.
		defer func() { err = dropTempState(state, err) }()
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
		Model: spec.Model{Type: f.model, Hidden: f.hidden, Activation: f.activation}, Rounds: f.rounds, LocalEpochs: f.epochs, BatchSize: f.batch,
		LearningRate: f.lr, L2: f.l2, MinSites: minSites, RoundTimeout: spec.Duration(f.timeout),
		Sites: names, Seed: f.seed, Aggregator: spec.Aggregator{Name: f.strategy},
		Optimizer: spec.Optimizer{Name: f.optimizer},
	}
	if f.dpEpsilon != 0 {
		j.Privacy.DP = &spec.DP{Epsilon: f.dpEpsilon, Delta: f.dpDelta, ClipNorm: f.dpClip}
	}
	j.Privacy.SecureAggregation.On = f.secAgg
	if f.dpNoise == spec.NoiseDistributed {
		j.Privacy.DP.Noise, j.Privacy.DP.SamplingRate = spec.NoiseDistributed, f.dpRate
		j.Privacy.SecureAggregation.On = true
		// One DP-SGD step a round: more rounds, a larger step, and
		// nothing the secure sum cannot carry linearly.
		for flag, set := range map[string]func(){
			"local-epochs": func() { j.LocalEpochs = 1 }, "l2": func() { j.L2 = 0 },
			"rounds": func() { j.Rounds = 30 }, "learning-rate": func() { j.LearningRate = 1 },
		} {
			if f.changed == nil || !f.changed(flag) {
				set()
			}
		}
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
	if temp {
		say("federa demo: %d sites, dataset %s, state in %s (temporary: removed at the end unless the run fails; --state DIR keeps it)", len(sites), demoDataset, state)
	} else {
		say("federa demo: %d sites, dataset %s, state in %s", len(sites), demoDataset, state)
	}
	if f.policyDir != "" {
		if f.policyDir, err = filepath.Abs(f.policyDir); err != nil {
			return err
		}
		if st, err := os.Stat(f.policyDir); err != nil || !st.IsDir() {
			return fmt.Errorf("flag --policy: %s is not a directory of Rego files", f.policyDir)
		}
	}
	opts := sim.Options{Dir: state, Sites: sites, Log: log, PolicyDir: f.policyDir, Listen: f.listen, SVIDTTL: f.svidTTL}
	if f.serve {
		opts.Users = sim.AllUsers(sites)
		// A previous run's address is stale: whoever waits for the file
		// must get this run's.
		for _, stale := range []string{"coordinator.addr", "http.addr"} {
			if err := os.Remove(filepath.Join(state, stale)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("flag --state: %w", err)
			}
		}
		if f.http != "" {
			addr := f.http
			opts.Coordinator = func(c *coordinator.Config) {
				c.HTTP = httpserve.Config{Listen: addr, Dev: true}
			}
		}
	}
	net, err := sim.Start(opts)
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
	if f.serve {
		return serveDemo(ctx, out, net, state, temp, opts.Users, names[0], j, f.svidTTL)
	}
	if querySpec != nil {
		return demoQuery(ctx, net, querySpec, f.query, out, f.output, say)
	}

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
	say("submitted job %s as spiffe://%s/user/alice: %s, %d rounds, min_sites %d", job.GetId(), sim.DefaultTrustDomain, f.model, f.rounds, minSites)
	final, err := watchJob(ctx, client, job.GetId(), progressWriter(out, text), "text")
	if err != nil {
		return err
	}
	fedSecs := time.Since(fedStart).Seconds()
	if text && len(final.GetRounds()) > 0 {
		fmt.Fprintln(out)
		printRounds(out, final.GetRounds())
	}
	res := &demoResult{
		JobID: final.GetId(), Status: final.GetStatus().Name(), Message: final.GetMessage(),
		RoundsCompleted: int(final.GetRoundsCompleted()), Sites: names, StateDir: state, StateRemoved: temp,
		Features: final.GetFeatures(), Classes: final.GetClasses(),
	}
	for _, r := range final.GetRounds() {
		dr := demoRound{Round: int(r.GetRound()), Sites: r.GetParticipants(), TrainLoss: jsonFloat(r.GetTrainLoss())}
		dr.EvalAccuracy = jsonFloat(r.GetEvalAccuracy())
		if r.Regression() {
			dr.EvalRMSE, dr.EvalR2 = jsonFloat(r.GetEvalRmse()), jsonFloat(r.GetEvalR2())
		}
		res.Rounds = append(res.Rounds, dr)
	}
	if final.GetSpec().GetPrivacy().GetDp() != nil {
		eps := epsilonSpent(final)
		res.EpsilonSpent = &eps
	}
	res.SecureAggregation = final.GetSpec().GetPrivacy().GetSecureAggregation()
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
	res.TestAccuracy, res.TestRows, res.TestUnseen = ev.Accuracy, ev.Rows, ev.Unseen
	regression := ev.Kind == models.Regressor.String()
	if regression {
		res.TestRMSE, res.TestR2 = jsonFloat(ev.RMSE), jsonFloat(ev.R2)
	}
	cStart := time.Now()
	central, err := centralBaseline(ctx, sites, testPath, j, final.GetFeatures())
	if err != nil {
		return fmt.Errorf("centralized baseline: %w", err)
	}
	res.CentralizedAccuracy = central.accuracy
	if regression {
		res.CentralizedRMSE, res.CentralizedR2 = jsonFloat(central.rmse), jsonFloat(central.r2)
	}
	res.Timings = &demoTimings{FederatedSeconds: fedSecs, CentralizedSeconds: time.Since(cStart).Seconds()}
	// End by checking the audit trail of all this, as an auditor would.
	res.AuditKey = net.Coordinator().AuditKey()
	rep, err := auditlog.Verify(filepath.Join(net.CoordinatorDir(), coordinator.AuditDir), res.AuditKey)
	if err != nil {
		return fmt.Errorf("the demo's own audit log does not verify: %w", err)
	}
	res.AuditEntries, res.AuditVerified = rep.Size, true
	res.ElapsedSeconds = time.Since(start).Seconds()
	if text && regression {
		fmt.Fprintf(out, "\nRMSE and R² on %s (%d rows no site had):\n", filepath.Base(testPath), ev.Rows)
		fmt.Fprintf(out, "  federated model (exported file)   RMSE %.4g   R² %s\n", ev.RMSE, federav1.FormatAccuracy(ev.R2))
		fmt.Fprintf(out, "  same model trained centrally      RMSE %.4g   R² %s   (union of the site files: what federa avoids)\n\n", central.rmse, federav1.FormatAccuracy(central.r2))
	} else if text {
		fmt.Fprintf(out, "\naccuracy on %s (%d rows no site had):\n", filepath.Base(testPath), ev.Rows)
		fmt.Fprintf(out, "  federated model (exported file)   %.4f\n", res.TestAccuracy)
		if ev.Unseen > 0 {
			fmt.Fprintf(out, "  (%d of the rows have a label no site had; they count as wrong)\n", ev.Unseen)
		}
		fmt.Fprintf(out, "  same model trained centrally      %.4f   (union of the site files: what federa avoids)\n\n", central.accuracy)
	}
	if text {
		printSites(out, final)
		var raw, left int64
		for _, b := range res.Bytes {
			raw += b.RawBytes
			left += b.LeftBytes
		}
		fmt.Fprintf(out, "\nNo row left any site: %s of raw data stayed put; %s of aggregates left (%s of what a central copy would have moved).\n",
			humanBytes(raw), humanBytes(left), share(left, raw))
		if res.SecureAggregation {
			fmt.Fprintf(out, "Secure aggregation: the coordinator saw only each round's sum of the updates%s.\n", secAggSummary(final.GetRounds()))
		}
		if temp {
			fmt.Fprintf(out, "Audit log verified: %d signed, tamper-evident entries.\n", res.AuditEntries)
			fmt.Fprintf(out, "job %s succeeded in %.1fs; its temporary state %s is removed (--state DIR keeps the model, identities and audit log)\n", res.JobID, res.ElapsedSeconds, state)
			return nil
		}
		fmt.Fprintf(out, "Audit log verified: %d signed, tamper-evident entries (federa audit verify --state %s).\n", res.AuditEntries, state)
		fmt.Fprintf(out, "job %s succeeded in %.1fs; state kept in %s\n", res.JobID, res.ElapsedSeconds, state)
		return nil
	}
	return json.NewEncoder(out).Encode(res)
}

// dropTempState removes the demo's temporary state directory after a run
// that succeeded (runErr nil); after a failed one it keeps it for a look
// and says where.
func dropTempState(state string, runErr error) error {
	if runErr != nil {
		if log := filepath.Join(state, "demo.log"); fileExists(log) {
			return fmt.Errorf("%w (state kept for a look in %s; daemon logs in %s)", runErr, state, log)
		}
		return fmt.Errorf("%w (state kept for a look in %s)", runErr, state)
	}
	if err := os.RemoveAll(state); err != nil {
		return fmt.Errorf("remove the demo's temporary state: %w", err)
	}
	return nil
}

// serveDemo writes what a user of the running federation needs into state
// (the coordinator's address, the job spec; the identities are already
// there), prints the commands to try and waits for ctx to end. site is the
// one the printed site-admin command is about.
func serveDemo(ctx context.Context, out io.Writer, net *sim.Net, state string, temp bool, users []string, site string, j *spec.Job, ttl time.Duration) error {
	addrFile, jobFile := filepath.Join(state, "coordinator.addr"), filepath.Join(state, "job.yaml")
	httpAddr := net.Coordinator().HTTPAddr()
	jobYAML, err := yaml.Marshal(j)
	if err != nil {
		return fmt.Errorf("write %s: %w", jobFile, err)
	}
	jobYAML = append([]byte("# The job `federa demo` runs; every field is in docs/jobs.md.\n"), jobYAML...)
	if err := fsutil.WriteFile(jobFile, jobYAML, 0o644); err != nil {
		return err
	}
	id := func(user string) string { return shellQuote(net.IdentityDir(user)) }
	fmt.Fprintf(out, "\nServing until interrupted (Ctrl-C). Coordinator address in %s; daemon logs in %s.\n",
		addrFile, filepath.Join(state, "demo.log"))
	if httpAddr != "" {
		fmt.Fprintf(out, "Jobs page: http://%s/  Prometheus: http://%s/metrics  (dev mode: loopback readers, no token; address in %s)\n",
			httpAddr, httpAddr, filepath.Join(state, "http.addr"))
	}
	fmt.Fprintf(out, "Daemon SVIDs live %s and are re-issued every %s; user SVIDs live %s.\n\n", ttl, ttl/2, attest.DefaultSVIDTTL)
	fmt.Fprintf(out, "Users (identities in %s):\n", filepath.Join(state, "identities", "<user>"))
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, u := range users {
		roles := strings.Join(net.Roles(u), ", ")
		if roles == "" {
			roles = "(no role: has a valid SVID, may do nothing)"
		}
		fmt.Fprintf(tw, "  %s\t%s\n", u, roles)
	}
	tw.Flush()
	fmt.Fprintf(out, "\nTry, in another terminal:\n\n")
	fmt.Fprintf(out, "  export FEDERA_COORDINATOR=$(cat %s) FEDERA_IDENTITY=%s\n", shellQuote(addrFile), id("alice"))
	fmt.Fprintf(out, "  federa job submit %s --watch\n", shellQuote(jobFile))
	fmt.Fprintf(out, "  federa job list\n")
	fmt.Fprintf(out, "  federa job watch JOB_ID                # the ID submit printed\n")
	fmt.Fprintf(out, "  federa audit verify --coordinator $FEDERA_COORDINATOR --identity %s\n", id("auditor"))
	admin, _ := sim.SiteAdmin(site)
	fmt.Fprintf(out, "  federa site pending --site %s --identity %s   # a site-admin, through the coordinator\n", site, id(admin))
	fmt.Fprintf(out, "  federa job submit %s --identity %s   # refused: mallory has no role\n\n", shellQuote(jobFile), id("mallory"))
	if temp {
		fmt.Fprintf(out, "%s is temporary: it is removed when this stops. Serve with --state DIR to keep it and resume.\n", state)
	} else {
		fmt.Fprintf(out, "Run the same command again to resume with the same CA, jobs and audit log.\n")
	}
	if httpAddr != "" {
		if err := fsutil.WriteFile(filepath.Join(state, "http.addr"), []byte(httpAddr+"\n"), 0o644); err != nil {
			return err
		}
	}
	// Last: whoever waits for this file finds everything else ready.
	if err := fsutil.WriteFile(addrFile, []byte(net.Addr()+"\n"), 0o644); err != nil {
		return err
	}
	<-ctx.Done()
	fmt.Fprintf(out, "interrupted; stopping the sites and the coordinator\n")
	return nil
}

// shellQuote quotes p for a POSIX shell when it needs it, so the printed
// commands can be pasted as they are.
func shellQuote(p string) string {
	if shellSafe.MatchString(p) {
		return p
	}
	return "'" + strings.ReplaceAll(p, "'", `'\''`) + "'"
}

// progressWriter indents job events under the demo's own lines, or drops
// them in JSON mode (the last line must be the result object).
func progressWriter(w io.Writer, text bool) io.Writer {
	if !text {
		return io.Discard
	}
	return w
}

// centralFigures are the centrally trained model's test figures:
// accuracy for a classifier, RMSE and R² for a regressor.
type centralFigures struct{ accuracy, rmse, r2 float64 }

// centralBaseline trains the same model on the union of exactly the rows
// the sites trained on — each site file split with the same seed and eval
// fraction the sites used — for rounds × local_epochs epochs with the same
// hyper-parameters, and scores it on the test file. It is what a central
// copy of the data would have bought.
func centralBaseline(ctx context.Context, sites []sim.SiteSpec, testPath string, j *spec.Job, features []string) (centralFigures, error) {
	var none centralFigures
	// The same architecture the sites trained, through the same interface.
	arch, err := j.Model.Arch()
	if err != nil {
		return none, err
	}
	regression := arch.Kind() == models.Regressor
	var parts []*dataset.Table
	classSet := map[string]bool{}
	for _, s := range sites {
		tab, err := dataset.LoadCSV(s.Path, dataset.Options{Label: j.Label, Features: features})
		if err != nil {
			return none, err
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
	if !regression {
		classes = slices.Sorted(maps.Keys(classSet))
	}
	rows := 0
	for _, p := range parts {
		rows += p.Rows()
	}
	X := mat.NewDense(rows, len(features), nil)
	var y models.Targets
	r := 0
	for _, p := range parts {
		if regression {
			v, err := p.LabelValues()
			if err != nil {
				return none, err
			}
			y.Values = append(y.Values, v...)
		} else {
			idx, err := p.ClassIndex(classes)
			if err != nil {
				return none, err
			}
			y.Classes = append(y.Classes, idx...)
		}
		for i := 0; i < p.Rows(); i++ {
			X.SetRow(r, p.X.RawRowView(i))
			r++
		}
	}
	scaler := models.ComputeMoments(X).Scaler()
	w0, err := arch.Init(len(features), len(classes))
	if err != nil {
		return none, err
	}
	res, err := arch.Train(ctx, w0, scaler.Apply(X), y, models.TrainConfig{
		Epochs: j.Rounds * j.LocalEpochs, BatchSize: j.BatchSize, LearningRate: j.LearningRate, L2: j.L2, Seed: j.Seed,
		Optimizer: j.Optimizer.Config(),
	})
	if err != nil {
		return none, err
	}
	test, err := dataset.LoadCSV(testPath, dataset.Options{Label: j.Label, Features: features})
	if err != nil {
		return none, err
	}
	if test.Rows() == 0 {
		return none, errors.New("test file has no rows")
	}
	if regression {
		ty, err := test.LabelValues()
		if err != nil {
			return none, err
		}
		sc, err := arch.Evaluate(res.Weights, scaler.Apply(test.X), models.ValueTargets(ty))
		if err != nil {
			return none, err
		}
		return centralFigures{rmse: math.Sqrt(sc.Loss), r2: models.SpreadOf(ty).R2(sc.Loss * float64(sc.Rows))}, nil
	}
	ty, _, err := test.ClassIndexOrUnseen(classes)
	if err != nil {
		return none, err
	}
	// Rows of a class no site had count as wrong, as for the federated model.
	var seen, known []int
	for i, k := range ty {
		if k >= 0 {
			seen, known = append(seen, i), append(known, k)
		}
	}
	if len(seen) == 0 {
		return none, nil
	}
	Xs := mat.NewDense(len(seen), len(features), nil)
	for r, i := range seen {
		Xs.SetRow(r, test.X.RawRowView(i))
	}
	sc, err := arch.Evaluate(res.Weights, scaler.Apply(Xs), models.ClassTargets(known))
	if err != nil {
		return none, err
	}
	return centralFigures{accuracy: float64(sc.Correct) / float64(test.Rows())}, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
