package sim_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/federa-dev/federa/cli"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
)

// TestAuditorReadsARunningCoordinator: the audit commands work against a
// running coordinator for a user with the auditor role, and only for them.
func TestAuditorReadsARunningCoordinator(t *testing.T) {
	n, _ := startNet(t, sim.Options{})
	j := demoSpec()
	j.Rounds = 2
	if job := runJob(t, n, j); job.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("job: %s", job.GetMessage())
	}
	run := func(user string, args ...string) (string, string, int) {
		var out, errb bytes.Buffer
		args = append(args, "--coordinator", n.Addr(), "--identity", n.IdentityDir(user))
		code := cli.Execute(context.Background(), args, &out, &errb)
		return out.String(), errb.String(), code
	}
	out, errs, code := run("auditor", "audit", "verify")
	if code != 0 || !strings.HasPrefix(out, "ok: ") {
		t.Fatalf("auditor verify: %d %s %s", code, out, errs)
	}
	if out, _, code := run("auditor", "audit", "checkpoint"); code != 0 || !strings.Contains(out, "federa.demo/coordinator") {
		t.Fatalf("auditor checkpoint: %d %s", code, out)
	}
	if out, _, code := run("auditor", "audit", "export"); code != 0 || !strings.Contains(out, `"type":"model_release"`) {
		t.Fatalf("auditor export: %d %.200s", code, out)
	}
	if out, _, code := run("auditor", "audit", "show"); code != 0 || !strings.Contains(out, "model_release") {
		t.Fatalf("auditor show: %d %.200s", code, out)
	}
	if out, errs, code := run("auditor", "audit", "proof", "--entry", "1"); code != 0 || !strings.Contains(out, "inclusion_proof") {
		t.Fatalf("auditor proof: %d %s %s", code, out, errs)
	}
	for _, user := range []string{"alice", "mallory"} {
		_, errs, code := run(user, "audit", "export")
		if code == 0 || !strings.Contains(errs, "needs the auditor role") {
			t.Fatalf("%s read the audit log: %d %s", user, code, errs)
		}
	}
}
