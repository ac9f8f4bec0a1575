package sim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/federa-dev/federa/cli"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
)

// TestCLIJSONForScripts: what scripts read from -o json. A job's status
// is "SUCCEEDED", its 64-bit counts are numbers, an accuracy nobody could
// score is null; job list carries no policy decisions; model get and
// model verify print one JSON object, model verify also when the model
// does not verify, with the provenance in snake_case; and model verify
// --state against a running coordinator says the state is in use, not
// that the model fails to verify.
func TestCLIJSONForScripts(t *testing.T) {
	n, _ := startNet(t, sim.Options{})
	j := demoSpec()
	j.Rounds = 2
	noEval := 0.0
	j.EvalFraction = &noEval // nobody scores: accuracy NaN
	job := runJob(t, n, j)
	if job.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("job %s: %s", job.GetStatus(), job.GetMessage())
	}
	run := func(wantCode int, args ...string) (string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		args = append(args, "--coordinator", n.Addr(), "--identity", n.IdentityDir("alice"))
		if code := cli.Execute(context.Background(), args, &out, &errb); code != wantCode {
			t.Fatalf("%v: exit %d, want %d: %s%s", args, code, wantCode, out.String(), errb.String())
		}
		return out.String(), errb.String()
	}
	// run offline commands (model verify) without the connection flags.
	offline := func(wantCode int, args ...string) (string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		if code := cli.Execute(context.Background(), args, &out, &errb); code != wantCode {
			t.Fatalf("%v: exit %d, want %d: %s%s", args, code, wantCode, out.String(), errb.String())
		}
		return out.String(), errb.String()
	}
	object := func(s string) map[string]any {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatalf("not one JSON object: %v\n%s", err, s)
		}
		return m
	}

	t.Run("job get", func(t *testing.T) {
		out, _ := run(0, "job", "get", job.GetId(), "-o", "json")
		m := object(out)
		if m["status"] != "SUCCEEDED" {
			t.Errorf("status %#v, want \"SUCCEEDED\"", m["status"])
		}
		for _, k := range []string{"created_unix_ms", "model_bytes", "rounds_completed"} {
			if _, ok := m[k].(float64); !ok {
				t.Errorf("%s is %#v, want a number", k, m[k])
			}
		}
		r0 := m["rounds"].([]any)[0].(map[string]any)
		if v, ok := r0["eval_accuracy"]; !ok || v != nil {
			t.Errorf("round 1 eval_accuracy %#v (present %v), want null", v, ok)
		}
		if _, ok := r0["duration_ms"].(float64); !ok {
			t.Errorf("duration_ms %#v, want a number", r0["duration_ms"])
		}
	})
	t.Run("job list", func(t *testing.T) {
		out, _ := run(0, "job", "list", "-o", "json")
		if strings.Contains(out, "decisions") || strings.Contains(out, "JOB_STATUS_") {
			t.Errorf("job list -o json: %s", out)
		}
	})

	dir := t.TempDir()
	model := filepath.Join(dir, "model.safetensors")
	t.Run("model get", func(t *testing.T) {
		out, _ := run(0, "model", "get", job.GetId(), "-o", model, "--output", "json")
		m := object(out)
		if m["sha256"] != job.GetModelSha256() || m["verified"] != true || m["model"] != model {
			t.Errorf("model get --output json: %s", out)
		}
	})
	t.Run("model verify", func(t *testing.T) {
		out, _ := offline(0, "model", "verify", model, "-o", "json")
		m := object(out)
		p, _ := m["provenance"].(map[string]any)
		if m["ok"] != true || m["verified"] != true || p["job_spec_digest"] == nil || p["rounds"] != 2.0 || p["jobSpecDigest"] != nil {
			t.Errorf("model verify -o json: %s", out)
		}
	})
	t.Run("model verify against a running coordinator's state", func(t *testing.T) {
		out, _ := offline(1, "model", "verify", model, "--state", n.CoordinatorDir(), "-o", "json")
		m := object(out)
		if m["ok"] != false || m["state_in_use"] != true || strings.Contains(out, "NOT verify") || !strings.Contains(out, "in use by a running coordinator") {
			t.Errorf("model verify --state (running) -o json: %s", out)
		}
		_, errs := offline(1, "model", "verify", model, "--state", n.CoordinatorDir())
		if strings.Contains(errs, "NOT verify") || !strings.Contains(errs, "in use by a running coordinator") || !strings.Contains(errs, "Stop that coordinator") {
			t.Errorf("model verify --state (running): %s", errs)
		}
	})
	t.Run("model verify of a tampered model", func(t *testing.T) {
		b, err := os.ReadFile(model)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)-3] ^= 1
		if err := os.WriteFile(model, b, 0o644); err != nil {
			t.Fatal(err)
		}
		out, errs := offline(2, "model", "verify", model, "-o", "json")
		m := object(out)
		if m["ok"] != false || m["verified"] != false || !strings.Contains(m["error"].(string), "does NOT verify") || !strings.Contains(errs, "does NOT verify") {
			t.Errorf("model verify -o json of a tampered model: %s %s", out, errs)
		}
	})
}
