package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/federa-dev/federa/internal/config"
	"github.com/federa-dev/federa/models"
	"google.golang.org/protobuf/proto"

	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// Defaults applied to fields left out of a job spec.
const (
	DefaultRounds       = 10
	DefaultLocalEpochs  = 1
	DefaultBatchSize    = 32
	DefaultLearningRate = 0.1
	DefaultMinSites     = 1
	DefaultRoundTimeout = 2 * time.Minute
	DefaultEvalFraction = 0.2
	DefaultModel        = "logreg"
	DefaultAggregator   = "fedavg"
	DefaultOptimizer    = models.OptimizerSGD
	DefaultLabel        = "label"
)

// Job is a training job as written in YAML.
type Job struct {
	Name         string     `yaml:"name"`
	Dataset      string     `yaml:"dataset"`
	Label        string     `yaml:"label"`
	Features     []string   `yaml:"features"`
	Model        Model      `yaml:"model"`
	Rounds       int        `yaml:"rounds"`
	LocalEpochs  int        `yaml:"local_epochs"`
	BatchSize    int        `yaml:"batch_size"`
	LearningRate float64    `yaml:"learning_rate"`
	L2           float64    `yaml:"l2"`
	MinSites     int        `yaml:"min_sites"`
	RoundTimeout Duration   `yaml:"round_timeout"`
	Sites        []string   `yaml:"sites"`
	EvalFraction *float64   `yaml:"eval_fraction"`
	Seed         int64      `yaml:"seed"`
	Aggregator   Aggregator `yaml:"aggregator"`
	Optimizer    Optimizer  `yaml:"optimizer"`
	Project      string     `yaml:"project"`
	Privacy      Privacy    `yaml:"privacy"`
}

// Privacy is what the job promises about what leaves each site.
type Privacy struct {
	DP                *DP               `yaml:"dp"`
	SecureAggregation SecureAggregation `yaml:"secure_aggregation"`
	MinCount          int               `yaml:"min_count"`
}

// DP turns on record-level differential privacy: each site trains with
// DP-SGD (every row's gradient clipped to ClipNorm, Gaussian noise added
// to every step), its noise calibrated by a Rényi-DP accountant so the
// whole job spends at most (Epsilon, Delta) at that site, and charged to
// the site's lifetime budget for the dataset (docs/privacy.md).
//
// With Noise "distributed" and secure aggregation, each round is instead
// one DP-SGD step over the union of the sites' rows, sampled at
// SamplingRate: each site adds a share of the noise and only the secure
// sum, which the coordinator alone unmasks, carries all of it
// (docs/secure-aggregation.md).
type DP struct {
	Epsilon      float64 `yaml:"epsilon"`
	Delta        float64 `yaml:"delta"`
	ClipNorm     float64 `yaml:"clip_norm"`
	Noise        string  `yaml:"noise,omitempty"`
	SamplingRate float64 `yaml:"sampling_rate,omitempty"`
}

// DP noise placements (DP.Noise).
const (
	NoiseLocal       = "local"
	NoiseDistributed = "distributed"
)

// DistributedDP reports whether a wire spec asks for distributed DP noise
// (DP.Noise "distributed").
func DistributedDP(p *federav1.JobSpec) bool {
	return p.GetPrivacy().GetDp().GetNoise() == NoiseDistributed
}

// Aggregator is how the coordinator combines the sites' updates: a
// strategy registered in models, and its parameters. In YAML it is a name
// (aggregator: median) or a mapping with the name and parameters
// (aggregator: {name: trimmed-mean, beta: 0.2}). A nil parameter was not
// given; the strategy then applies its default.
type Aggregator struct {
	Name     string
	Beta     *float64 // trimmed-mean: fraction dropped from each end
	F        *int     // krum, multi-krum: Byzantine sites tolerated
	ServerLR *float64 // fedadam, fedyogi, fedadagrad: server step size
	Beta1    *float64 // fedadam, fedyogi, fedadagrad: first-moment decay
	Beta2    *float64 // fedadam, fedyogi: second-moment decay
	Tau      *float64 // fedadam, fedyogi, fedadagrad: adaptivity floor
	Mu       *float64 // fedprox: proximal coefficient
}

// aggregatorKeys are the keys of the mapping form, as docs/jobs.md lists
// them.
const aggregatorKeys = "name, beta, f, server_lr, beta1, beta2, tau, mu"

// UnmarshalYAML accepts the name form and the mapping form. Problems are
// returned as a *yaml.TypeError so the decoder goes on and reports the
// rest of the file too.
func (a *Aggregator) UnmarshalYAML(n *yaml.Node) error {
	var out Aggregator
	name, err := decodeNamed(n, namedForm{
		field: "aggregator", keys: aggregatorKeys,
		scalar:  "a strategy name (e.g. median)",
		example: "{name: trimmed-mean, beta: 0.2}",
	}, func(key string, v *yaml.Node, bad func(int, string, ...any) error) error {
		switch key {
		case "beta", "server_lr", "beta1", "beta2", "tau", "mu":
			dst := new(float64)
			*out.floatParam(key) = dst
			return v.Decode(dst)
		case "f":
			// The decoder would truncate 1.5 to 1; a count is whole.
			if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int" {
				return bad(v.Line, "f: %q is not a whole number; want the number of Byzantine sites to tolerate, e.g. 1", v.Value)
			}
			out.F = new(int)
			return v.Decode(out.F)
		}
		return errUnknownKey
	})
	if err != nil {
		return err
	}
	out.Name = name
	*a = out
	return nil
}

// floatParam is the field behind a float parameter's YAML key.
func (a *Aggregator) floatParam(key string) **float64 {
	return map[string]**float64{
		"beta": &a.Beta, "server_lr": &a.ServerLR, "beta1": &a.Beta1,
		"beta2": &a.Beta2, "tau": &a.Tau, "mu": &a.Mu,
	}[key]
}

// MarshalYAML writes the name form when no parameter is set, so specs
// without parameters read as they always have.
func (a Aggregator) MarshalYAML() (any, error) {
	if a == (Aggregator{Name: a.Name}) {
		return a.Name, nil
	}
	return struct {
		Name     string   `yaml:"name"`
		Beta     *float64 `yaml:"beta,omitempty"`
		F        *int     `yaml:"f,omitempty"`
		ServerLR *float64 `yaml:"server_lr,omitempty"`
		Beta1    *float64 `yaml:"beta1,omitempty"`
		Beta2    *float64 `yaml:"beta2,omitempty"`
		Tau      *float64 `yaml:"tau,omitempty"`
		Mu       *float64 `yaml:"mu,omitempty"`
	}{a.Name, a.Beta, a.F, a.ServerLR, a.Beta1, a.Beta2, a.Tau, a.Mu}, nil
}

// Params is the models form of the parameters, for models.NewAggregator.
// f is clamped into int32 so an absurd value is refused as out of range
// rather than wrapped.
func (a Aggregator) Params() models.AggregatorParams {
	p := models.AggregatorParams{
		Beta: clonePtr(a.Beta), ServerLR: clonePtr(a.ServerLR), Beta1: clonePtr(a.Beta1),
		Beta2: clonePtr(a.Beta2), Tau: clonePtr(a.Tau), Mu: clonePtr(a.Mu),
	}
	if a.F != nil {
		p.F = new(int32(min(max(*a.F, math.MinInt32), MaxSites+1)))
	}
	return p
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	return new(*p)
}

// validate checks the strategy and its parameters, and, when the job
// lists its sites, that a strategy needing a least number of updates a
// round (krum: 2f+3) can have them.
func (a Aggregator) validate(j *Job, bad func(field, format string, args ...any)) {
	names := models.AggregatorNames()
	if !slices.Contains(names, a.Name) {
		bad("aggregator", "%q is not supported; valid: %s", a.Name, strings.Join(names, ", "))
		return
	}
	agg, err := models.NewAggregator(a.Name, a.Params())
	if err != nil {
		if pes := paramErrors(err); len(pes) > 0 {
			for _, pe := range pes {
				bad("aggregator."+pe.Param, "%s", pe.Reason)
			}
		} else {
			bad("aggregator", "%v", err)
		}
		return
	}
	if a.F != nil && *a.F > MaxSites {
		bad("aggregator.f", "%d is out of range; a job has at most %d sites", *a.F, MaxSites)
		return
	}
	m, ok := agg.(models.MinUpdater)
	if !ok || len(j.Sites) == 0 {
		// Without a site list the number of updates is known only in the
		// round; the aggregator refuses too few there and the round fails.
		return
	}
	need, why := m.MinUpdates()
	switch {
	case len(j.Sites) < need:
		bad("aggregator", "%s needs at least %d updates a round (%s); sites lists only %d", a.Name, need, why, len(j.Sites))
	case j.MinSites < need:
		bad("min_sites", "%d is less than the %d updates aggregator %s needs a round (%s); a round closing with fewer would fail, so set min_sites: %d or more", j.MinSites, need, a.Name, why, need)
	}
}

// paramErrors collects the *models.ParamError values in err's tree.
func paramErrors(err error) []*models.ParamError {
	var out []*models.ParamError
	var walk func(error)
	walk = func(e error) {
		if pe, ok := e.(*models.ParamError); ok {
			out = append(out, pe)
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

// Optimizer is the sites' local optimizer and its parameters. In YAML it is
// a name (optimizer: adam) or a mapping (optimizer: {name: sgd, momentum:
// 0.9}). A nil parameter was not given; the optimizer's default applies.
type Optimizer struct {
	Name     string
	Momentum *float64 // sgd: heavy-ball momentum
	Beta1    *float64 // adam: first-moment decay
	Beta2    *float64 // adam: second-moment decay
	Eps      *float64 // adam: denominator floor
}

// optimizerKeys are the keys of the mapping form, as docs/jobs.md lists
// them.
const optimizerKeys = "name, momentum, beta1, beta2, eps"

// UnmarshalYAML accepts the name form and the mapping form, reporting
// problems as Aggregator.UnmarshalYAML does.
func (o *Optimizer) UnmarshalYAML(n *yaml.Node) error {
	var out Optimizer
	name, err := decodeNamed(n, namedForm{
		field: "optimizer", keys: optimizerKeys,
		scalar:  "an optimizer name (sgd or adam)",
		example: "{name: sgd, momentum: 0.9}",
	}, func(key string, v *yaml.Node, _ func(int, string, ...any) error) error {
		switch key {
		case "momentum", "beta1", "beta2", "eps":
			dst := new(float64)
			*out.param(key) = dst
			return v.Decode(dst)
		}
		return errUnknownKey
	})
	if err != nil {
		return err
	}
	out.Name = name
	*o = out
	return nil
}

// param is the field behind a parameter's YAML key.
func (o *Optimizer) param(key string) **float64 {
	return map[string]**float64{"momentum": &o.Momentum, "beta1": &o.Beta1, "beta2": &o.Beta2, "eps": &o.Eps}[key]
}

// MarshalYAML writes the name form when no parameter is set.
func (o Optimizer) MarshalYAML() (any, error) {
	if o == (Optimizer{Name: o.Name}) {
		return o.Name, nil
	}
	return struct {
		Name     string   `yaml:"name"`
		Momentum *float64 `yaml:"momentum,omitempty"`
		Beta1    *float64 `yaml:"beta1,omitempty"`
		Beta2    *float64 `yaml:"beta2,omitempty"`
		Eps      *float64 `yaml:"eps,omitempty"`
	}{o.Name, o.Momentum, o.Beta1, o.Beta2, o.Eps}, nil
}

// Config is the models form with the optimizer's defaults applied to
// parameters left out. A parameter the optimizer does not take is passed
// through, so models refuses it.
func (o Optimizer) Config() models.OptimizerConfig {
	c := models.OptimizerConfig{Name: o.Name}
	if c.Name == "" {
		c.Name = DefaultOptimizer
	}
	if c.Name == models.OptimizerAdam {
		c.Beta1, c.Beta2, c.Eps = models.DefaultAdamBeta1, models.DefaultAdamBeta2, models.DefaultAdamEps
	}
	for _, p := range []struct {
		dst *float64
		src *float64
	}{{&c.Momentum, o.Momentum}, {&c.Beta1, o.Beta1}, {&c.Beta2, o.Beta2}, {&c.Eps, o.Eps}} {
		if p.src != nil {
			*p.dst = *p.src
		}
	}
	return c
}

// OptimizerOf is the local optimizer of a wire spec, defaults applied.
func OptimizerOf(p *federav1.JobSpec) models.OptimizerConfig {
	return FromProto(p).Optimizer.Config()
}

// validate checks the name and each parameter given. A parameter the
// optimizer does not take is refused even when written as 0, which the
// models form could not tell from absent.
//
// An empty name is sgd, and is left empty rather than defaulted so that
// specs from before optimizers existed keep their exact wire form.
func (o Optimizer) validate(bad func(field, format string, args ...any)) {
	name := o.Config().Name
	names := models.OptimizerNames()
	if !slices.Contains(names, name) {
		bad("optimizer", "%q is not supported; valid: %s", name, strings.Join(names, ", "))
		return
	}
	takes := map[string][]string{models.OptimizerSGD: {"momentum"}, models.OptimizerAdam: {"beta1", "beta2", "eps"}}[name]
	refused := false
	for _, k := range []string{"momentum", "beta1", "beta2", "eps"} {
		if *o.param(k) != nil && !slices.Contains(takes, k) {
			bad("optimizer."+k, "%s does not take %s; it takes %s", name, k, strings.Join(takes, ", "))
			refused = true
		}
	}
	if refused {
		return
	}
	for _, pe := range paramErrors(o.Config().Validate()) {
		bad("optimizer."+pe.Param, "%s", pe.Reason)
	}
}

// Model names the model architecture and its parameters:
// {type: logreg} or {type: mlp, hidden: [64, 32], activation: relu}.
type Model struct {
	Type       string `yaml:"type"`
	Hidden     []int  `yaml:"hidden,omitempty"`
	Activation string `yaml:"activation,omitempty"`
}

// Arch is the model's architecture, or why it is not a valid one.
func (m Model) Arch() (models.Arch, error) {
	return models.NewArch(m.Type, models.ArchParams{Hidden: m.Hidden, Activation: m.Activation})
}

// ArchOf is the architecture of a wire spec's model.
func ArchOf(p *federav1.JobSpec) (models.Arch, error) {
	return FromProto(p).Model.Arch()
}

// Duration is a time.Duration written as "90s" or "2m" in YAML, shared
// with the daemons' config files.
type Duration = config.Duration

// Parse reads a job spec from YAML. Unknown fields, wrong types and
// invalid values are errors that name the source, the field and what
// would be valid. Defaults are applied before validation.
func Parse(source string, data []byte) (*Job, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("job spec %s: file is empty; see docs/jobs.md for the fields", source)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var j Job
	if err := dec.Decode(&j); err != nil {
		if errors.Is(err, io.EOF) {
			// Only comments: the decoder sees no document at all.
			return nil, fmt.Errorf("job spec %s: file is empty; see docs/jobs.md for the fields", source)
		}
		return nil, fmt.Errorf("job spec %s: %s", source, config.NameFields(data, cleanYAMLError(err)))
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("job spec %s: more than one YAML document; put one job in a file", source)
	}
	errs := explicitZeros(data)
	j.ApplyDefaults()
	if err := j.Validate(); err != nil {
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			errs = append(errs, joined.Unwrap()...)
		} else {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("job spec %s: %w", source, err)
	}
	return &j, nil
}

// defaultedFields are the fields a zero would silently turn into their
// default, with what the default is.
var defaultedFields = map[string]string{
	"rounds":        fmt.Sprint(DefaultRounds),
	"local_epochs":  fmt.Sprint(DefaultLocalEpochs),
	"batch_size":    fmt.Sprint(DefaultBatchSize),
	"learning_rate": fmt.Sprint(DefaultLearningRate),
	"min_sites":     fmt.Sprint(DefaultMinSites),
	"round_timeout": DefaultRoundTimeout.String(),
}

// explicitZeros finds fields written as 0: a user who writes `rounds: 0`
// means something, and it is not the default of 10. Leaving a field out
// still gets its default.
func explicitZeros(data []byte) []error {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	var errs []error
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		def, ok := defaultedFields[k.Value]
		if !ok || v.Kind != yaml.ScalarNode {
			continue
		}
		zero := false
		if f, err := strconv.ParseFloat(v.Value, 64); err == nil {
			zero = f == 0
		} else if d, err := time.ParseDuration(v.Value); err == nil {
			zero = d == 0
		}
		if zero {
			errs = append(errs, fmt.Errorf("line %d: field %s: %s is not allowed; leave the field out for the default (%s)", v.Line, k.Value, v.Value, def))
		}
	}
	return errs
}

// ParseFile reads and parses a job spec file.
func ParseFile(path string) (*Job, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read job spec: %w", err)
	}
	return Parse(path, data)
}

func cleanYAMLError(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "yaml: unmarshal errors:\n")
	s = strings.ReplaceAll(s, "in type spec.Job", "(see docs/jobs.md for valid fields)")
	s = strings.ReplaceAll(s, "in type spec.Model", "in model (valid: type)")
	s = strings.ReplaceAll(s, "in type spec.Privacy", "in privacy (valid: dp, secure_aggregation, min_count)")
	s = strings.ReplaceAll(s, "in type spec.DP", "in privacy.dp (valid: epsilon, delta, clip_norm, noise, sampling_rate)")
	s = strings.ReplaceAll(s, "into spec.Job", "into a job spec (want a mapping of fields, see docs/jobs.md)")
	return strings.TrimSpace(s)
}

// ApplyDefaults fills in every field left at its zero value.
func (j *Job) ApplyDefaults() {
	if j.Label == "" {
		j.Label = DefaultLabel
	}
	if j.Model.Type == "" {
		j.Model.Type = DefaultModel
	}
	if j.Rounds == 0 {
		j.Rounds = DefaultRounds
	}
	if j.LocalEpochs == 0 {
		j.LocalEpochs = DefaultLocalEpochs
	}
	if j.BatchSize == 0 {
		j.BatchSize = DefaultBatchSize
	}
	if j.LearningRate == 0 {
		j.LearningRate = DefaultLearningRate
	}
	if j.MinSites == 0 {
		j.MinSites = DefaultMinSites
	}
	if j.RoundTimeout == 0 {
		j.RoundTimeout = Duration(DefaultRoundTimeout)
	}
	if j.EvalFraction == nil {
		f := DefaultEvalFraction
		if j.Privacy.DP != nil {
			// Per-round evaluation releases figures about the held-out
			// rows without noise: a DP job holds none out.
			f = 0
		}
		j.EvalFraction = &f
	}
	if j.Aggregator.Name == "" {
		j.Aggregator.Name = DefaultAggregator
	}
}

// Validate checks every field and reports all problems at once.
func (j *Job) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("field %s: %s", field, fmt.Sprintf(format, args...)))
	}
	if j.Name == "" {
		bad("name", "required; a short human name for the job")
	} else if err := checkText(j.Name, MaxNameBytes); err != nil {
		bad("name", "%v", err)
	}
	if j.Dataset == "" {
		bad("dataset", "required; the name each site knows the dataset by")
	} else if err := CheckColumnName(j.Dataset); err != nil {
		bad("dataset", "%v", err)
	}
	if j.Project != "" {
		if err := CheckColumnName(j.Project); err != nil {
			bad("project", "%v", err)
		}
	}
	if j.Label == "" {
		bad("label", "required; the label column")
	} else if err := CheckColumnName(j.Label); err != nil {
		bad("label", "%v", err)
	}
	if len(j.Features) > MaxFeatures {
		bad("features", "%d columns listed; at most %d (leave features out to use every column of the site's file)", len(j.Features), MaxFeatures)
	}
	seen := map[string]bool{}
	for i, f := range j.Features {
		if i >= MaxFeatures {
			break
		}
		switch err := CheckColumnName(f); {
		case err != nil:
			bad(fmt.Sprintf("features[%d]", i), "%v", err)
		case seen[f]:
			bad(fmt.Sprintf("features[%d]", i), "column %q listed twice", f)
		case f == j.Label:
			bad(fmt.Sprintf("features[%d]", i), "%q is the label; a feature cannot be the label", f)
		}
		seen[f] = true
	}
	if !slices.Contains(models.ArchNames(), j.Model.Type) {
		bad("model.type", "%q is not supported; valid: %s", j.Model.Type, strings.Join(models.ArchNames(), ", "))
	} else if _, err := j.Model.Arch(); err != nil {
		bad("model", "%v", err)
	}
	if j.Rounds <= 0 || j.Rounds > 10000 {
		bad("rounds", "%d is out of range; want 1..10000", j.Rounds)
	}
	if j.LocalEpochs <= 0 || j.LocalEpochs > 1000 {
		bad("local_epochs", "%d is out of range; want 1..1000", j.LocalEpochs)
	}
	if j.BatchSize <= 0 || j.BatchSize > 1<<20 {
		bad("batch_size", "%d is out of range; want 1..1048576", j.BatchSize)
	}
	if !(j.LearningRate > 0) || math.IsInf(j.LearningRate, 0) || j.LearningRate > 100 {
		bad("learning_rate", "%v is out of range; want a number in (0, 100]", j.LearningRate)
	}
	if j.L2 < 0 || math.IsNaN(j.L2) || math.IsInf(j.L2, 0) {
		bad("l2", "%v is out of range; want a number ≥ 0", j.L2)
	}
	// The wire form is int32; a larger value would arrive as another number.
	if j.MinSites <= 0 || j.MinSites > 10000 {
		bad("min_sites", "%d is out of range; want 1..10000", j.MinSites)
	}
	if len(j.Sites) > 0 && j.MinSites > len(j.Sites) {
		bad("min_sites", "%d is more than the %d sites listed in sites", j.MinSites, len(j.Sites))
	}
	if time.Duration(j.RoundTimeout) < time.Second {
		bad("round_timeout", "%s is too short; want at least 1s (e.g. 2m)", time.Duration(j.RoundTimeout))
	}
	if len(j.Sites) > MaxSites {
		bad("sites", "%d sites listed; at most %d", len(j.Sites), MaxSites)
	}
	siteSeen := map[string]bool{}
	for i, s := range j.Sites {
		if i >= MaxSites {
			break
		}
		if !validSite(s) {
			bad(fmt.Sprintf("sites[%d]", i), "%q is not a site name; want <jurisdiction>/<name>, e.g. eu/paris", s)
		}
		if siteSeen[s] {
			bad(fmt.Sprintf("sites[%d]", i), "site %q listed twice", s)
		}
		siteSeen[s] = true
	}
	if j.EvalFraction != nil {
		if f := *j.EvalFraction; !(f >= 0 && f < 1) {
			bad("eval_fraction", "%v is out of range; want 0 ≤ eval_fraction < 1", f)
		}
	}
	j.Aggregator.validate(j, bad)
	j.Optimizer.validate(bad)
	if dp := j.Privacy.DP; dp != nil {
		if j.EvalFraction != nil && *j.EvalFraction > 0 {
			bad("eval_fraction", "%v with privacy.dp: per-round evaluation would release figures about the held-out rows without noise; leave eval_fraction out (a DP job holds no rows out) and score the model on a test file (federa model eval)", *j.EvalFraction)
		}
		if !(dp.Epsilon > 0 && dp.Epsilon <= 100) {
			bad("privacy.dp.epsilon", "%v is out of range; want 0 < epsilon ≤ 100", dp.Epsilon)
		}
		if !(dp.Delta > 0 && dp.Delta < 0.01) {
			bad("privacy.dp.delta", "%v is out of range; want 0 < delta < 0.01 (e.g. 1e-5)", dp.Delta)
		}
		if !(dp.ClipNorm > 0) || math.IsInf(dp.ClipNorm, 0) {
			bad("privacy.dp.clip_norm", "%v is out of range; want a number > 0 (e.g. 1.0)", dp.ClipNorm)
		}
		dp.validateNoise(j, bad)
	}
	j.Privacy.SecureAggregation.validate(j, bad)
	if j.Privacy.MinCount < 0 || j.Privacy.MinCount > 1_000_000 {
		bad("privacy.min_count", "%d is out of range; want 0..1000000", j.Privacy.MinCount)
	}
	return errors.Join(errs...)
}

// Bounds on what a job spec may carry. Every name in a spec reaches the
// audit log and every site; these keep one spec from filling either.
const (
	// MaxNameBytes bounds the job's name.
	MaxNameBytes = 200
	// MaxColumnNameBytes bounds a column, dataset or project name.
	MaxColumnNameBytes = 256
	// MaxFeatures bounds the features a spec may list.
	MaxFeatures = 10000
	// MaxSites bounds the sites a spec may list.
	MaxSites = 10000
)

// CheckColumnName says why name cannot name a column (or a dataset or
// project): a site matches names exactly as its file's header has them
// (trimmed), and its policy classifies the name as written, so a name
// that differs from every header name only in whitespace, invisible or
// control characters is refused here rather than guessed at.
func CheckColumnName(name string) error {
	if strings.TrimSpace(name) == "" {
		return errors.New("empty column name")
	}
	if err := checkText(name, MaxColumnNameBytes); err != nil {
		return err
	}
	if strings.TrimSpace(name) != name {
		return fmt.Errorf("%q has leading or trailing whitespace; write the name exactly as the site's header has it", name)
	}
	return nil
}

// checkText accepts one line of printable UTF-8 text of at most limit
// bytes.
func checkText(s string, limit int) error {
	if len(s) > limit {
		return fmt.Errorf("%d bytes; at most %d", len(s), limit)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%q is not valid UTF-8", s)
	}
	for _, r := range s {
		if r != ' ' && (unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.IsSpace(r) && r != ' ') {
			return fmt.Errorf("%q contains the invisible or control character %U; names are one line of visible text", s, r)
		}
	}
	return nil
}

// CheckReason accepts a human's reason (to cancel, approve, reject) of at
// most federav1.MaxReasonBytes of UTF-8 text: it is recorded in the audit
// log and at the site. Line breaks are allowed; other control characters
// are not.
func CheckReason(s string) error {
	if len(s) > federav1.MaxReasonBytes {
		return fmt.Errorf("%d bytes; at most %d", len(s), federav1.MaxReasonBytes)
	}
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return fmt.Errorf("contains the control character %U", r)
		}
	}
	return nil
}

func validSite(s string) bool {
	j, n, ok := strings.Cut(s, "/")
	// Same rule as attest.ValidateSiteName: no part starts with a dash,
	// or the spec could name a site that can never connect.
	if !ok || j == "" || n == "" || strings.Contains(n, "/") || j[0] == '-' || n[0] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '/') {
			return false
		}
	}
	return true
}

// Proto is the wire form of the job.
func (j *Job) Proto() *federav1.JobSpec {
	ef := DefaultEvalFraction
	if j.Privacy.DP != nil {
		ef = 0
	}
	if j.EvalFraction != nil {
		ef = *j.EvalFraction
	}
	return &federav1.JobSpec{
		Name:           j.Name,
		Dataset:        j.Dataset,
		Label:          j.Label,
		Features:       append([]string(nil), j.Features...),
		Model:          modelProto(j.Model),
		Rounds:         int32(j.Rounds),
		LocalEpochs:    int32(j.LocalEpochs),
		BatchSize:      int32(j.BatchSize),
		LearningRate:   j.LearningRate,
		L2:             j.L2,
		MinSites:       int32(j.MinSites),
		RoundTimeoutMs: time.Duration(j.RoundTimeout).Milliseconds(),
		Sites:          append([]string(nil), j.Sites...),
		EvalFraction:   ef,
		Seed:           j.Seed,
		Aggregator:     j.Aggregator.Name,
		AggregatorBeta: j.Aggregator.Params().Beta,
		AggregatorF:    j.Aggregator.Params().F,
		// The rest are float64 on both sides: passed as given.
		AggregatorServerLr: clonePtr(j.Aggregator.ServerLR),
		AggregatorBeta1:    clonePtr(j.Aggregator.Beta1),
		AggregatorBeta2:    clonePtr(j.Aggregator.Beta2),
		AggregatorTau:      clonePtr(j.Aggregator.Tau),
		AggregatorMu:       clonePtr(j.Aggregator.Mu),
		Project:            j.Project,
		Privacy:            privacyProto(j.Privacy),
		Optimizer:          j.Optimizer.Name,
		OptimizerMomentum:  clonePtr(j.Optimizer.Momentum),
		OptimizerBeta1:     clonePtr(j.Optimizer.Beta1),
		OptimizerBeta2:     clonePtr(j.Optimizer.Beta2),
		OptimizerEps:       clonePtr(j.Optimizer.Eps),
	}
}

func privacyProto(p Privacy) *federav1.Privacy {
	sa := p.SecureAggregation
	if p.DP == nil && !sa.On && p.MinCount == 0 {
		return nil
	}
	out := &federav1.Privacy{SecureAggregation: sa.On, MinCount: int32(p.MinCount), SecureAggregationClip: clonePtr(sa.Clip)}
	if sa.Threshold != nil {
		out.SecureAggregationThreshold = new(int32(*sa.Threshold))
	}
	if sa.Neighbors != nil {
		out.SecureAggregationNeighbors = new(int32(*sa.Neighbors))
	}
	if p.DP != nil {
		out.Dp = &federav1.DPSpec{Epsilon: p.DP.Epsilon, Delta: p.DP.Delta, ClipNorm: p.DP.ClipNorm, Noise: p.DP.Noise, SamplingRate: p.DP.SamplingRate}
	}
	return out
}

// FromProto converts a wire spec back, without defaults or validation.
func FromProto(p *federav1.JobSpec) *Job {
	if p == nil {
		p = &federav1.JobSpec{}
	}
	ef := p.GetEvalFraction()
	j := &Job{
		Name:         p.GetName(),
		Dataset:      p.GetDataset(),
		Label:        p.GetLabel(),
		Features:     append([]string(nil), p.GetFeatures()...),
		Model:        modelFromProto(p.GetModel()),
		Rounds:       int(p.GetRounds()),
		LocalEpochs:  int(p.GetLocalEpochs()),
		BatchSize:    int(p.GetBatchSize()),
		LearningRate: p.GetLearningRate(),
		L2:           p.GetL2(),
		MinSites:     int(p.GetMinSites()),
		RoundTimeout: Duration(time.Duration(p.GetRoundTimeoutMs()) * time.Millisecond),
		Sites:        append([]string(nil), p.GetSites()...),
		EvalFraction: &ef,
		Seed:         p.GetSeed(),
		Aggregator:   Aggregator{Name: p.GetAggregator()},
		Project:      p.GetProject(),
		Privacy: Privacy{
			SecureAggregation: secAggFromProto(p.GetPrivacy()),
			MinCount:          int(p.GetPrivacy().GetMinCount()),
		},
	}
	if p.AggregatorBeta != nil {
		j.Aggregator.Beta = new(*p.AggregatorBeta)
	}
	if p.AggregatorF != nil {
		j.Aggregator.F = new(int(*p.AggregatorF))
	}
	j.Aggregator.ServerLR = clonePtr(p.AggregatorServerLr)
	j.Aggregator.Beta1 = clonePtr(p.AggregatorBeta1)
	j.Aggregator.Beta2 = clonePtr(p.AggregatorBeta2)
	j.Aggregator.Tau = clonePtr(p.AggregatorTau)
	j.Aggregator.Mu = clonePtr(p.AggregatorMu)
	j.Optimizer = Optimizer{
		Name: p.GetOptimizer(), Momentum: clonePtr(p.OptimizerMomentum), Beta1: clonePtr(p.OptimizerBeta1),
		Beta2: clonePtr(p.OptimizerBeta2), Eps: clonePtr(p.OptimizerEps),
	}
	if dp := p.GetPrivacy().GetDp(); dp != nil {
		j.Privacy.DP = &DP{Epsilon: dp.GetEpsilon(), Delta: dp.GetDelta(), ClipNorm: dp.GetClipNorm(), Noise: dp.GetNoise(), SamplingRate: dp.GetSamplingRate()}
	}
	return j
}

// CheckProto validates a spec received on the wire. The caller's tools
// should have applied defaults; a wire spec gets them here too, so an old
// client cannot send a zero that means "forever".
func CheckProto(p *federav1.JobSpec) (*federav1.JobSpec, error) {
	j := FromProto(p)
	if p.GetEvalFraction() == 0 && p.GetRoundTimeoutMs() == 0 {
		// An unset eval fraction on the wire is indistinguishable from 0; a
		// spec that also left round_timeout unset came without defaults.
		j.EvalFraction = nil
	}
	j.ApplyDefaults()
	if err := j.Validate(); err != nil {
		return nil, err
	}
	return proto.Clone(j.Proto()).(*federav1.JobSpec), nil
}

func modelProto(m Model) *federav1.ModelSpec {
	out := &federav1.ModelSpec{Type: m.Type, Activation: m.Activation}
	for _, h := range m.Hidden {
		out.Hidden = append(out.Hidden, int32(min(max(h, math.MinInt32), math.MaxInt32)))
	}
	return out
}

func modelFromProto(p *federav1.ModelSpec) Model {
	m := Model{Type: p.GetType(), Activation: p.GetActivation()}
	for _, h := range p.GetHidden() {
		m.Hidden = append(m.Hidden, int(h))
	}
	return m
}

// namedForm describes a spec field written either as a name or as a
// mapping of a name and parameters (aggregator, optimizer).
type namedForm struct {
	field, keys, scalar, example string
}

// errUnknownKey is what a parameter decoder returns for a key it does not
// know.
var errUnknownKey = errors.New("unknown key")

// decodeNamed reads a name-or-mapping field: the name, and each other key
// through param. Problems are *yaml.TypeError naming the line and the
// field, so the decoder goes on and reports the rest of the file too.
func decodeNamed(n *yaml.Node, f namedForm, param func(key string, v *yaml.Node, bad func(int, string, ...any) error) error) (string, error) {
	bad := func(line int, format string, args ...any) error {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: field %s: ", line, f.field) + fmt.Sprintf(format, args...)}}
	}
	switch n.Kind {
	case yaml.ScalarNode:
		var name string
		err := n.Decode(&name)
		return name, err
	case yaml.MappingNode:
	default:
		return "", bad(n.Line, "want %s or a mapping of %s (e.g. %s)", f.scalar, f.keys, f.example)
	}
	var name string
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			return "", bad(k.Line, "key %q given twice", k.Value)
		}
		seen[k.Value] = true
		var err error
		if k.Value == "name" {
			err = v.Decode(&name)
		} else if err = param(k.Value, v, bad); errors.Is(err, errUnknownKey) {
			return "", bad(k.Line, "unknown key %q (valid: %s)", k.Value, f.keys)
		}
		if err != nil {
			return "", err
		}
	}
	if name == "" {
		return "", bad(n.Line, "the mapping form needs a name, e.g. %s", f.example)
	}
	return name, nil
}
