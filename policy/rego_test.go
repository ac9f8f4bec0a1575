package policy

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/cover"
)

// TestDefaultPolicyRegoTests runs policy/default's Rego tests, so `go test`
// (and make test) fails when one does.
func TestDefaultPolicyRegoTests(t *testing.T) {
	results, err := Test(context.Background(), "default")
	if err != nil {
		t.Fatal(err)
	}
	if len(results) < 50 {
		t.Errorf("ran %d Rego tests, want the whole suite (≥ 50)", len(results))
	}
	for _, r := range results {
		if !r.Pass {
			t.Errorf("%s", r)
		}
	}
}

// TestDefaultPolicyCoverage holds the default policy to a test for every
// rule: every line of every non-test file must run under the Rego tests.
// Defaults for data keys the default data.json sets are the exception (no
// test can unset a base document), so they are listed here.
func TestDefaultPolicyCoverage(t *testing.T) { checkFullCoverage(t, Default(), "the default policy") }

// TestAccessPolicyCoverage holds the coordinator's access policy to the
// same rule.
func TestAccessPolicyCoverage(t *testing.T) {
	checkFullCoverage(t, DefaultAccess(), "the access policy")
}

// checkFullCoverage runs fsys's Rego tests and fails on a failing test or a
// line of a non-test file no test runs.
func checkFullCoverage(t *testing.T, fsys fs.FS, what string) {
	t.Helper()
	cov := cover.New()
	results, err := runTests(context.Background(), fsys, ".", ".", cov)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if !r.Pass {
			t.Fatalf("%s", r)
		}
	}
	snap, err := readSnapshot(fsys, ".", true)
	if err != nil {
		t.Fatal(err)
	}
	modules, _, err := snap.load(".")
	if err != nil {
		t.Fatal(err)
	}
	report := cov.Report(modules)
	var missing []string
	for file, fr := range report.Files {
		if strings.HasSuffix(file, "_test.rego") {
			continue
		}
		src := strings.Split(string(snap.files[file].Data), "\n")
		for _, rng := range fr.NotCovered {
			for row := rng.Start.Row; row <= rng.End.Row; row++ {
				line := strings.TrimSpace(src[row-1])
				if strings.HasPrefix(line, "default ") {
					continue
				}
				missing = append(missing, fmt.Sprintf("%s:%d: %s", file, row, line))
			}
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("lines of %s no Rego test runs:\n%s", what, strings.Join(missing, "\n"))
	}
}

func TestTestReportsFailures(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"p.rego": "package p\n\nanswer := 42\n",
		"p_test.rego": `package p_test

import data.p

test_right if p.answer == 42

test_wrong if {
	x := p.answer
	x == 41
}

test_error if 1 / 0 == 1

todo_test_later if false
`,
	})
	results, err := Test(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]TestResult{}
	for _, r := range results {
		byName[r.Name] = r
	}
	testFile := filepath.Join(dir, "p_test.rego")
	tests := []struct {
		name     string
		pass     bool
		skip     bool
		location string
		fail     string
	}{
		{name: "test_right", pass: true, location: testFile + ":5"},
		{name: "test_wrong", location: testFile + ":7", fail: "failed at " + testFile + ":9: x == 41"},
		{name: "test_error", location: testFile + ":12", fail: "failed at " + testFile + ":12: 1 / 0"},
		{name: "todo_test_later", skip: true, location: testFile + ":14"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := byName[tt.name]
			if !ok {
				t.Fatalf("no result for %s in %v", tt.name, results)
			}
			if r.Pass != tt.pass || r.Skip != tt.skip || r.Location != tt.location || r.Package != "data.p_test" {
				t.Errorf("got %+v, want pass=%v skip=%v location=%s", r, tt.pass, tt.skip, tt.location)
			}
			if !strings.Contains(r.Fail, tt.fail) {
				t.Errorf("Fail = %q, want it to contain %q", r.Fail, tt.fail)
			}
			if !tt.pass && !tt.skip && !strings.Contains(r.String(), tt.name) {
				t.Errorf("String() = %q does not name the test", r.String())
			}
		})
	}
}

func TestTestReportsCompileErrorsWithLocation(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"p_test.rego": "package p_test\n\ntest_x if {\n\tundefined_fn(1)\n}\n"})
	_, err := Test(context.Background(), dir)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "p_test.rego")+":4") {
		t.Fatalf("Test = %v, want an error naming p_test.rego:4", err)
	}
}
