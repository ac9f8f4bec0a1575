package policy

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/lineage"
)

// The documents a site policy defines.
const (
	AdmissionQuery    = "data.federa.admission"
	EgressQuery       = "data.federa.egress"
	ConfigErrorsQuery = "data.federa.config_errors" // optional: a non-empty set of strings fails Load
)

// Engine is a compiled policy: queries prepared once, evaluated many times.
// It is safe for concurrent use and never changes; a reload builds a new one.
type Engine struct {
	revision  string
	admission rego.PreparedEvalQuery
	egress    rego.PreparedEvalQuery
	// denyAll is set for the engine that stands in for a missing policy.
	denyAll string
	// loaded is set by Load; a zero (or nil) Engine denies everything.
	loaded bool
	// nondeterministic names a builtin the policy calls whose result
	// varies between calls on the same input (time.now_ns, rand.intn,
	// http.send, ...); "" when there is none.
	nondeterministic string
}

// Deterministic reports whether the policy decides the same on the same
// input every time: it calls no builtin OPA marks non-deterministic (the
// clock, randomness, the network). Only then may a caller reuse a decision
// this engine made for an input instead of asking again; the second result
// names the first such builtin found, for logs.
func (e *Engine) Deterministic() (bool, string) {
	if e == nil || !e.loaded {
		return true, "" // DenyAll: always the same deny
	}
	return e.nondeterministic == "", e.nondeterministic
}

// nondeterministicCall is the name of the first builtin OPA marks
// non-deterministic that the compiled modules call, in module order, or "".
func nondeterministicCall(c *ast.Compiler) string {
	found := ""
	check := func(op ast.Ref) {
		if b, ok := ast.BuiltinMap[op.String()]; ok && b.IsNondeterministic() && found == "" {
			found = b.Name
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.Modules)) {
		ast.WalkTerms(c.Modules[name], func(t *ast.Term) bool {
			if call, ok := t.Value.(ast.Call); ok && len(call) > 0 {
				if ref, ok := call[0].Value.(ast.Ref); ok {
					check(ref)
				}
			}
			return found != ""
		})
		ast.WalkExprs(c.Modules[name], func(x *ast.Expr) bool {
			if x.IsCall() {
				check(x.Operator())
			}
			return found != ""
		})
	}
	return found
}

// Load compiles every .rego file under dir (recursively, skipping
// *_test.rego and hidden entries) with the data files there (.json, .yaml,
// .yml; OPA loader semantics: a file's directory path below dir becomes its
// path under data), in strict mode (the rules of opa check --strict). It then
// evaluates both queries on SampleInput and a few variants, so a policy that
// fails at evaluation time, returns a decision of the wrong shape or reports
// data.federa.config_errors never loads. Errors name the file and line.
//
// A folder without .rego files fails with an error wrapping ErrNoPolicy; a
// missing folder with one wrapping fs.ErrNotExist.
func Load(ctx context.Context, dir string) (*Engine, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("load site policy %q: %w", dir, err)
	}
	e, err := load(ctx, os.DirFS(dir), ".", dir)
	if err != nil {
		return nil, fmt.Errorf("load site policy %q: %w", dir, err)
	}
	return e, nil
}

// LoadFS is Load for a folder of an fs.FS, such as Default(); name is the
// folder ("." for the root).
func LoadFS(ctx context.Context, fsys fs.FS, name string) (*Engine, error) {
	e, err := load(ctx, fsys, name, name)
	if err != nil {
		return nil, fmt.Errorf("load site policy %q: %w", name, err)
	}
	return e, nil
}

// load reads root of fsys; display is the folder as errors name it.
func load(ctx context.Context, fsys fs.FS, root, display string) (*Engine, error) {
	snap, err := readSnapshot(fsys, root, false)
	if err != nil {
		return nil, err
	}
	if !snap.hasPolicy() {
		return nil, ErrNoPolicy
	}
	compiler, store, err := compile(ctx, snap, display)
	if err != nil {
		return nil, err
	}
	prepare := func(query string) (rego.PreparedEvalQuery, error) {
		return rego.New(
			rego.Query(query),
			rego.Compiler(compiler),
			rego.Store(store),
			rego.StoreReadAST(true),
			// A builtin error (to_number("x")) is an evaluation error, and so
			// a deny, instead of a silently undefined expression.
			rego.StrictBuiltinErrors(true),
		).PrepareForEval(ctx)
	}
	e := &Engine{revision: snap.revision(), loaded: true, nondeterministic: nondeterministicCall(compiler)}
	if e.admission, err = prepare(AdmissionQuery); err != nil {
		return nil, err
	}
	if e.egress, err = prepare(EgressQuery); err != nil {
		return nil, err
	}
	if err := e.validate(ctx, compiler, store); err != nil {
		return nil, err
	}
	return e, nil
}

// compile compiles the snapshot's modules in strict mode (the rules of
// opa check --strict: no unused variables or imports, no shadowing ...).
func compile(ctx context.Context, snap *snapshot, display string) (*ast.Compiler, storage.Store, error) {
	modules, docs, err := snap.load(display)
	if err != nil {
		return nil, nil, err
	}
	store := inmem.NewFromObjectWithOpts(docs, inmem.OptReturnASTValuesOnRead(true))
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer store.Abort(ctx, txn)
	compiler := ast.NewCompiler().
		WithStrict(true).
		WithDefaultRegoVersion(ast.RegoV1).
		WithUseTypeCheckAnnotations(true).
		// A rule may not shadow a data file (data.federa.limits in both).
		WithPathConflictsCheck(storage.NonEmpty(ctx, store, txn))
	if compiler.Compile(modules); compiler.Failed() {
		return nil, nil, compiler.Errors
	}
	return compiler, store, nil
}

// validate evaluates the policy on sample inputs, "validated on sample input
// at start-up" as SPIRE's authpolicy does, with a few variants so the DP,
// personal-data and egress paths run too.
func (e *Engine) validate(ctx context.Context, compiler *ast.Compiler, store storage.Store) error {
	if err := configErrors(ctx, compiler, store); err != nil {
		return err
	}
	for _, in := range sampleVariants() {
		if _, err := e.Admission(ctx, in); err != nil {
			return fmt.Errorf("evaluate on sample input: %w", err)
		}
		if in.Egress == nil {
			continue
		}
		if _, err := e.Egress(ctx, in); err != nil {
			return fmt.Errorf("evaluate on sample input: %w", err)
		}
	}
	return nil
}

// configErrors evaluates the optional data.federa.config_errors.
func configErrors(ctx context.Context, compiler *ast.Compiler, store storage.Store) error {
	rs, err := rego.New(
		rego.Query(ConfigErrorsQuery),
		rego.Compiler(compiler),
		rego.Store(store),
		rego.StrictBuiltinErrors(true),
	).Eval(ctx)
	if err != nil {
		return fmt.Errorf("evaluate %s: %w", ConfigErrorsQuery, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil
	}
	list, ok := rs[0].Expressions[0].Value.([]any)
	if !ok {
		return fmt.Errorf("%s is %s, want a set of strings", ConfigErrorsQuery, typeName(rs[0].Expressions[0].Value))
	}
	if len(list) == 0 {
		return nil
	}
	msgs := make([]string, len(list))
	for i, m := range list {
		msgs[i] = fmt.Sprint(m)
	}
	return fmt.Errorf("site policy data is invalid: %s", strings.Join(msgs, "; "))
}

func sampleVariants() []Input {
	plain := SampleInput() // no DP
	plain.Job.Privacy.DP = nil
	abroad := SampleInput() // personal data leaving for a non-adequate jurisdiction
	abroad.Destination.Jurisdiction = "us"
	empty := Input{}
	out := []Input{SampleInput(), plain, abroad, empty, SampleEgress()}
	for _, kind := range []string{KindStatistics, KindMetrics, "raw_rows"} {
		in := SampleEgress()
		in.Egress.Kind = kind
		in.Egress.Noise = nil
		out = append(out, in)
	}
	return out
}

// DenyAll returns the Engine used when no policy is configured or the policy
// is missing: every admission and every egress is denied with the reason
// "no policy loaded: <reason>".
func DenyAll(reason string) *Engine {
	return &Engine{revision: "deny-all", denyAll: "no policy loaded: " + reason}
}

// Revision is a content hash of the policy folder ("sha256:<hex>" over
// sorted file paths and contents, test files excluded), to be recorded with
// every decision. DenyAll engines report "deny-all".
func (e *Engine) Revision() string {
	if e == nil || (!e.loaded && e.denyAll == "") {
		return "deny-all"
	}
	return e.revision
}

// Admission evaluates data.federa.admission. Whatever goes wrong, the
// returned Decision denies: an undefined result is a deny with a reason and
// no error; an evaluation error or a decision of the wrong shape is a deny
// and an error. An allow that carries obligations this version does not know
// is turned into a deny naming them.
func (e *Engine) Admission(ctx context.Context, in Input) (Decision, error) {
	v, err := e.eval(ctx, AdmissionQuery, in)
	if err != nil {
		return denyDecision(err.Error()), err
	}
	if v == nil {
		return denyDecision(e.undefinedReason(AdmissionQuery)), nil
	}
	d, err := decodeDecision(v)
	if err != nil {
		return denyDecision(err.Error()), err
	}
	return d.enforceable(), nil
}

// Egress evaluates data.federa.egress for in.Egress, with the same fail-closed
// rules as Admission.
func (e *Engine) Egress(ctx context.Context, in Input) (EgressDecision, error) {
	return e.egressResult(e.eval(ctx, EgressQuery, in))
}

// egressResult turns an evaluation into a fail-closed egress decision.
func (e *Engine) egressResult(v any, err error) (EgressDecision, error) {
	if err != nil {
		return EgressDecision{Reasons: []string{err.Error()}}, err
	}
	if v == nil {
		return EgressDecision{Reasons: []string{e.undefinedReason(EgressQuery)}}, nil
	}
	d, err := decodeEgressDecision(v)
	if err != nil {
		return EgressDecision{Reasons: []string{err.Error()}}, err
	}
	return d, nil
}

// EgressPrepared is Egress for a prepared input plus one message: the same
// decision as Egress on the whole input, without converting the job, site
// and destination again.
func (e *Engine) EgressPrepared(ctx context.Context, p *Prepared, eg *Egress, adm *Admitted) (EgressDecision, error) {
	input, err := p.with(eg, adm)
	if err != nil {
		return e.egressResult(nil, fmt.Errorf("evaluate %s: %w", EgressQuery, err))
	}
	return e.egressResult(e.evalValue(ctx, EgressQuery, input))
}

// eval returns the value of query for in, or nil when it is undefined.
func (e *Engine) eval(ctx context.Context, query string, in Input, opts ...rego.EvalOption) (any, error) {
	if e == nil || !e.loaded {
		return nil, nil // DenyAll, or an Engine not built by Load
	}
	input, err := inputValue(in)
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", query, err)
	}
	return e.evalValue(ctx, query, input, opts...)
}

func (e *Engine) evalValue(ctx context.Context, query string, input ast.Value, opts ...rego.EvalOption) (any, error) {
	if e == nil || !e.loaded {
		return nil, nil // DenyAll, or an Engine not built by Load
	}
	pq := &e.admission
	if query == EgressQuery {
		pq = &e.egress
	}
	rs, err := pq.Eval(ctx, append(opts, rego.EvalParsedInput(input))...)
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", query, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, nil
	}
	return rs[0].Expressions[0].Value, nil
}

func (e *Engine) undefinedReason(query string) string {
	switch {
	case e == nil || (!e.loaded && e.denyAll == ""):
		return "no policy loaded: the engine was not built by Load"
	case e.denyAll != "":
		return e.denyAll
	}
	return "policy does not define " + query
}

func denyDecision(reason string) Decision {
	return Decision{Reasons: []string{reason}}
}

// ExplainAdmission evaluates admission with a trace, for
// `federa policy eval --explain`: the decision (as Admission returns it) and
// a human-readable trace: the notes the policy left with trace(), then every
// step with its file and line.
func (e *Engine) ExplainAdmission(ctx context.Context, in Input) (Decision, string, error) {
	if e == nil || !e.loaded {
		d, _ := e.Admission(ctx, in)
		return d, d.Reasons[0] + "\n", nil
	}
	tracer := topdown.NewBufferTracer()
	v, err := e.eval(ctx, AdmissionQuery, in, rego.EvalQueryTracer(tracer))
	var buf bytes.Buffer
	if notes := lineage.Notes(*tracer); len(notes) > 0 {
		buf.WriteString("Notes:\n")
		topdown.PrettyTraceWithLocation(&buf, notes)
		buf.WriteString("\n")
	}
	buf.WriteString("Trace:\n")
	topdown.PrettyTraceWithLocation(&buf, lineage.Full(*tracer))
	if err != nil {
		return denyDecision(err.Error()), buf.String(), err
	}
	if v == nil {
		return denyDecision(e.undefinedReason(AdmissionQuery)), buf.String(), nil
	}
	d, err := decodeDecision(v)
	if err != nil {
		return denyDecision(err.Error()), buf.String(), err
	}
	return d.enforceable(), buf.String(), nil
}
