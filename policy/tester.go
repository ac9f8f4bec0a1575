package policy

import (
	"cmp"
	"context"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// TestResult is the outcome of one Rego test.
type TestResult struct {
	Name     string // test rule, e.g. "test_personal_to_adequate_allowed"
	Package  string // e.g. "data.federa_test"
	Location string // file:line of the test
	Pass     bool
	Skip     bool   // todo_ tests
	Fail     string // why it failed: the failing expression and its location, or the error
	Output   string // what print() wrote
	Duration time.Duration
}

// String renders a result the way `opa test -v` lists it.
func (r TestResult) String() string {
	switch {
	case r.Skip:
		return fmt.Sprintf("SKIPPED %s.%s (%s)", r.Package, r.Name, r.Location)
	case r.Pass:
		return fmt.Sprintf("PASS %s.%s (%s)", r.Package, r.Name, r.Duration)
	}
	return fmt.Sprintf("FAIL %s.%s (%s): %s", r.Package, r.Name, r.Location, r.Fail)
}

// Test is `federa policy test DIR`: it runs the folder's Rego tests with
// OPA's tester, with the semantics of `opa test DIR` (every .rego file and
// data file under DIR, test files included, hidden entries skipped). It
// returns one result per test, sorted by location; an error means the tests
// could not run (a file does not parse or compile), not that one failed.
func Test(ctx context.Context, dir string) ([]TestResult, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("test site policy %q: %w", dir, err)
	}
	rs, err := runTests(ctx, os.DirFS(dir), ".", dir, nil)
	if err != nil {
		return nil, fmt.Errorf("test site policy %q: %w", dir, err)
	}
	return rs, nil
}

// runTests runs the tests of root; a non-nil coverage tracer records which
// lines ran (the package's own tests hold the default policy to full
// coverage). Tests run without tracing; failures run again with it, to say
// where they failed.
func runTests(ctx context.Context, fsys fs.FS, root, display string, coverage topdown.QueryTracer) ([]TestResult, error) {
	snap, err := readSnapshot(fsys, root, true)
	if err != nil {
		return nil, err
	}
	results, err := runOnce(ctx, snap, display, false, "", coverage)
	if err != nil {
		return nil, err
	}
	var failed []string
	for _, r := range results {
		if r.Fail && r.Error == nil {
			failed = append(failed, regexp.QuoteMeta(r.Package+"."+r.Name))
		}
	}
	traced := map[string]*tester.Result{}
	if len(failed) > 0 {
		again, err := runOnce(ctx, snap, display, true, "^("+strings.Join(failed, "|")+")$", nil)
		if err != nil {
			return nil, err
		}
		for _, r := range again {
			traced[r.Package+"."+r.Name] = r
		}
	}
	out := make([]TestResult, 0, len(results))
	for _, r := range results {
		if t, ok := traced[r.Package+"."+r.Name]; ok {
			r = t
		}
		out = append(out, testResult(r))
	}
	slices.SortFunc(out, func(a, b TestResult) int {
		return cmp.Or(cmp.Compare(a.Location, b.Location), cmp.Compare(a.Name, b.Name))
	})
	return out, nil
}

// runOnce runs the snapshot's tests the way opa test does.
func runOnce(ctx context.Context, snap *snapshot, display string, trace bool, filter string, coverage topdown.QueryTracer) ([]*tester.Result, error) {
	modules, docs, err := snap.load(display)
	if err != nil {
		return nil, err
	}
	store := inmem.NewFromObject(docs)
	txn, err := store.NewTransaction(ctx, storage.WriteParams)
	if err != nil {
		return nil, err
	}
	defer store.Abort(ctx, txn)

	compiler := ast.NewCompiler().
		WithDefaultRegoVersion(ast.RegoV1).
		WithPathConflictsCheck(storage.NonEmpty(ctx, store, txn)).
		WithEnablePrintStatements(true).
		WithUseTypeCheckAnnotations(true)
	runner := tester.NewRunner().
		SetCompiler(compiler).
		SetStore(store).
		SetModules(modules).
		SetDefaultRegoVersion(ast.RegoV1).
		CapturePrintOutput(true).
		EnableTracing(trace).
		Filter(filter).
		SetTimeout(5 * time.Second)
	if coverage != nil {
		// Line coverage only; no supplementary runs without indexing.
		runner = runner.SetCoverageQueryTracer(coverage).SetCoverageRuns([]cover.Kind{})
	}
	ch, err := runner.RunTests(ctx, txn)
	if err != nil {
		return nil, err
	}
	var out []*tester.Result
	for r := range ch {
		out = append(out, r)
	}
	return out, nil
}

func testResult(r *tester.Result) TestResult {
	tr := TestResult{
		Name:     r.Name,
		Package:  r.Package,
		Pass:     r.Pass(),
		Skip:     r.Skip,
		Output:   string(r.Output),
		Duration: r.Duration,
	}
	if r.Location != nil {
		tr.Location = fmt.Sprintf("%s:%d", r.Location.File, r.Location.Row)
	}
	switch {
	case r.Error != nil:
		tr.Fail = r.Error.Error()
	case r.Fail:
		tr.Fail = "test is false or undefined"
		if at := failedAt(r); at != "" {
			tr.Fail += "; failed at " + at
		}
	}
	return tr
}

// failedAt names the last expression of the test's own file that failed:
// usually the assertion that did not hold.
func failedAt(r *tester.Result) string {
	if r.Location == nil {
		return ""
	}
	var last *topdown.Event
	for _, e := range r.Trace {
		if e.Op == topdown.FailOp && e.Location != nil && e.Location.File == r.Location.File && e.Location.Row >= r.Location.Row {
			last = e
		}
	}
	if last == nil {
		return ""
	}
	text := strings.Join(strings.Fields(string(last.Location.Text)), " ")
	return fmt.Sprintf("%s:%d: %s", last.Location.File, last.Location.Row, text)
}
