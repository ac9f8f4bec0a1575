package site

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/federa-dev/federa/policy"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// policyAgent is a site serving the demo's eu/paris file under the default
// policy copied to a folder it watches, plus the extra files given.
func policyAgent(t *testing.T, extra map[string]string) (*Agent, string) {
	t.Helper()
	dir := t.TempDir()
	devIdentity(t, filepath.Join(dir, "id"))
	data, err := filepath.Abs("../testdata/breast-cancer/eu-paris.csv")
	if err != nil {
		t.Fatal(err)
	}
	pol := filepath.Join(dir, "policy")
	if err := policy.CopyTo(policy.Default(), pol); err != nil {
		t.Fatal(err)
	}
	for name, body := range extra {
		if err := os.WriteFile(filepath.Join(pol, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a := agentFromYAML(t, dir, `identity: {dir: id}
coordinator: {address: "127.0.0.1:7443", id: "spiffe://example.org/coordinator", jurisdiction: eu}
policy: {dir: policy}
datasets:
  - {name: bc, path: `+data+`, default_classification: internal}
state_dir: state
`)
	return a, pol
}

// metricsRelease is a round's metrics as a train task of job-1 would send
// them, admitted by the site's policy in force.
func metricsRelease(t *testing.T, a *Agent) (*federav1.Task, *release) {
	t.Helper()
	task := admitTask([]string{"mean_radius", "mean_texture"}, "label")
	task.Kind, task.DryRun, task.TaskId, task.Round = federav1.TaskKind_TASK_KIND_EVAL, false, "job-1/r1/eval/eu/paris", 1
	ad := a.admit(context.Background(), task, false)
	if ad.answer.GetOutcome() != federav1.Admission_OUTCOME_ALLOW {
		t.Fatalf("admission: %v", ad.answer)
	}
	r := &release{
		res:  &federav1.TaskResult{TaskId: task.GetTaskId(), JobId: task.GetJobId(), Round: 1, Kind: task.GetKind(), EvalCorrect: 40, EvalTotal: 50, EvalLoss: 0.3},
		kind: egressMetrics, records: 50, maxBytes: boundFor(egressMetrics, 0, 0, 0),
		input: a.taskInput(task, ad, ad.features), dataset: "bc", admitted: ad,
	}
	return task, r
}

// egressOnce asks the site's egress check about r and returns whether it
// let r leave and the reasons it sent back if not.
func egressOnce(a *Agent, task *federav1.Task, r *release) (bool, string) {
	msgs, ok := a.checkEgress(context.Background(), task, r, r.messages())
	return ok, msgs[0].GetResult().GetError()
}

// TestEgressDecisionsAreReusedOnlyWhenTheyMustBeTheSame: a site reuses an
// egress decision its policy revision made on the same input, but a
// changed message, a reloaded policy and a policy that draws random
// numbers are each decided afresh.
func TestEgressDecisionsAreReusedOnlyWhenTheyMustBeTheSame(t *testing.T) {
	t.Run("changed message", func(t *testing.T) {
		a, _ := policyAgent(t, nil)
		task, r := metricsRelease(t, a)
		for range 2 {
			if ok, why := egressOnce(a, task, r); !ok {
				t.Fatalf("metrics denied: %s", why)
			}
		}
		r.maxBytes = 1 // the same metrics, now over their size bound
		if ok, why := egressOnce(a, task, r); ok || !strings.Contains(why, "more than the 1 bytes") {
			t.Fatalf("over its bound: allowed=%v %q; want a fresh deny", ok, why)
		}
	})
	t.Run("reloaded policy", func(t *testing.T) {
		a, pol := policyAgent(t, nil)
		task, r := metricsRelease(t, a)
		if ok, why := egressOnce(a, task, r); !ok {
			t.Fatalf("metrics denied: %s", why)
		}
		before := a.policy.Current().Revision()
		rule := "package federa\n\negress_deny contains \"egress suspended\" if input.egress.kind == \"metrics\"\n"
		if err := os.WriteFile(filepath.Join(pol, "zz_suspend.rego"), []byte(rule), 0o644); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for a.policy.Current().Revision() == before {
			if time.Now().After(deadline) {
				t.Fatal("the site did not reload its policy in 20 s")
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Admitted again under the new revision (which admits as the old
		// one did), the message's input is the very same as before.
		task, r2 := metricsRelease(t, a)
		if ok, why := egressOnce(a, task, r2); ok || !strings.Contains(why, "egress suspended") {
			t.Fatalf("after the reload: allowed=%v %q; want the new policy's deny", ok, why)
		}
	})
	t.Run("non-deterministic policy", func(t *testing.T) {
		coin := "package federa\n\negress_deny contains \"the coin came up heads\" if rand.intn(\"coin\", 2) == 0\n"
		a, _ := policyAgent(t, map[string]string{"zz_coin.rego": coin})
		task, r := metricsRelease(t, a)
		seen := map[bool]int{}
		for range 40 {
			ok, _ := egressOnce(a, task, r)
			seen[ok]++
		}
		if seen[true] == 0 || seen[false] == 0 {
			t.Fatalf("40 egress checks under a coin-flip policy: %v allowed/denied; want both (a reused decision?)", seen)
		}
	})
}
