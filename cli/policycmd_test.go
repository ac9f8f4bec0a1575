package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/policy"
	"github.com/federa-dev/federa/site"
)

func writeDefaultPolicy(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "policy")
	if _, errs, code := execute(t, "policy", "init", dir); code != 0 {
		t.Fatal(errs)
	}
	return dir
}

func TestPolicyTestAndCheck(t *testing.T) {
	dir := writeDefaultPolicy(t)
	out, errs, code := execute(t, "policy", "test", dir)
	if code != 0 || !strings.Contains(out, " passed, 0 failed") {
		t.Fatalf("policy test on the default policy: %d\n%s\n%s", code, out, errs)
	}
	if out, errs, code := execute(t, "policy", "check", dir); code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("policy check: %d %s %s", code, out, errs)
	}
	// A failing test fails the command and names the test.
	failing := "package federa_extra_test\n\ntest_always_fails if {\n\t1 == 2\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "extra_test.rego"), []byte(failing), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, code = execute(t, "policy", "test", dir)
	if code == 0 || !strings.Contains(out, "FAIL") || !strings.Contains(out, "test_always_fails") {
		t.Fatalf("a failing Rego test: exit %d\n%s", code, out)
	}
	// A broken file: check names the file and line.
	if err := os.WriteFile(filepath.Join(dir, "broken.rego"), []byte("package federa\n\nallow if {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errs, code = execute(t, "policy", "check", dir)
	if code == 0 || !strings.Contains(errs, "broken.rego:") {
		t.Fatalf("check of a broken policy: %d %s", code, errs)
	}
}

func TestPolicyEval(t *testing.T) {
	dir := t.TempDir()
	ca, err := attest.NewCA(spiffeid.RequireTrustDomainFromString("example.org"))
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.IssueToDir(spiffeid.RequireFromString("spiffe://example.org/site/eu/paris"), time.Hour, filepath.Join(dir, "id")); err != nil {
		t.Fatal(err)
	}
	data, _ := filepath.Abs("../testdata/breast-cancer/eu-paris.csv")
	siteYAML := filepath.Join(dir, "site.yaml")
	if err := os.WriteFile(siteYAML, []byte(`identity: {dir: id}
coordinator: {address: "127.0.0.1:7443", id: "spiffe://example.org/coordinator", jurisdiction: eu}
datasets:
  - name: breast-cancer
    path: `+data+`
    default_classification: internal
    columns:
      - {name: mean_radius, classification: special_category, tags: [health]}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	job := filepath.Join(dir, "job.yaml")
	write := func(body string) {
		if err := os.WriteFile(job, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("name: j\ndataset: breast-cancer\nfeatures: [mean_radius, mean_texture]\n")
	out, _, code := execute(t, "policy", "eval", "--site", siteYAML, "--job", job)
	if code == 0 || !strings.Contains(out, "DENY at eu/paris") || !strings.Contains(out, "mean_radius") {
		t.Fatalf("special-category without DP: exit %d\n%s", code, out)
	}
	write("name: j\ndataset: breast-cancer\nfeatures: [mean_radius, mean_texture]\nprivacy: {dp: {epsilon: 4, delta: 1e-6, clip_norm: 1}}\n")
	out, errs, code := execute(t, "policy", "eval", "--site", siteYAML, "--job", job, "-o", "json")
	if code != 0 {
		t.Fatalf("with DP: exit %d\n%s\n%s", code, out, errs)
	}
	var res struct {
		Decision policy.Decision `json:"decision"`
		Input    policy.Input    `json:"input"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if !res.Decision.Allow || !res.Decision.Obligations.RequireDP || res.Decision.Obligations.MinRecords < 10 {
		t.Fatalf("with DP: %+v", res.Decision)
	}
	if res.Input.Site.Name != "eu/paris" || res.Input.Destination.Jurisdiction != "eu" {
		t.Fatalf("input %+v", res.Input)
	}
	out, _, code = execute(t, "policy", "eval", "--site", siteYAML, "--job", job, "--explain")
	if code != 0 || !strings.Contains(out, "ALLOW") || len(strings.Split(out, "\n")) < 5 {
		t.Fatalf("--explain: %d\n%s", code, out)
	}
}

func TestSiteApprovalCommands(t *testing.T) {
	state := t.TempDir()
	q := site.OpenApprovals(state)
	if _, err := q.Hold(site.Approval{JobID: "job-123", JobName: "oncology", Requester: "spiffe://example.org/user/alice", Dataset: "bc", Reasons: []string{"approval required for special_category"}}); err != nil {
		t.Fatal(err)
	}
	out, _, code := execute(t, "site", "pending", "--state", state)
	if code != 0 || !strings.Contains(out, "job-123") || !strings.Contains(out, "approval required") {
		t.Fatalf("pending: %d\n%s", code, out)
	}
	if _, errs, code := execute(t, "site", "approve", "job-123", "--state", state); code == 0 || !strings.Contains(errs, "--reason") {
		t.Fatalf("approve without a reason: %d %s", code, errs)
	}
	out, _, code = execute(t, "site", "approve", "job-123", "--reason", "IRB 2026-114", "--state", state)
	if code != 0 || !strings.Contains(out, "job-123 approved") {
		t.Fatalf("approve: %d %s", code, out)
	}
	if _, errs, code := execute(t, "site", "reject", "job-123", "--reason", "changed my mind", "--state", state); code == 0 || !strings.Contains(errs, "already approved") {
		t.Fatalf("reject after approve: %d %s", code, errs)
	}
	if _, errs, code := execute(t, "site", "approve", "job-999", "--reason", "x", "--state", state); code == 0 || !strings.Contains(errs, "not waiting for approval") {
		t.Fatalf("approve unknown: %d %s", code, errs)
	}
	out, _, _ = execute(t, "site", "pending", "--state", state)
	if !strings.Contains(out, "no jobs waiting") {
		t.Fatalf("pending after approval: %s", out)
	}
	ap, ok, err := q.Get("job-123")
	if err != nil || !ok || ap.Status != site.ApprovalApproved || ap.Reason != "IRB 2026-114" || ap.DecidedBy == "" {
		t.Fatalf("stored approval %+v %v", ap, err)
	}
}

// TestDemoWithDenyingPolicy: --policy gives every demo site the folder; a
// job the policy denies exits non-zero and names the site and the reasons.
func TestDemoWithDenyingPolicy(t *testing.T) {
	pol := writeDefaultPolicy(t)
	rule := "package federa\n\ndeny contains \"training on breast cancer data is suspended at this site\" if input.site.jurisdiction == \"us\"\n"
	if err := os.WriteFile(filepath.Join(pol, "suspend.rego"), []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, code := execute(t, "demo", "--policy", pol, "--state", t.TempDir(), "--rounds", "2")
	if code == 0 {
		t.Fatalf("a denied demo exited 0:\n%s", out)
	}
	if !strings.Contains(errs, "us/boston") || !strings.Contains(errs, "suspended at this site") {
		t.Fatalf("stderr does not name the site and reason: %s", errs)
	}
	out, _, code = execute(t, "demo", "--policy", pol, "--state", t.TempDir(), "--rounds", "2", "-o", "json")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var res map[string]any
	if code == 0 || json.Unmarshal([]byte(lines[len(lines)-1]), &res) != nil || res["status"] != "refused" {
		t.Fatalf("json demo refused: exit %d, %s", code, out)
	}
	// The same folder without the rule runs.
	os.Remove(filepath.Join(pol, "suspend.rego"))
	if out, errs, code := execute(t, "demo", "--policy", pol, "--state", t.TempDir(), "--rounds", "2"); code != 0 {
		t.Fatalf("demo with the default policy folder: %d\n%s\n%s", code, out, errs)
	}
}
